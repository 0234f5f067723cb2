"""Write cost of the search indexes (migration 006) on the benchmark archive.

Migration 006 adds, per searchable table, a B-tree in ranking order (``ix_*_rank``) and a GIN
index of the vector plus a length lexeme (``ix_*_len_gin``); search keeps no other state. This
times the package's own ingest (`ingest.upsert_hand_clips`, `ingest.upsert_video_files`) of
``--rows`` new rows, and a re-upsert that rewrites the text of ``--rows`` existing rows, with
both indexes present and with them dropped in the same transaction (``DROP INDEX`` is
transactional), alternately, ``--repeat`` times each. Every transaction is rolled back, so the
archive is left as it was. The texts are copied from the archive's own rows, so the vectors
look like the real ones. Medians in seconds::

    python -m benchmarks.search_writes --data-dir .pokervod/bench-pgdata
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from benchmarks.run import BENCH_DATA_DIR, bench_settings
from benchmarks.scales import SCALES
from pokervod_db import embedded, ingest
from pokervod_db.database import async_session_factory, create_engine
from pokervod_db.settings import Settings

INDEXES = {
    "hand_clips": ("ix_hand_clips_notes_rank", "ix_hand_clips_notes_len_gin"),
    "video_files": ("ix_video_files_title_rank", "ix_video_files_title_len_gin"),
}

Work = Callable[[AsyncSession], Awaitable[Any]]


async def _cases(factory: async_sessionmaker[AsyncSession], n: int) -> dict[str, tuple[str, Work]]:
    async with factory() as session:
        clips = (
            await session.execute(
                text(
                    "SELECT sheet_source, sheet_row_number, title, notes FROM pokervod.hand_clips"
                    " WHERE notes IS NOT NULL ORDER BY md5(id::text) LIMIT :n"
                ),
                {"n": n},
            )
        ).all()
        videos = (
            await session.execute(
                text(
                    "SELECT file_path, file_name, display_title, episode_id"
                    " FROM pokervod.video_files WHERE display_title IS NOT NULL"
                    " ORDER BY md5(id::text) LIMIT :n"
                ),
                {"n": n},
            )
        ).all()
        top = (
            await session.execute(
                text("SELECT coalesce(max(sheet_row_number), 0) FROM pokervod.hand_clips")
            )
        ).scalar_one()
    new_clips = [
        {
            "sheet_source": "search_writes",
            "sheet_row_number": top + 1 + i,
            "title": c.title,
            "notes": c.notes,
        }
        for i, c in enumerate(clips)
    ]
    # the same rows with another row's notes: every vector changes
    changed_clips = [
        {
            "sheet_source": c.sheet_source,
            "sheet_row_number": c.sheet_row_number,
            "title": c.title,
            "notes": clips[(i + 1) % len(clips)].notes,
        }
        for i, c in enumerate(clips)
    ]
    new_videos = [
        {
            "file_path": f"/nas/search_writes/{i}/{v.file_name}",
            "file_name": v.file_name,
            "display_title": v.display_title,
            "episode_id": v.episode_id,
        }
        for i, v in enumerate(videos)
    ]
    changed_videos = [
        {
            "file_path": v.file_path,
            "file_name": v.file_name,
            "display_title": videos[(i + 1) % len(videos)].display_title,
            "episode_id": v.episode_id,
        }
        for i, v in enumerate(videos)
    ]
    return {
        f"insert {len(new_clips)} hand clips": (
            "hand_clips",
            lambda s: ingest.upsert_hand_clips(s, new_clips),
        ),
        f"re-upsert {len(changed_clips)} hand clips, notes changed": (
            "hand_clips",
            lambda s: ingest.upsert_hand_clips(s, changed_clips),
        ),
        f"insert {len(new_videos)} video files": (
            "video_files",
            lambda s: ingest.upsert_video_files(s, new_videos),
        ),
        f"re-upsert {len(changed_videos)} video files, titles changed": (
            "video_files",
            lambda s: ingest.upsert_video_files(s, changed_videos),
        ),
    }


async def _timed(
    factory: async_sessionmaker[AsyncSession], table: str, work: Work, *, with_indexes: bool
) -> float:
    async with factory() as session:
        if not with_indexes:
            for index in INDEXES[table]:
                await session.execute(text(f"DROP INDEX pokervod.{index}"))
        t0 = time.perf_counter()
        await work(session)
        await session.flush()
        elapsed = time.perf_counter() - t0
        await session.rollback()
    return elapsed


async def measure(settings: Settings, rows: int, repeat: int) -> dict[str, Any]:
    engine = create_engine(
        settings.model_copy(update={"slow_query_ms": 60_000.0, "statement_timeout_ms": 0}),
        application_name="pokervod-bench-search-writes",
    )
    factory = async_session_factory(engine)
    try:
        results: dict[str, Any] = {}
        for name, (table, work) in (await _cases(factory, rows)).items():
            on: list[float] = []
            off: list[float] = []
            await _timed(factory, table, work, with_indexes=True)  # warm the caches
            for _ in range(repeat):
                on.append(await _timed(factory, table, work, with_indexes=True))
                off.append(await _timed(factory, table, work, with_indexes=False))
            with_s, without_s = statistics.median(on), statistics.median(off)
            results[name] = {
                "with_search_indexes_s": round(with_s, 3),
                "without_s": round(without_s, 3),
                "cost": round(with_s / without_s - 1, 3),
            }
            print(
                f"{name}: {with_s:.3f} s with the 006 indexes, {without_s:.3f} s without "
                f"(+{(with_s / without_s - 1) * 100:.0f} %)",
                flush=True,
            )
        async with factory() as session:
            sizes = (
                await session.execute(
                    text(
                        "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c"
                        " WHERE c.relname = ANY(:names) ORDER BY c.relname"
                    ),
                    {"names": [i for pair in INDEXES.values() for i in pair]},
                )
            ).all()
            database = (
                await session.execute(text("SELECT pg_database_size(current_database())"))
            ).scalar_one()
        results["index_bytes"] = {name: size for name, size in sizes}
        results["database_bytes"] = database
        return results
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="default", choices=sorted(SCALES))
    parser.add_argument("--data-dir", type=Path, default=BENCH_DATA_DIR)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    settings = bench_settings(SCALES[args.scale], url=None, data_dir=args.data_dir)
    try:
        print(json.dumps(asyncio.run(measure(settings, args.rows, args.repeat)), indent=2))
    finally:
        embedded.stop(Settings(_env_file=None, EMBEDDED_DATA_DIR=args.data_dir))  # type: ignore[call-arg]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
