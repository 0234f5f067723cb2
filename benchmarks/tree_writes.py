"""Write cost of the catalog version triggers (007_catalog_versions) on the benchmark archive.

Each figure is a write to one project's episodes, timed with the version triggers on and with
them switched off (``ALTER TABLE … DISABLE TRIGGER`` in the same transaction), alternately,
``--repeat`` times each; every transaction is rolled back, so the archive is left as it was.
Medians in milliseconds. Run with the benchmark's data directory (the archive must be at
revision 007 or later: a ``reads`` run of ``benchmarks.run`` upgrades it)::

    python -m benchmarks.tree_writes --data-dir /work/benchdata/<name>
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

import asyncpg  # type: ignore[import-untyped]

from benchmarks import ops
from benchmarks.run import BENCH_DATA_DIR, bench_settings
from benchmarks.scales import SCALES
from pokervod_db import embedded
from pokervod_db.settings import Settings

TRIGGERS = ("catalog_versions_insert", "catalog_versions_update", "catalog_versions_delete")
SINGLE_ROWS = 1000

Write = Callable[[asyncpg.Connection, list[Any], list[Any]], Awaitable[None]]


async def _bulk_insert(conn: asyncpg.Connection, events: list[Any], _eps: list[Any]) -> None:
    await conn.execute(
        "INSERT INTO pokervod.episodes (id, event_id, episode_number, title)"
        " SELECT gen_random_uuid(), event_id, episode_number, title FROM pokervod.episodes"
        " WHERE event_id = ANY($1::uuid[])",
        events,
    )


async def _bulk_upsert(conn: asyncpg.Connection, events: list[Any], _eps: list[Any]) -> None:
    await conn.execute(
        "INSERT INTO pokervod.episodes (id, event_id, episode_number, title)"
        " SELECT id, event_id, episode_number, title || ' (2)' FROM pokervod.episodes"
        " WHERE event_id = ANY($1::uuid[])"
        " ON CONFLICT (id) DO UPDATE SET title = excluded.title",
        events,
    )


async def _single_updates(conn: asyncpg.Connection, _events: list[Any], eps: list[Any]) -> None:
    for episode in eps[:SINGLE_ROWS]:
        await conn.execute(
            "UPDATE pokervod.episodes SET title = title || '.' WHERE id = $1", episode
        )


async def _single_inserts(conn: asyncpg.Connection, events: list[Any], _eps: list[Any]) -> None:
    for i in range(SINGLE_ROWS):
        await conn.execute(
            "INSERT INTO pokervod.episodes (event_id, episode_number, title) VALUES ($1, $2, 'x')",
            events[i % len(events)],
            i,
        )


CASES: dict[str, Write] = {
    "bulk insert of a project's episodes (one statement)": _bulk_insert,
    "bulk upsert of a project's episodes (one statement, all conflict)": _bulk_upsert,
    f"{SINGLE_ROWS} single-row episode updates (one transaction)": _single_updates,
    f"{SINGLE_ROWS} single-row episode inserts (one transaction)": _single_inserts,
}


async def _timed(
    conn: asyncpg.Connection, write: Write, ev: list[Any], ep: list[Any], on: bool
) -> float:
    tx = conn.transaction()
    await tx.start()
    try:
        if not on:
            for trigger in TRIGGERS:
                await conn.execute(f"ALTER TABLE pokervod.episodes DISABLE TRIGGER {trigger}")
        t0 = time.perf_counter()
        await write(conn, ev, ep)
        return (time.perf_counter() - t0) * 1000
    finally:
        await tx.rollback()


async def measure(settings: Settings, repeat: int) -> dict[str, Any]:
    conn = await asyncpg.connect(ops.conninfo(settings))
    try:
        project = await conn.fetchval(
            "SELECT p.id FROM pokervod.projects p JOIN pokervod.catalog_versions v"
            " ON v.project_id = p.id ORDER BY p.code LIMIT 1"
        )
        events = [
            r[0]
            for r in await conn.fetch(
                "SELECT e.id FROM pokervod.events e JOIN pokervod.seasons s ON s.id = e.season_id"
                " WHERE s.project_id = $1",
                project,
            )
        ]
        episodes = [
            r[0]
            for r in await conn.fetch(
                "SELECT id FROM pokervod.episodes WHERE event_id = ANY($1::uuid[]) ORDER BY id",
                events,
            )
        ]
        results: dict[str, Any] = {"events": len(events), "episodes": len(episodes)}
        for name, write in CASES.items():
            on: list[float] = []
            off: list[float] = []
            await _timed(conn, write, events, episodes, True)  # warm the caches
            for _ in range(repeat):
                on.append(await _timed(conn, write, events, episodes, True))
                off.append(await _timed(conn, write, events, episodes, False))
            with_ms, without_ms = statistics.median(on), statistics.median(off)
            results[name] = {
                "with_triggers_ms": round(with_ms, 2),
                "without_triggers_ms": round(without_ms, 2),
                "cost_ms": round(with_ms - without_ms, 2),
            }
            print(f"{name}: {with_ms:.2f} ms with, {without_ms:.2f} ms without", flush=True)
        return results
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="default", choices=sorted(SCALES))
    parser.add_argument("--data-dir", type=Path, default=BENCH_DATA_DIR)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    settings = bench_settings(SCALES[args.scale], url=None, data_dir=args.data_dir)
    try:
        print(json.dumps(asyncio.run(measure(settings, args.repeat)), indent=2))
    finally:
        embedded.stop(Settings(_env_file=None, EMBEDDED_DATA_DIR=args.data_dir))  # type: ignore[call-arg]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
