"""A short soak (JSON key ``soak``): many tasks share one `Database` with the default pool and
mix reads and upserts for a fixed time. Reported: operations, errors (must be 0), latency
p50/p95/max, the most server connections the pool held at once, and connections left open
after ``dispose()`` (must be 0).

Run alone: ``python -m benchmarks.soak [seconds]`` (embedded server under
``.pokervod/bench-pgdata``).
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from benchmarks import ops
from pokervod_db import ingest, queries
from pokervod_db.database import Database
from pokervod_db.settings import Settings

APPLICATION_NAME = "pokervod-bench-soak"
TASKS = 100
SECONDS = 20.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


async def _connections(conn: Any) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", APPLICATION_NAME
        )
    )


async def soak(
    settings: Settings,
    *,
    tasks: int = TASKS,
    seconds: float = SECONDS,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Mixed reads (70 %) and small upserts (30 %) from ``tasks`` tasks for ``seconds``."""
    log(f"soak: {tasks} tasks for {seconds:g} s on the default pool …")
    database = Database.from_settings(
        settings.model_copy(update={"slow_query_ms": 60_000.0}), application_name=APPLICATION_NAME
    )
    watcher = await asyncpg.connect(ops.conninfo(settings))
    latencies: list[float] = []
    errors: dict[str, int] = {}
    peak = 0
    stop = time.monotonic() + seconds
    run = f"soak-{int(time.time())}"

    async def worker(n: int) -> None:
        rng = random.Random(n)
        i = 0
        while time.monotonic() < stop:
            i += 1
            t0 = time.perf_counter()
            try:
                async with database.transaction() as session:
                    if rng.random() < 0.7:
                        await queries.list_video_files(session, limit=20)
                    else:
                        rows = [
                            {
                                "file_path": f"/soak/{run}/{n}/{i}-{k}.mp4",
                                "file_name": f"{i}-{k}.mp4",
                                "file_size_bytes": rng.randrange(1 << 40),
                            }
                            for k in range(5)
                        ]
                        await ingest.upsert_nas_files(session, rows)
            except Exception as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            latencies.append((time.perf_counter() - t0) * 1000)

    async def watch() -> None:
        nonlocal peak
        while time.monotonic() < stop:
            peak = max(peak, await _connections(watcher))
            await asyncio.sleep(0.2)

    try:
        t0 = time.perf_counter()
        await asyncio.gather(watch(), *(worker(n) for n in range(tasks)))
        elapsed = time.perf_counter() - t0
    finally:
        await database.dispose()
    left = await _connections(watcher)
    await watcher.execute(
        "DELETE FROM pokervod.nas_files WHERE file_path LIKE $1", f"/soak/{run}/%"
    )
    await watcher.close()
    result = {
        "tasks": tasks,
        "seconds": round(elapsed, 1),
        "operations": len(latencies),
        "operations_per_s": round(len(latencies) / elapsed, 1),
        "errors": sum(errors.values()),
        "errors_by_type": errors,
        "p50_ms": round(_pct(latencies, 0.5), 2),
        "p95_ms": round(_pct(latencies, 0.95), 2),
        "max_ms": round(max(latencies, default=0.0), 2),
        "connections_peak": peak,
        "pool_limit": settings.pool_size + settings.max_overflow,
        "connections_left_after_dispose": left,
        "met": not errors and left == 0,
    }
    log(
        f"  {result['operations']} ops ({result['operations_per_s']:.0f}/s), errors "
        f"{result['errors']}, p95 {result['p95_ms']:.1f} ms, peak connections {peak}, "
        f"left {left}"
    )
    return result


def markdown_lines(section: dict[str, Any]) -> list[str]:
    """The ``soak`` section as Markdown (for `benchmarks.report`)."""
    return [
        "",
        f"## Soak ({section['tasks']} tasks, {section['seconds']:g} s, default pool)",
        "",
        "| operations | ops/s | errors | p50 ms | p95 ms | max ms | peak connections | left |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {section['operations']:,} | {section['operations_per_s']:,.0f} | {section['errors']} "
        f"| {section['p50_ms']:.1f} | {section['p95_ms']:.1f} | {section['max_ms']:.1f} "
        f"| {section['connections_peak']} of {section['pool_limit']} "
        f"| {section['connections_left_after_dispose']} |",
    ]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from benchmarks.run import BENCH_DATA_DIR
    from pokervod_db import embedded, migrate

    base = Settings(  # type: ignore[call-arg]
        _env_file=None, EMBEDDED_DATA_DIR=BENCH_DATA_DIR, EMBEDDED_DATABASE="pokervod_bench_events"
    )
    settings = embedded.start(base)
    migrate.upgrade(settings)
    asyncio.run(soak(settings, seconds=float(args[0]) if args else SECONDS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
