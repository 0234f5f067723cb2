"""Search relevance and latency: the package's top 20 against a brute-force reference.

For each query of a fixed set (typical multi-word, most common words, quoted phrases; on clip
notes and on video titles) the reference scores EVERY match with the same score expression
(`pokervod_db.search.score_sql`, same idf) and keeps the best 20; the package's 20 are then
counted as "reaching" when their score is at least the reference's 20th-best. The latency is
the package call alone, each run in its own transaction, as a request would be.

JSON: ``search_quality`` maps a name to ``{"query", "table", "matches", "reaching",
"mean_score", "reference_mean_score", "p95_ms"}`` (plus ``p50_ms``, ``runs``, ``met``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from benchmarks.reads import FTS_P95_MS, percentiles
from pokervod_db import search as s

K = 20
RUNS = 40
"""Timed runs per query (fewer than the read queries': the set includes slow cases)."""
REACHING_TARGET = 18

QUERIES: dict[str, tuple[str, str]] = {
    # clip notes: the table, then quoted phrases
    "notes_pocket_kings": ("pocket kings", "hand_clips"),
    "notes_hero_call": ("hero call", "hand_clips"),
    "notes_check_raise_river": ("check-raise river", "hand_clips"),
    "notes_negreanu_calls": ("negreanu calls", "hand_clips"),
    "notes_ivey_bluff": ("ivey bluff", "hand_clips"),
    "notes_flop": ("flop", "hand_clips"),
    "notes_river": ("river", "hand_clips"),
    "notes_phrase_pocket_kings": ('"pocket kings"', "hand_clips"),
    "notes_phrase_river_card": ('"river card"', "hand_clips"),
    "notes_phrase_hero_call_river": ('"hero call on the river"', "hand_clips"),
    "notes_exclude": ("ivey -river", "hand_clips"),
    "notes_or": ("cooler or bad beat", "hand_clips"),
    # video titles
    "titles_high_roller_day_2": ("high roller day 2", "video_files"),
    "titles_final_table": ("final table", "video_files"),
    "titles_wsop": ("wsop", "video_files"),
    "titles_day": ("day", "video_files"),
    "titles_phrase_main_event": ('"main event"', "video_files"),
    "titles_phrase_featured_stream": ('"featured stream"', "video_files"),
}

_TARGETS = {"hand_clips": s._CLIPS, "video_files": s._VIDEOS}

_REFERENCE_SQL = """
SELECT count(*) OVER () AS matches, score
FROM (
    SELECT {score} AS score, created_at, id
    FROM pokervod.{table}
    WHERE {vector} @@ CAST(:tsq AS tsquery) AND deleted_at IS NULL
) m
ORDER BY score DESC, created_at DESC, id DESC
LIMIT :k
"""


async def reference(session: AsyncSession, query: str, table: str) -> tuple[int, list[float]]:
    """(number of matches, the best K scores) by scoring every match: no index walk."""
    target = _TARGETS[table]
    conn = await session.connection()
    parsed = await s.parse_query(conn, query)
    if parsed is None:
        return 0, []
    idfs = await s.idf_weights(conn, target, parsed.terms)
    sql = _REFERENCE_SQL.format(
        score=s.score_sql(target.vector, target.avgdl, len(parsed.terms)),
        table=target.table,
        vector=target.vector,
    )
    params = {"tsq": parsed.tsquery, "k": K, **s.term_params(parsed.terms, idfs)}
    rows = (await conn.execute(text(sql), params)).all()
    return (rows[0][0] if rows else 0), [float(r[1]) for r in rows]


async def _package(session: AsyncSession, query: str, table: str) -> list[float]:
    if table == "hand_clips":
        return [h.rank for h in await s.search_hand_clips(session, query, limit=K)]
    return [h.rank for h in await s.search_video_files(session, query, limit=K)]


def reaching(scores: list[float], reference_scores: list[float]) -> int:
    """How many of ``scores`` reach the reference's K-th best (all, if fewer than K match)."""
    if not reference_scores:
        return len(scores)
    floor = reference_scores[-1]
    return sum(1 for x in scores if x >= floor - 1e-9 * abs(floor))


async def time_search_quality(
    factory: async_sessionmaker[AsyncSession],
    *,
    runs: int,
    log: Callable[[str], None],
    warmup: int = 3,
) -> dict[str, Any]:
    """Quality and latency of every query of `QUERIES` (``runs`` timed calls each)."""
    results: dict[str, Any] = {}
    async with factory() as session:
        refs = {}
        for name, (query, table) in QUERIES.items():
            refs[name] = await reference(session, query, table)
            await session.rollback()
    samples: dict[str, list[float]] = {name: [] for name in QUERIES}
    got: dict[str, list[float]] = {}
    async with factory() as session:
        for i in range(warmup + runs):  # round-robin, as reads.py
            for name, (query, table) in QUERIES.items():
                t0 = time.perf_counter()
                scores = await _package(session, query, table)
                elapsed = (time.perf_counter() - t0) * 1000
                await session.rollback()
                if i >= warmup:
                    samples[name].append(elapsed)
                got[name] = scores
    for name, (query, table) in QUERIES.items():
        matches, ref = refs[name]
        scores = got[name]
        stats = percentiles(samples[name])
        reach = reaching(scores, ref)
        results[name] = {
            "query": query,
            "table": table,
            "matches": matches,
            "reaching": reach,
            "mean_score": round(sum(scores) / len(scores), 6) if scores else 0.0,
            "reference_mean_score": round(sum(ref) / len(ref), 6) if ref else 0.0,
            "p95_ms": stats["p95_ms"],
            "p50_ms": stats["p50_ms"],
            "runs": stats["runs"],
            "met": reach >= min(REACHING_TARGET, len(ref)) and stats["p95_ms"] < FTS_P95_MS,
        }
        log(
            f"  {name:32s} {matches:>8,} matches  {reach:>2}/{len(ref)} reach  "
            f"p95 {stats['p95_ms']:7.2f} ms"
        )
    return results


def markdown(results: dict[str, Any]) -> list[str]:
    """The report's section for `time_search_quality`'s results."""
    lines = [
        "",
        "## Search quality (top 20 vs brute-force reference)",
        "",
        "| name | query | table | matches | reaching 20th | mean score | reference mean "
        "| p95 ms | met |",
        "|---|---|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | `{r['query']}` | {r['table']} | {r['matches']:,} | {r['reaching']} "
            f"| {r['mean_score']:.4f} | {r['reference_mean_score']:.4f} | {r['p95_ms']:.2f} "
            f"| {'yes' if r['met'] else '**no**'} |"
        )
    return lines
