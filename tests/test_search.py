"""Search: the exact top k against a brute-force reference, and hostile search strings."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from benchmarks import vocabulary as voc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

from pokervod_db import queries as q
from pokervod_db import search

NOW = datetime(2026, 1, 1, tzinfo=UTC)

NOTE_QUERIES = [
    "river",
    "flop",
    "pocket kings",
    '"pocket kings"',
    '"river card"',
    "hero call",
    "check-raise river",
    "negreanu calls",
    "ivey -river",
    "cooler or bad beat",
    "river or flop",
    "ivey or negreanu -river",
    "-river",
    "zyzzyva",
    '"kings pocket"',
    # `or` with 2-5 scored terms: ranked by term classes (the last one by the threshold walk)
    "river or flop or turn",
    "cooler or bad beat or hero call",
    '"river card" or ivey',
    '"kings pocket" or zyzzyva',
    "ivey or negreanu or hellmuth -river",
    '"pocket kings" or "pocket aces" -flop',
    "river or -flop",
]
TITLE_QUERIES = [
    "day",
    "final table",
    '"main event"',
    "wsop -final",
    "high roller or razz",
    '"final table" or "day 2"',
    '"table final"',
]


def _note(r: random.Random) -> str:
    """A note like the benchmark archive's, of varied length (so lengths and words correlate)."""
    note = (
        f"{r.choice(voc.FAMOUS)} {r.choice(voc.ACTIONS)} with {r.choice(voc.HANDS)}"
        f" on a {r.choice(voc.BOARDS)} board"
    )
    if r.random() < 0.6:
        note += f", {r.choice(voc.FAMOUS)} {r.choice(voc.RESPONSES)}"
    if r.random() < 0.5:
        note += f" and {r.choice(voc.OUTCOMES)}"
    return note


def _title(r: random.Random) -> str:
    title = f"{r.randint(2015, 2025)} {r.choice(voc.PROJECTS)[0]} {r.choice(voc.EVENT_SUFFIXES)}"
    if r.random() < 0.5:
        title += f" Day {r.randint(1, 5)}"
    if r.random() < 0.3:
        title += " Final Table"
    return title


async def _corpus(session: AsyncSession, n: int = 400, seed: int = 3) -> None:
    """``n`` clips and ``n`` titles; timestamps in groups (ties), 5 % deleted, some no notes."""
    r = random.Random(seed)
    clips, videos = [], []
    for i in range(n):
        created = NOW - timedelta(hours=r.randint(0, 40))  # many equal timestamps
        deleted = NOW if r.random() < 0.05 else None
        notes = None if r.random() < 0.05 else _note(r)
        clips.append(
            {"id": uuid.UUID(int=r.getrandbits(128)), "notes": notes, "c": created, "d": deleted}
        )
        videos.append(
            {
                "id": uuid.UUID(int=r.getrandbits(128)),
                "t": _title(r),
                "p": f"/nas/v{i}.mp4",
                "f": f"v{i}.mp4",
                "c": created,
                "d": deleted,
            }
        )
    await session.execute(
        text(
            "INSERT INTO pokervod.hand_clips (id, notes, created_at, updated_at, deleted_at) "
            "VALUES (:id, :notes, :c, :c, :d)"
        ),
        clips,
    )
    await session.execute(
        text(
            "INSERT INTO pokervod.video_files "
            "(id, display_title, file_path, file_name, created_at, updated_at, deleted_at) "
            "VALUES (:id, :t, :p, :f, :c, :c, :d)"
        ),
        videos,
    )
    await session.commit()
    await session.execute(text("ANALYZE pokervod.hand_clips, pokervod.video_files"))
    await session.commit()


def _norm(dl: int, avgdl: float) -> float:
    return (1.2 + 1) / (1 + 1.2 * (1 - 0.75 + 0.75 * float(dl) / avgdl))


async def _reference(
    session: AsyncSession, table: str, query: str, *, include_deleted: bool, order: str, k: int
) -> list[tuple[uuid.UUID, float]]:
    """Brute force: score every row in Python by the documented formula, sort, keep k."""
    target = search._CLIPS if table == "hand_clips" else search._VIDEOS
    conn = await session.connection()
    parsed = await search.parse_query(conn, query)
    if parsed is None:
        return []
    idfs = await search.idf_weights(conn, target, parsed.terms)
    v = target.vector
    rows = (
        await session.execute(
            text(
                f"SELECT id, created_at, deleted_at, tsvector_to_array({v}), length({v}), "
                f"{v} @@ CAST(:tsq AS tsquery) FROM pokervod.{table}"
            ),
            {"tsq": parsed.tsquery},
        )
    ).all()
    scored = []
    for id_, created, deleted, lexemes, dl, match in rows:
        if not match or (deleted is not None and not include_deleted):
            continue
        present = set(lexemes)
        term_sum = sum((w for t, w in zip(parsed.terms, idfs, strict=True) if t in present), 0.0)
        scored.append((_norm(dl, target.avgdl) * term_sum, created, id_))
    if order == "newest":
        scored.sort(key=lambda s: (s[1], s[2]), reverse=True)
    else:
        scored.sort(key=lambda s: (s[0], s[1], s[2]), reverse=True)
    return [(s[2], s[0]) for s in scored[:k]]


async def _insert_analyzed_notes(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Clips of ``rows`` (``id``, ``notes``, ``c`` for created), committed and analyzed, so
    that idf and the rare-class guesses come from real statistics."""
    await session.execute(
        text(
            "INSERT INTO pokervod.hand_clips (id, notes, created_at, updated_at) "
            "VALUES (:id, :notes, :c, :c)"
        ),
        rows,
    )
    await session.commit()
    await session.execute(text("ANALYZE pokervod.hand_clips"))
    await session.commit()


async def _got(
    session: AsyncSession, table: str, query: str, **kw: Any
) -> list[tuple[uuid.UUID, float]]:
    fn = q.search_hand_clips if table == "hand_clips" else q.search_video_files
    return [(h.id, h.rank) for h in await fn(session, query, **kw)]


@pytest.mark.parametrize(
    ("scan", "empty", "or_lengths", "class_terms", "class_fetch"),
    [
        (search.SEARCH_SCAN, search.PROBE_EMPTY_LENGTHS, search.OR_PROBE_LENGTHS, 5, 2000),
        (7, search.PROBE_EMPTY_LENGTHS, search.OR_PROBE_LENGTHS, 5, 2000),
        (7, 0, 1, 5, 2000),
        (7, search.PROBE_EMPTY_LENGTHS, search.OR_PROBE_LENGTHS, 5, 3),
        (7, 0, 1, 5, 0),
        (7, search.PROBE_EMPTY_LENGTHS, search.OR_PROBE_LENGTHS, 0, 0),
        (7, 0, 1, 0, 0),
    ],
    ids=[
        "walk",
        "probe",
        "rest",
        "or-class-probe",
        "or-class-rest",
        "or-threshold-probe",
        "or-threshold-rest",
    ],
)
async def test_search_returns_the_exact_top_k_of_a_brute_force_reference(
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
    scan: int,
    empty: int,
    or_lengths: int,
    class_terms: int,
    class_fetch: int,
) -> None:
    # scan=7: the walk gives up almost at once, so the GIN probes and the full scoring run too;
    # empty=0 / or_lengths=1: the probes hand over to the one GIN search for the rest after
    # their first length. class_terms=0: `or` queries take the threshold walk instead of the
    # term classes; class_fetch 3 or 0: the open classes' one GIN search holds too many rows,
    # so each open class is probed by length.
    monkeypatch.setattr(search, "SEARCH_SCAN", scan)
    monkeypatch.setattr(search, "PROBE_EMPTY_LENGTHS", empty)
    monkeypatch.setattr(search, "OR_PROBE_LENGTHS", or_lengths)
    monkeypatch.setattr(search, "MAX_CLASS_TERMS", class_terms)
    monkeypatch.setattr(search, "CLASS_FETCH", class_fetch)
    await _corpus(session)
    cases = [("hand_clips", x) for x in NOTE_QUERIES] + [("video_files", x) for x in TITLE_QUERIES]
    failures = []
    for table, query in cases:
        for include_deleted in (False, True):
            for order in ("rank", "newest"):
                for k in (1, 5, 20):
                    want = await _reference(
                        session, table, query, include_deleted=include_deleted, order=order, k=k
                    )
                    got = await _got(
                        session, table, query, limit=k, include_deleted=include_deleted, order=order
                    )
                    if got != want:
                        failures.append(
                            f"{table} {query!r} deleted={include_deleted} {order} k={k}"
                        )
    assert not failures, "\n".join(failures)


async def test_reference_queries_really_have_many_matches(session: AsyncSession) -> None:
    """The exactness test means something only if the top k is a choice among many."""
    await _corpus(session)
    for query in ("river", "pocket kings", '"river card"', "cooler or bad beat"):
        everything = await _reference(
            session, "hand_clips", query, include_deleted=False, order="rank", k=10_000
        )
        assert len(everything) > 10, query  # more than k=5 and 1: a real choice


async def test_shortest_note_wins_and_ties_go_to_the_newer_clip(session: AsyncSession) -> None:
    rows = [
        ("long", "Ivey calls the river with seven-deuce after a long tank in the big blind", 0),
        ("short_old", "Ivey calls the river", 3),
        ("short_new", "Negreanu calls the river", 1),
    ]
    ids = {}
    for name, notes, days in rows:
        ids[name] = uuid.uuid4()
        await session.execute(
            text(
                "INSERT INTO pokervod.hand_clips (id, notes, created_at, updated_at) "
                "VALUES (:id, :n, :c, :c)"
            ),
            {"id": ids[name], "n": notes, "c": NOW - timedelta(days=days)},
        )
    await session.commit()
    hits = await q.search_hand_clips(session, "river calls")
    assert [h.id for h in hits] == [ids["short_new"], ids["short_old"], ids["long"]]
    assert hits[0].rank == hits[1].rank > hits[2].rank > 0
    newest = await q.search_hand_clips(session, "river calls", order="newest")
    assert [h.id for h in newest] == [ids["long"], ids["short_new"], ids["short_old"]]


async def test_a_committed_clip_is_found_by_the_next_search(session: AsyncSession) -> None:
    await _corpus(session, n=100)
    clip_id = uuid.uuid4()
    await session.execute(
        text(
            "INSERT INTO pokervod.hand_clips (id, notes, created_at, updated_at) "
            "VALUES (:id, 'Ivey bluffs the river', now(), now())"
        ),
        {"id": clip_id},
    )
    await session.commit()
    assert (await q.search_hand_clips(session, "river", limit=1))[0].id == clip_id


async def test_fifty_dashes_give_nothing_and_leave_the_transaction_usable(
    session: AsyncSession,
) -> None:
    await _corpus(session, n=50)
    # websearch_to_tsquery itself fails on this one ("tsquery stack too small").
    assert await q.search_hand_clips(session, "-" * 50) == []
    assert await q.search_video_files(session, "-" * 50 + " river") == []
    assert (
        await session.execute(text("SELECT count(*) FROM pokervod.hand_clips"))
    ).scalar_one() == 50


async def test_too_long_search_text_is_refused_with_a_clear_error(session: AsyncSession) -> None:
    with pytest.raises(ValueError, match="at most 1000"):
        await q.search_hand_clips(session, "river " * 200)
    with pytest.raises(ValueError, match="order must be"):
        await q.search_hand_clips(session, "river", order="oldest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        await q.search_video_files(session, "river", limit=0)


async def test_sql_in_the_search_text_is_only_searched_for(session: AsyncSession) -> None:
    await _corpus(session, n=50)
    hits = await q.search_hand_clips(session, "'; DELETE FROM pokervod.hand_clips; --")
    assert isinstance(hits, list)
    assert (
        await session.execute(text("SELECT count(*) FROM pokervod.hand_clips"))
    ).scalar_one() == 50


TOKENS = st.one_of(
    st.sampled_from([*"\"'-|&!():*<>\\ \x00", "or ", "river ", "pocket ", "-flop ", "\ud800"]),
    st.text(max_size=5),  # any characters
)
HOSTILE = st.lists(TOKENS, max_size=120).map("".join)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=HOSTILE)
async def test_any_search_string_gives_a_list_and_never_breaks_the_transaction(
    session: AsyncSession, query: str
) -> None:
    if not (await session.execute(text("SELECT count(*) FROM pokervod.hand_clips"))).scalar_one():
        await _corpus(session, n=60)
    for fn in (q.search_hand_clips, q.search_video_files):
        hits = await fn(session, query, limit=5)
        assert isinstance(hits, list) and len(hits) <= 5
        assert all(h.rank >= 0 for h in hits)
    assert (await session.execute(text("SELECT 1"))).scalar_one() == 1


async def test_or_query_whose_terms_never_meet_uses_the_tighter_bound_and_stays_exact(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No note holds cooler, bad and beat together, so the length probe of an `or` query may
    # stop at the largest term sum that leaves one term out; the result must not change.
    # (The threshold walk: the term classes are switched off.)
    monkeypatch.setattr(search, "SEARCH_SCAN", 5)
    monkeypatch.setattr(search, "MAX_CLASS_TERMS", 0)
    seen: list[bool] = []
    real_bound = search._term_sum_bound

    def bound(idfs: Sequence[float], *, together: bool) -> float:
        seen.append(together)
        return real_bound(idfs, together=together)

    monkeypatch.setattr(search, "_term_sum_bound", bound)
    r = random.Random(5)
    filler = ["ivey", "negreanu", "flop", "turn", "river", "raise", "fold", "shove", "limp"]
    rows = []
    for i in range(300):
        head = r.choice(["cooler", "bad beat", "hero call"])
        words = " ".join(r.sample(filler, r.randint(0, len(filler))))
        created = NOW - timedelta(hours=r.randint(0, 30))
        rows.append({"id": uuid.UUID(int=i + 1), "notes": f"{head} {words}", "c": created})
    await _insert_analyzed_notes(session, rows)
    for k in (1, 5, 20):
        want = await _reference(
            session, "hand_clips", "cooler or bad beat", include_deleted=False, order="rank", k=k
        )
        assert await _got(session, "hand_clips", "cooler or bad beat", limit=k) == want
    assert seen and not any(seen)  # the probe ran, with the tighter bound


@pytest.mark.parametrize(
    ("scan", "fetch", "guess"),
    [(60, 2000, None), (5, 2000, None), (5, 0, None), (5, 3, 0.0)],
    ids=["walk", "fetch", "no-fetch", "fetch-overflows"],
)
async def test_or_query_classes_rare_and_common_stay_exact(
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
    scan: int,
    fetch: int,
    guess: float | None,
) -> None:
    # Short notes hold the rare word, long ones the common pair, and no note holds both: the
    # classes of the rare word with the pair are empty (the one GIN search for rare classes,
    # or with fetch=0 the length probe), the pair's class is cut by the bound. scan=60: the
    # walk reads the rare word's notes and some of the pair's; scan=5: the length probes
    # collect them.
    # guess=0.0: the statistics call every class rare, so the one GIN search is tried and
    # holds more than `CLASS_FETCH` rows; the classes go on by length.
    monkeypatch.setattr(search, "SEARCH_SCAN", scan)
    monkeypatch.setattr(search, "CLASS_FETCH", fetch)
    if guess is not None:
        monkeypatch.setattr(search.TermStatistics, "rows_holding", lambda self, masks: guess)
    r = random.Random(7)
    filler = ["ivey", "negreanu", "flop", "turn", "raise", "fold", "shove", "limp", "tank"]
    rows = []
    for i in range(400):
        if i < 40:
            notes = f"zyzzyva {' '.join(r.sample(filler, r.randint(0, 3)))}"
        else:
            notes = "river card " + " ".join(r.sample(filler, r.randint(3, len(filler))))
        created = NOW - timedelta(hours=r.randint(0, 30))
        rows.append({"id": uuid.UUID(int=i + 1), "notes": notes, "c": created})
    await _insert_analyzed_notes(session, rows)
    for query in (
        "zyzzyva or river card",
        "river card or zyzzyva",
        "zyzzyva or river or card",
        'zyzzyva or "card river"',
    ):
        for k in (1, 5, 20, 60):
            want = await _reference(
                session, "hand_clips", query, include_deleted=False, order="rank", k=k
            )
            assert await _got(session, "hand_clips", query, limit=k) == want, (query, k)


def test_class_restriction_is_written_as_small_as_it_can_be() -> None:
    terms = ["'a'", "'b'", "'c'"]
    every = [1, 2, 3, 4, 5, 6, 7]
    # every class open: every match holds its own class's terms, nothing to add
    assert search._union_tsquery("Q", terms, every, every) == "Q"
    # {a, b} holds {a}: rows with a and b are rows with a
    assert search._union_tsquery("Q", terms, [1, 3, 6], every) == (
        "( Q ) & ( ( 'a' ) | ( 'b' & 'c' ) )"
    )
    assert search._union_tsquery("Q", terms, [7], every) == "( Q ) & ( ( 'a' & 'b' & 'c' ) )"


def test_statistics_guess_how_many_rows_hold_a_class() -> None:
    stats = search.TermStatistics(rows=1000.0, shares=(0.5, 0.1, 0.02))
    assert stats.rows_holding([1]) == pytest.approx(500.0)
    assert stats.rows_holding([3]) == pytest.approx(50.0)  # a and b, taken as independent
    assert stats.rows_holding([4, 7]) == pytest.approx(20.0 + 1.0)
    idfs = stats.idfs()
    assert idfs[0] < idfs[1] < idfs[2]  # the rarer, the heavier


async def test_common_class_is_probed_by_length_not_fetched(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cooler`` in every long note, ``bad beat`` in the short ones: {cooler} finds nothing in
    the first lengths probed, but the statistics say it is common, so it is not fetched in one
    GIN search that would stop at `CLASS_FETCH` rows; the answer stays exact."""
    monkeypatch.setattr(search, "SEARCH_SCAN", 5)
    monkeypatch.setattr(search, "CLASS_FETCH", 20)
    filler = ["ivey", "negreanu", "flop", "turn", "raise", "fold", "shove", "limp", "tank", "call"]
    r = random.Random(11)
    rows = []
    for i in range(600):
        if i < 150:
            notes = "bad beat " + " ".join(r.sample(filler, 2))
        else:
            notes = "cooler " + " ".join(r.sample(filler, r.randint(6, len(filler))))
        created = NOW - timedelta(hours=r.randint(0, 30))
        rows.append({"id": uuid.UUID(int=i + 1), "notes": notes, "c": created})
    await _insert_analyzed_notes(session, rows)
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = session.bind.sync_engine if session.bind is not None else None
    assert engine is not None
    event.listen(engine, "before_cursor_execute", seen)
    try:
        for k in (5, 20, 60):
            want = await _reference(
                session,
                "hand_clips",
                "cooler or bad beat",
                include_deleted=False,
                order="rank",
                k=k,
            )
            assert await _got(session, "hand_clips", "cooler or bad beat", limit=k) == want, k
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    probes = [x for x in statements if "PARTITION BY" in x]
    fetches = [x for x in statements if "BETWEEN" in x]
    assert probes and not fetches
