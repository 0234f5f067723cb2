"""Timing of every read-side query (`pokervod_db.queries`) with parameters drawn at random."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pokervod_db import queries as q
from pokervod_db import treecache

T = TypeVar("T")

NON_FTS_P95_MS = 10.0
FTS_P95_MS = 100.0

TYPICAL_NOTE_WORDS = [
    "bluff",
    "pocket aces",
    "Ivey",
    "straight flush",
    "quads",
    "bracelet",
    "hero call",
    "Negreanu -Hellmuth",
    "cooler or bad beat",
    "seven-deuce",
    "overbets",
    "bubble",
]
TYPICAL_TITLE_WORDS = [
    "final table",
    "Ivey",
    "high roller",
    "PLO",
    "highlights",
    "mystery bounty",
    "Negreanu",
    "Razz",
    "featured stream",
    "2019 WSOP",
]


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank), mean and max, rounded to microseconds."""
    ordered = sorted(samples_ms)
    n = len(ordered)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * n) - 1)]

    return {
        "runs": n,
        "p50_ms": round(rank(0.50), 3),
        "p95_ms": round(rank(0.95), 3),
        "p99_ms": round(rank(0.99), 3),
        "mean_ms": round(sum(ordered) / n, 3),
        "max_ms": round(ordered[-1], 3),
    }


@dataclass
class Case:
    name: str
    description: str
    call: Callable[[AsyncSession, random.Random], Awaitable[Any]]
    target_ms: float | None
    runs: int | None = None  # None: the scale's runs


async def _cold(read: Awaitable[T]) -> T:
    """``read`` against a fresh, empty tree cache: a miss with all it costs (version read,
    build, version check, store), leaving the engine's cache to the warm cases."""
    with treecache.using(treecache.TreeCache()):
        return await read


async def _sample(session: AsyncSession, sql: str) -> list[Any]:
    return list((await session.execute(text(sql))).scalars())


async def common_words(session: AsyncSession, column: str, table: str, n: int = 3) -> list[str]:
    """The words found in the most rows, from a sample of about 50,000 rows (ts_stat over
    every row of a large table takes long)."""
    count = (await session.execute(text(f"SELECT count(*) FROM pokervod.{table}"))).scalar_one()
    percent = min(100.0, 50_000 * 100.0 / max(count, 1))
    rows = await session.execute(
        text(
            f"SELECT word FROM ts_stat($$SELECT {column} FROM pokervod.{table} "
            f"TABLESAMPLE SYSTEM ({percent:.4f}) REPEATABLE (1)$$) "
            "ORDER BY ndoc DESC, word LIMIT :n"
        ),
        {"n": n},
    )
    return list(rows.scalars())


async def build_cases(session: AsyncSession) -> tuple[list[Case], dict[str, Any]]:
    """The queries to time, with their parameter pools; also what was chosen, for the report."""
    codes = await _sample(session, "SELECT code FROM pokervod.projects WHERE deleted_at IS NULL")
    projects = await _sample(session, "SELECT id FROM pokervod.projects WHERE deleted_at IS NULL")
    episodes = await _sample(
        session, "SELECT id FROM pokervod.episodes ORDER BY md5(id::text) LIMIT 2000"
    )
    videos = await _sample(
        session,
        "SELECT id FROM pokervod.video_files WHERE deleted_at IS NULL "
        "ORDER BY md5(id::text) LIMIT 2000",
    )
    players = await _sample(
        session, "SELECT id FROM pokervod.players ORDER BY md5(id::text) LIMIT 2000"
    )
    tags = await _sample(session, "SELECT id FROM pokervod.tags")
    biggest_tag = (
        await session.execute(
            text(
                "SELECT tag_id FROM pokervod.hand_clip_tags GROUP BY tag_id "
                "ORDER BY count(*) DESC LIMIT 1"
            )
        )
    ).scalar_one()
    star_player = (
        await session.execute(
            text(
                "SELECT player_id FROM pokervod.hand_clip_players GROUP BY player_id "
                "ORDER BY count(*) DESC LIMIT 1"
            )
        )
    ).scalar_one()
    video_count = (
        await session.execute(
            text("SELECT count(*) FROM pokervod.video_files WHERE deleted_at IS NULL")
        )
    ).scalar_one()
    page = 20
    deep = min(999, max(1, video_count // page - 2))  # page 1,000 (or the last full one)
    deep_offset = page * (deep - 1)
    cursor_row = (
        await session.execute(
            text(
                "SELECT created_at, id FROM pokervod.video_files WHERE deleted_at IS NULL "
                "ORDER BY created_at DESC, id DESC OFFSET :o LIMIT 1"
            ),
            {"o": deep_offset - 1},
        )
    ).one()
    deep_cursor = q.Cursor(created_at=cursor_row[0], id=cursor_row[1])
    common_notes = await common_words(session, "notes_tsv", "hand_clips")
    common_titles = await common_words(session, "title_tsv", "video_files")

    def pick(pool: list[Any]) -> Callable[[random.Random], Any]:
        return lambda r: r.choice(pool)

    p_code, p_project, p_episode, p_video = (
        pick(codes),
        pick(projects),
        pick(episodes),
        pick(videos),
    )
    p_player, p_tag = pick(players), pick(tags)

    cases = [
        Case(
            "project_by_code",
            "get_project_by_code",
            lambda s, r: q.get_project_by_code(s, p_code(r)),
            NON_FTS_P95_MS,
        ),
        Case(
            "catalog_tree",
            "get_catalog_tree: project → seasons → events → episodes (typed named tuples; "
            "tree cache warm)",
            lambda s, r: q.get_catalog_tree(s, p_project(r)),
            NON_FTS_P95_MS,
        ),
        Case(
            "catalog_tree_cold",
            "get_catalog_tree past the tree cache: every call a miss (informative)",
            lambda s, r: _cold(q.get_catalog_tree(s, p_project(r))),
            None,
        ),
        Case(
            "catalog_tree_orm",
            "get_catalog_tree_orm: the same tree as ORM objects (selectinload; informative)",
            lambda s, r: q.get_catalog_tree_orm(s, p_project(r)),
            None,
            runs=20,
        ),
        Case(
            "catalog_tree_json",
            "get_catalog_tree_json: the same tree built as JSON by PostgreSQL (tree cache warm)",
            lambda s, r: q.get_catalog_tree_json(s, p_project(r)),
            NON_FTS_P95_MS,
        ),
        Case(
            "catalog_tree_json_cold",
            "get_catalog_tree_json past the tree cache: every call a miss (informative)",
            lambda s, r: _cold(q.get_catalog_tree_json(s, p_project(r))),
            None,
        ),
        Case(
            "video_files_of_episode",
            "get_video_files_of_episode",
            lambda s, r: q.get_video_files_of_episode(s, p_episode(r)),
            NON_FTS_P95_MS,
        ),
        Case(
            "hand_clips_of_video_file",
            "get_hand_clips_of_video_file (with tags and players)",
            lambda s, r: q.get_hand_clips_of_video_file(s, p_video(r)),
            NON_FTS_P95_MS,
        ),
        Case(
            "hand_clips_of_player",
            "get_hand_clips_of_player, first page of 20, random player",
            lambda s, r: q.get_hand_clips_of_player(s, p_player(r)),
            NON_FTS_P95_MS,
        ),
        Case(
            "hand_clips_of_star_player",
            "get_hand_clips_of_player, first page, the player in most clips",
            lambda s, r: q.get_hand_clips_of_player(s, star_player),
            NON_FTS_P95_MS,
        ),
        Case(
            "hand_clips_of_tag",
            "get_hand_clips_of_tag, first page of 20, random tag",
            lambda s, r: q.get_hand_clips_of_tag(s, p_tag(r)),
            NON_FTS_P95_MS,
        ),
        Case(
            "count_hand_clips_of_tag",
            "count_hand_clips_of_tag (live clips), random tag",
            lambda s, r: q.count_hand_clips_of_tag(s, p_tag(r)),
            NON_FTS_P95_MS,
        ),
        Case(
            "count_hand_clips_of_biggest_tag",
            "count_hand_clips_of_tag, the tag on most clips",
            lambda s, r: q.count_hand_clips_of_tag(s, biggest_tag),
            NON_FTS_P95_MS,
        ),
        Case(
            "list_video_files_offset_deep",
            f"list_video_files offset={deep_offset} (page {deep})",
            lambda s, r: q.list_video_files(s, offset=deep_offset),
            NON_FTS_P95_MS,
        ),
        Case(
            "list_video_files_keyset_deep",
            f"list_video_files after=cursor (page {deep})",
            lambda s, r: q.list_video_files(s, after=deep_cursor),
            NON_FTS_P95_MS,
        ),
        Case(
            "list_hand_clips_first_page",
            "list_hand_clips, first page",
            lambda s, r: q.list_hand_clips(s),
            NON_FTS_P95_MS,
        ),
        Case(
            "search_titles_typical",
            "search_video_files top 20, typical words",
            lambda s, r: q.search_video_files(s, r.choice(TYPICAL_TITLE_WORDS)),
            FTS_P95_MS,
        ),
        Case(
            "search_titles_common",
            f"search_video_files top 20, most common words {common_titles}",
            lambda s, r: q.search_video_files(s, r.choice(common_titles)),
            FTS_P95_MS,
        ),
        Case(
            "search_notes_typical",
            "search_hand_clips top 20, typical words",
            lambda s, r: q.search_hand_clips(s, r.choice(TYPICAL_NOTE_WORDS)),
            FTS_P95_MS,
        ),
        Case(
            "search_notes_common",
            f"search_hand_clips top 20, most common words {common_notes}",
            lambda s, r: q.search_hand_clips(s, r.choice(common_notes)),
            FTS_P95_MS,
        ),
        Case(
            "search_notes_phrase_worst",
            "search_hand_clips, a quoted phrase of two common words that never meet "
            "(known worst case; informative, fewer runs)",
            lambda s, r: q.search_hand_clips(s, f'"{common_notes[0]} {common_notes[1]}"'),
            None,
            runs=20,
        ),
    ]
    chosen = {
        "common_note_words": common_notes,
        "common_title_words": common_titles,
        "typical_note_words": TYPICAL_NOTE_WORDS,
        "typical_title_words": TYPICAL_TITLE_WORDS,
        "deep_page": deep,
        "biggest_tag": str(biggest_tag),
        "star_player": str(star_player),
    }
    return cases, chosen


async def time_reads(
    factory: async_sessionmaker[AsyncSession],
    *,
    runs: int,
    log: Callable[[str], None],
    seed: int = 7,
    warmup: int = 20,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Time every case ``runs`` times, round-robin, after ``warmup`` untimed rounds.

    Round-robin (case 1, case 2, …, case 1, …) rather than one case after the other, so that
    every query meets the same background load on a shared machine, and the caches hold what
    mixed traffic leaves in them. Each run is its own transaction, as an API request is.
    """
    async with factory() as session:
        cases, chosen = await build_cases(session)
        await session.rollback()
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {case.name: [] for case in cases}
    sessions = {case.name: factory() for case in cases}
    try:
        warm = min(warmup, runs)
        for i in range(warm + runs):
            for case in cases:
                if i >= warm + (case.runs or runs):
                    continue
                session = sessions[case.name]
                t0 = time.perf_counter()
                await case.call(session, rng)
                elapsed = (time.perf_counter() - t0) * 1000
                await session.rollback()  # end the transaction, as a request would
                session.expunge_all()
                if i >= warm:
                    samples[case.name].append(elapsed)
            if i == warm and runs >= 100:
                log(f"  warm; timing {runs} rounds …")
    finally:
        for session in sessions.values():
            await session.close()
    results: dict[str, Any] = {}
    for case in cases:
        stats = percentiles(samples[case.name])
        stats["description"] = case.description
        stats["target_p95_ms"] = case.target_ms
        stats["met"] = None if case.target_ms is None else stats["p95_ms"] < case.target_ms
        results[case.name] = stats
        log(f"  {case.name:34s} p50 {stats['p50_ms']:8.2f}  p95 {stats['p95_ms']:8.2f} ms")
    return results, chosen
