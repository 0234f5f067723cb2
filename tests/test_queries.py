"""The read side: right rows on factory data, pagination, search input, and the planner's index."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from benchmarks.generate import generate
from benchmarks.scales import Scale
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

from pokervod_db import fastpath, treecache
from pokervod_db import queries as q
from pokervod_db.database import async_session_factory, create_engine
from pokervod_db.models import HandClip
from tests.factories import (
    EpisodeFactory,
    EventFactory,
    HandClipFactory,
    PlayerFactory,
    ProjectFactory,
    SeasonFactory,
    TagFactory,
    VideoFileFactory,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _deleted() -> datetime:
    return NOW - timedelta(days=1)


# --- catalog ----------------------------------------------------------------------------------


async def test_project_by_code_leaves_out_soft_deleted_unless_asked(session: AsyncSession) -> None:
    ProjectFactory(code="WSOP")
    ProjectFactory(code="GONE", deleted_at=_deleted())
    await session.commit()

    found = await q.get_project_by_code(session, "WSOP")
    assert found is not None and found.code == "WSOP"
    assert await q.get_project_by_code(session, "GONE") is None
    gone = await q.get_project_by_code(session, "GONE", include_deleted=True)
    assert gone is not None and gone.is_deleted
    assert await q.get_project_by_code(session, "NOPE") is None


async def _tree(session: AsyncSession) -> Any:
    project = ProjectFactory(code="HCL")
    old = SeasonFactory(project=project, year=2019, name="2019")
    new = SeasonFactory(project=project, year=2024, name="2024")
    SeasonFactory(project=project, year=2025, name="deleted", deleted_at=_deleted())
    e2 = EventFactory(season=new, event_number=2, name="Event 2")
    e1 = EventFactory(season=new, event_number=1, name="Event 1")
    EventFactory(season=new, event_number=3, name="deleted", deleted_at=_deleted())
    EventFactory(season=old, event_number=7, name="Event 7")
    EpisodeFactory(event=e1, episode_number=2, title="second")
    EpisodeFactory(event=e1, episode_number=1, title="first")
    EpisodeFactory(event=e1, episode_number=3, title="deleted", deleted_at=_deleted())
    EpisodeFactory(event=e2, episode_number=1, title="only")
    await session.commit()
    return project


async def test_catalog_tree_is_sorted_and_leaves_out_deleted_levels(session: AsyncSession) -> None:
    project = await _tree(session)
    session.expunge_all()

    tree = await q.get_catalog_tree(session, project.id)
    assert tree is not None
    assert [s.name for s in tree.seasons] == ["2024", "2019"]
    events = tree.seasons[0].events
    assert [e.name for e in events] == ["Event 1", "Event 2"]
    assert [ep.title for ep in events[0].episodes] == ["first", "second"]
    assert [e.name for e in tree.seasons[1].events] == ["Event 7"]
    assert not session.dirty  # sorting did not mark anything as changed

    full = await q.get_catalog_tree(session, project.id, include_deleted=True)
    assert full is not None
    assert [s.name for s in full.seasons] == ["deleted", "2024", "2019"]
    assert [e.name for e in full.seasons[1].events] == ["Event 1", "Event 2", "deleted"]
    assert [ep.title for ep in full.seasons[1].events[0].episodes] == [
        "first",
        "second",
        "deleted",
    ]
    assert await q.get_catalog_tree(session, uuid.uuid4()) is None


async def test_catalog_tree_leaves_out_live_children_of_deleted_parents(
    session: AsyncSession,
) -> None:
    project = ProjectFactory(code="ORPH")
    gone_season = SeasonFactory(project=project, year=2020, deleted_at=_deleted())
    live_season = SeasonFactory(project=project, year=2021)
    orphan_event = EventFactory(season=gone_season, event_number=1, name="under a deleted season")
    gone_event = EventFactory(season=live_season, event_number=1, deleted_at=_deleted())
    EpisodeFactory(event=orphan_event, episode_number=1, title="under a deleted season")
    EpisodeFactory(event=gone_event, episode_number=1, title="under a deleted event")
    await session.commit()
    session.expunge_all()

    with fastpath.capture_statements() as sent:
        tree = await q.get_catalog_tree(session, project.id)
    assert tree is not None
    assert [(s.year, s.events) for s in tree.seasons] == [(2021, ())]
    # the episodes statement is not sent when no live event is left
    assert not any("pokervod.episodes" in sql for sql, _ in sent)

    full = await q.get_catalog_tree(session, project.id, include_deleted=True)
    assert full is not None
    titles = {
        ep.title for season in full.seasons for event in season.events for ep in event.episodes
    }
    assert titles == {"under a deleted season", "under a deleted event"}


async def test_catalog_tree_json_matches_the_orm_tree(session: AsyncSession) -> None:
    project = await _tree(session)
    session.expunge_all()
    tree = await q.get_catalog_tree(session, project.id)
    document = await q.get_catalog_tree_json(session, project.id)
    assert tree is not None and document is not None
    data = json.loads(document)
    assert data["code"] == "HCL"
    assert [s["name"] for s in data["seasons"]] == [s.name for s in tree.seasons]
    assert [[e["id"] for e in s["events"]] for s in data["seasons"]] == [
        [str(e.id) for e in s.events] for s in tree.seasons
    ]
    assert [ep["title"] for ep in data["seasons"][0]["events"][0]["episodes"]] == [
        "first",
        "second",
    ]
    with_deleted = json.loads(
        await q.get_catalog_tree_json(session, project.id, include_deleted=True) or "{}"
    )
    assert len(with_deleted["seasons"]) == 3
    assert await q.get_catalog_tree_json(session, uuid.uuid4()) is None


async def test_empty_project_tree_has_no_seasons(session: AsyncSession) -> None:
    project = ProjectFactory()
    await session.commit()
    tree = await q.get_catalog_tree(session, project.id)
    assert tree is not None and tree.seasons == ()
    assert json.loads(await q.get_catalog_tree_json(session, project.id) or "")["seasons"] == []


# --- files and clips --------------------------------------------------------------------------


async def test_video_files_of_episode_by_file_name_without_deleted(session: AsyncSession) -> None:
    episode = EpisodeFactory()
    other = EpisodeFactory()
    VideoFileFactory(episode=episode, file_name="b.mp4", file_path="/n/b.mp4")
    VideoFileFactory(episode=episode, file_name="a.mp4", file_path="/n/a.mp4")
    VideoFileFactory(
        episode=episode, file_name="c.mp4", file_path="/n/c.mp4", deleted_at=_deleted()
    )
    VideoFileFactory(episode=other, file_name="x.mp4", file_path="/n/x.mp4")
    await session.commit()

    files = await q.get_video_files_of_episode(session, episode.id)
    assert [f.file_name for f in files] == ["a.mp4", "b.mp4"]
    files = await q.get_video_files_of_episode(session, episode.id, include_deleted=True)
    assert [f.file_name for f in files] == ["a.mp4", "b.mp4", "c.mp4"]
    assert await q.get_video_files_of_episode(session, uuid.uuid4()) == []


async def test_hand_clips_of_video_file_come_with_live_tags_and_players(
    session: AsyncSession,
) -> None:
    video = VideoFileFactory()
    bluff, hidden = TagFactory(name="bluff"), TagFactory(name="old", deleted_at=_deleted())
    ivey = PlayerFactory(name="Ivey")
    late = HandClipFactory(
        video_file=video, timecode="02:00:00", tags=[bluff, hidden], players=[ivey]
    )
    early = HandClipFactory(video_file=video, timecode="00:10:00", tags=[], players=[])
    HandClipFactory(video_file=video, timecode="01:00:00", deleted_at=_deleted())
    await session.commit()
    session.expunge_all()

    clips = await q.get_hand_clips_of_video_file(session, video.id)
    assert [c.id for c in clips] == [early.id, late.id]
    assert [t.name for t in clips[1].tags] == ["bluff"]
    assert [p.name for p in clips[1].players] == ["Ivey"]
    session.expunge_all()
    clips = await q.get_hand_clips_of_video_file(session, video.id, include_deleted=True)
    assert len(clips) == 3
    assert sorted(t.name for t in clips[-1].tags) == ["bluff", "old"]


async def _clips_with_ties(session: AsyncSession, n: int = 7) -> tuple[Any, Any, list[HandClip]]:
    """n tagged clips of one player; several share created_at (as a bulk load makes them)."""
    tag, player = TagFactory(), PlayerFactory()
    clips: list[HandClip] = []
    for i in range(n):
        created = NOW - timedelta(hours=i // 3)  # groups of three with the same timestamp
        clips.append(HandClipFactory(created_at=created, tags=[tag], players=[player]))
    HandClipFactory(tags=[tag], players=[player], deleted_at=_deleted(), created_at=NOW)
    HandClipFactory(tags=[TagFactory()], players=[PlayerFactory()])  # unrelated
    await session.commit()
    expected = sorted(clips, key=lambda c: (c.created_at, c.id.bytes), reverse=True)
    return tag, player, expected


PageCall = Callable[..., Awaitable[q.Page[q.HandClipItem]]]


async def _all_pages(call: PageCall, **kwargs: Any) -> list[uuid.UUID]:
    seen: list[uuid.UUID] = []
    page = await call(limit=3, **kwargs)
    while True:
        seen.extend(item.id for item in page.items)
        if page.next_cursor is None:
            return seen
        token = page.next_cursor.encode()
        page = await call(limit=3, after=q.Cursor.decode(token), **kwargs)


@pytest.mark.parametrize("by", ["tag", "player"])
async def test_keyset_pages_are_newest_first_and_stable_under_ties(
    session: AsyncSession, by: str
) -> None:
    tag, player, expected = await _clips_with_ties(session)
    call: PageCall
    if by == "tag":

        async def call(**kw: Any) -> q.Page[q.HandClipItem]:
            return await q.get_hand_clips_of_tag(session, tag.id, **kw)
    else:

        async def call(**kw: Any) -> q.Page[q.HandClipItem]:
            return await q.get_hand_clips_of_player(session, player.id, **kw)

    # Python sorts uuids by bytes as PostgreSQL does, so the order can be compared exactly.
    assert await _all_pages(call) == [c.id for c in expected]
    offsets: list[Any] = []
    for offset in (0, 3, 6):
        offsets.extend(item.id for item in (await call(limit=3, offset=offset)).items)
    assert offsets == [c.id for c in expected]
    assert len(await _all_pages(call, include_deleted=True)) == len(expected) + 1


async def test_lists_of_an_unused_tag_or_player_are_empty(session: AsyncSession) -> None:
    tag, player = TagFactory(), PlayerFactory()
    HandClipFactory()
    await session.commit()
    page = await q.get_hand_clips_of_tag(session, tag.id)
    assert page.items == [] and page.next_cursor is None and not page.has_more
    assert (await q.get_hand_clips_of_player(session, player.id)).items == []
    assert await q.count_hand_clips_of_tag(session, tag.id) == 0


async def test_count_of_a_tag_counts_live_clips_only(session: AsyncSession) -> None:
    tag = TagFactory()
    for _ in range(4):
        HandClipFactory(tags=[tag])
    HandClipFactory(tags=[tag], deleted_at=_deleted())
    HandClipFactory(tags=[TagFactory()])
    await session.commit()
    assert await q.count_hand_clips_of_tag(session, tag.id) == 4
    assert await q.count_hand_clips_of_tag(session, tag.id, include_deleted=True) == 5


async def test_list_video_files_pages_through_everything_once(session: AsyncSession) -> None:
    files = [VideoFileFactory(created_at=NOW - timedelta(minutes=i // 2)) for i in range(7)]
    VideoFileFactory(deleted_at=_deleted())
    await session.commit()
    expected = [f.id for f in sorted(files, key=lambda f: (f.created_at, f.id.bytes), reverse=True)]

    async def call(**kw: Any) -> Any:
        return await q.list_video_files(session, **kw)

    assert await _all_pages(call) == expected
    clips = await q.list_hand_clips(session, limit=5)
    assert clips.items == []


def test_cursor_round_trips_and_rejects_garbage() -> None:
    cursor = q.Cursor(created_at=NOW + timedelta(microseconds=17), id=uuid.uuid4())
    assert q.Cursor.decode(cursor.encode()) == cursor
    for token in ["", "x", "not-base64!", q.Cursor(NOW, uuid.uuid4()).encode()[:-4], "W10"]:
        with pytest.raises(q.InvalidCursorError):
            q.Cursor.decode(token)


async def test_page_arguments_are_checked(session: AsyncSession) -> None:
    cursor = q.Cursor(NOW, uuid.uuid4())
    with pytest.raises(ValueError, match="limit"):
        await q.list_video_files(session, limit=0)
    with pytest.raises(ValueError, match="not both"):
        await q.list_video_files(session, after=cursor, offset=20)
    with pytest.raises(ValueError, match="offset"):
        await q.list_video_files(session, offset=-1)


async def test_settings_changed_for_custom_plans_are_put_back(session: AsyncSession) -> None:
    tag = TagFactory()
    await session.commit()
    await session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
    await q.get_hand_clips_of_tag(session, tag.id)
    await q.search_hand_clips(session, "river")
    mode = (await session.execute(text("SHOW plan_cache_mode"))).scalar_one()
    workers = (await session.execute(text("SHOW max_parallel_workers_per_gather"))).scalar_one()
    assert (mode, workers) == ("force_generic_plan", "2")


# --- full-text search -------------------------------------------------------------------------


async def test_search_notes_stems_words_and_leaves_out_deleted(session: AsyncSession) -> None:
    calls = HandClipFactory(notes="Ivey calls the river with seven-deuce")
    HandClipFactory(notes="Negreanu folds pocket kings preflop")
    HandClipFactory(notes="Hellmuth called again", deleted_at=_deleted())
    await session.commit()

    hits = await q.search_hand_clips(session, "calling")  # stem 'call' matches 'calls'
    assert [h.id for h in hits] == [calls.id]
    assert hits[0].rank > 0
    assert len(await q.search_hand_clips(session, "call", include_deleted=True)) == 2
    assert await q.search_hand_clips(session, "aces") == []


async def test_search_titles_supports_web_search_syntax(session: AsyncSession) -> None:
    ft = VideoFileFactory(display_title="2024 WSOP Main Event Final Table")
    day = VideoFileFactory(display_title="2024 WSOP Main Event Day 2")
    VideoFileFactory(display_title="2023 Hustler Casino Live Table Talk")
    await session.commit()

    assert [h.id for h in await q.search_video_files(session, '"final table"')] == [ft.id]
    assert {h.id for h in await q.search_video_files(session, "wsop -final")} == {day.id}
    assert {h.id for h in await q.search_video_files(session, "final or hustler")} == {
        ft.id,
        *[h.id for h in await q.search_video_files(session, "hustler")],
    }


ODD_QUERIES = [
    '"',
    '"unclosed phrase',
    "'",
    "''''",
    "!!!",
    "& | ! ( ) : * <-> <2>",
    "-",
    "- - or or",
    "or",
    "(river",
    "river)",
    "river:*",
    "a & b | !c",
    "\\",
    "%_",
    "the and of",
    "",
    "   ",
    "\x00river\x00",
    "river \ud800 flop",
    "река 河 🂡",
    "x" * 1000,
    "-" * 50,
    "'; DROP TABLE pokervod.hand_clips; --",
]


async def test_search_never_raises_on_odd_input(session: AsyncSession) -> None:
    HandClipFactory(notes="the river card changes everything")
    VideoFileFactory(display_title="River Final Table")
    await session.commit()
    for query in ODD_QUERIES:
        assert isinstance(await q.search_hand_clips(session, query), list), query
        assert isinstance(await q.search_video_files(session, query), list), query
    # The transaction is still usable afterwards.
    assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    assert len(await q.search_hand_clips(session, '"river card" -flop')) == 1


# --- the planner uses the intended indexes (EXPLAIN on a populated database) -----------------

PLAN_SCALE = Scale(
    name="plans",
    projects=300,
    seasons=600,
    events=1_200,
    episodes=3_000,
    video_files=15_000,
    nas_folders=1_500,
    nas_files=15_000,
    tags=100,
    players=2_000,
    hand_clips=30_000,
    tag_links=90_000,
    player_links=60_000,
    runs=1,
    fresh_rows=1,
    orm_rows=1,
)


@pytest.fixture(scope="module")
async def populated(pg_server: Any, template_db: str) -> AsyncIterator[Any]:
    """One database with a generated archive (plus a rare tag and player), analyzed."""
    name = f"pokervod_plans_{uuid.uuid4().hex[:8]}"
    pg_server.create_database(name, template=template_db)
    settings = pg_server.settings_for(name)
    conn = await asyncpg.connect(settings.libpq_url())
    try:
        await generate(conn, PLAN_SCALE, log=lambda _: None)
        await conn.execute(
            """
            INSERT INTO pokervod.tags (id, category, name) VALUES
                ('00000000-0000-0000-0000-00000000aaaa', 'runout', 'rare_tag');
            INSERT INTO pokervod.players (id, name) VALUES
                ('00000000-0000-0000-0000-00000000bbbb', 'Rare Player');
            INSERT INTO pokervod.hand_clip_tags
                SELECT id, '00000000-0000-0000-0000-00000000aaaa' FROM pokervod.hand_clips LIMIT 3;
            INSERT INTO pokervod.hand_clip_players
                SELECT id, '00000000-0000-0000-0000-00000000bbbb' FROM pokervod.hand_clips LIMIT 3;
            UPDATE pokervod.hand_clips SET notes = notes || ' zyzzyva'
                WHERE id IN (SELECT id FROM pokervod.hand_clips LIMIT 2);
            UPDATE pokervod.video_files SET display_title = display_title || ' zyzzyva'
                WHERE id IN (SELECT id FROM pokervod.video_files LIMIT 2);
            """
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    engine = create_engine(settings)
    yield async_session_factory(engine)
    await engine.dispose()
    pg_server.drop_database(name)


def _index_names(plan: Any) -> set[str]:
    found: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if "Index Name" in node:
            found.add(node["Index Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


async def _plans(session: AsyncSession, call: Callable[[], Awaitable[Any]]) -> list[set[str]]:
    """Run ``call``, then EXPLAIN each statement it sent with the same parameters.

    Planner settings the call made through SQLAlchemy (``set_config``) are replayed in order,
    so each statement is planned under the settings it ran with.
    """
    statements: list[tuple[str, Any]] = []
    sync_engine = session.bind.sync_engine  # type: ignore[union-attr]

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        if "pokervod." in statement or "set_config(" in statement:
            statements.append((statement, params))

    event.listen(sync_engine, "before_cursor_execute", capture)
    try:
        with fastpath.capture_statements() as lean:  # statements of the lean path
            await call()
    finally:
        event.remove(sync_engine, "before_cursor_execute", capture)
    # the tree cache's version lookup (a primary-key read, tests/test_treecache.py) is left out
    statements += [
        (sql, args) for sql, args in lean if "pokervod." in sql and sql != treecache.VERSION_SQL
    ]
    conn = await session.connection()
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    await driver.execute("SET plan_cache_mode = force_custom_plan")
    await driver.execute("SET max_parallel_workers_per_gather = 0")
    plans = []
    for statement, params in statements:
        if "pokervod." not in statement:
            await driver.fetch(statement, *(params or ()))
            continue
        raw = await driver.fetchval(f"EXPLAIN (FORMAT JSON) {statement}", *(params or ()))
        plans.append(_index_names(json.loads(raw) if isinstance(raw, str) else raw))
    return plans


async def _ids(session: AsyncSession, sql: str) -> Any:
    return (await session.execute(text(sql))).scalar_one()


async def _cold(read: Awaitable[Any]) -> Any:
    """``read`` past the tree cache: every statement of a miss is sent."""
    with treecache.using(treecache.TreeCache()):
        return await read


RARE_TAG = uuid.UUID("00000000-0000-0000-0000-00000000aaaa")
RARE_PLAYER = uuid.UUID("00000000-0000-0000-0000-00000000bbbb")


async def test_each_query_uses_its_index(populated: Any) -> None:
    async with populated() as s:
        project = await _ids(s, "SELECT id FROM pokervod.projects LIMIT 1")
        episode = await _ids(s, "SELECT id FROM pokervod.episodes LIMIT 1")
        video = await _ids(s, "SELECT video_file_id FROM pokervod.hand_clips LIMIT 1")
        common_tag = await _ids(
            s,
            "SELECT tag_id FROM pokervod.hand_clip_tags GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
        )
        star = await _ids(
            s,
            "SELECT player_id FROM pokervod.hand_clip_players GROUP BY 1 "
            "ORDER BY count(*) DESC LIMIT 1",
        )
        page = await q.list_video_files(s)
        expectations: list[tuple[str, Callable[[], Awaitable[Any]], list[set[str]]]] = [
            ("project by code", lambda: q.get_project_by_code(s, "WSOP"), [{"ix_projects_code"}]),
            (
                "catalog tree",
                lambda: _cold(q.get_catalog_tree(s, project)),
                [
                    {"pk_projects"},
                    {"ix_seasons_project_year"},
                    {"ix_events_season_number"},
                    {"ix_episodes_event_id"},
                ],
            ),
            (
                "catalog tree json",
                lambda: _cold(q.get_catalog_tree_json(s, project)),
                [
                    {
                        "pk_projects",
                        "ix_seasons_project_year",
                        "ix_events_season_number",
                        "ix_episodes_event_id",
                    }
                ],
            ),
            (
                "video files of episode",
                lambda: q.get_video_files_of_episode(s, episode),
                [{"ix_video_files_episode_id"}],
            ),
            (
                "clips of video file",
                lambda: q.get_hand_clips_of_video_file(s, video),
                [{"ix_hand_clips_video_file_id"}],
            ),
            (
                "clips of a common tag",
                lambda: q.get_hand_clips_of_tag(s, common_tag),
                [{"ix_hand_clip_tags_tag_created", "pk_hand_clips"}],
            ),
            (
                "clips of a rare tag",
                lambda: q.get_hand_clips_of_tag(s, RARE_TAG),
                [{"ix_hand_clip_tags_tag_created", "pk_hand_clips"}],
            ),
            (
                "clips of a star player",
                lambda: q.get_hand_clips_of_player(s, star),
                [{"ix_hand_clips_created_at", "ix_hand_clip_players_player_clip"}],
            ),
            (
                "clips of a rare player",
                lambda: q.get_hand_clips_of_player(s, RARE_PLAYER),
                [{"ix_hand_clip_players_player_clip"}],
            ),
            (
                "count of a tag",
                lambda: q.count_hand_clips_of_tag(s, common_tag),
                [],  # one row of tag_clip_counts: read by its key, or whole when that small
            ),
            (
                "video files, keyset",
                lambda: q.list_video_files(s, after=page.next_cursor),
                [{"ix_video_files_created_at"}],
            ),
            (
                "video files, offset",
                lambda: q.list_video_files(s, offset=2000),
                [{"ix_video_files_created_at"}],
            ),
            (
                "search notes, common word",
                lambda: q.search_hand_clips(s, "river"),
                [{"ix_hand_clips_notes_rank"}],
            ),
            (
                "search notes, rare word",
                lambda: q.search_hand_clips(s, "zyzzyva"),
                [
                    {"ix_hand_clips_notes_rank"},  # the walk
                    {"ix_hand_clips_notes_rank"},  # the length range
                    {"ix_hand_clips_notes_len_gin"},  # the probe, length by length
                ],
            ),
            (
                "search titles, common word",
                lambda: q.search_video_files(s, "day"),
                [{"ix_video_files_title_rank"}],
            ),
            (
                "search titles, rare word",
                lambda: q.search_video_files(s, "zyzzyva"),
                [
                    {"ix_video_files_title_rank"},
                    {"ix_video_files_title_rank"},
                    {"ix_video_files_title_len_gin"},
                ],
            ),
        ]
        failures = []
        for label, call, expected in expectations:
            plans = await _plans(s, call)
            used = [p for p in plans if p]  # the set_config statements touch no index
            missing = [sorted(e - u) for e, u in zip(expected, used, strict=False) if not e <= u]
            if len(used) < len(expected) or any(missing):
                failures.append(f"{label}: expected {expected}, planned {used}")
            await s.rollback()
        assert not failures, "\n".join(failures)
