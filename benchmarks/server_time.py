"""Server-side execution time of each read's captured SQL (``EXPLAIN (ANALYZE)``), apart from
any client: what the query shapes cost when the machine is too busy for latencies to mean much.

``python -m benchmarks.server_time [--scale default] [--draws 20]`` on an archive the benchmark
generated (the embedded server must be running, e.g. during or after ``make bench``; or pass
``--database-url``). Prints, per read, the median and max over the draws of the summed
``Execution Time`` of its statements, in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from typing import Any

import asyncpg

from benchmarks.bare import capture_cases, request_cases
from benchmarks.run import BENCH_DATA_DIR, bench_settings
from benchmarks.scales import SCALES
from pokervod_db.database import async_session_factory, create_engine
from pokervod_db.settings import Settings


async def server_times(settings: Settings, draws: int) -> dict[str, Any]:
    engine = create_engine(settings, application_name="pokervod-bench")
    try:
        factory = async_session_factory(engine)
        cases = await request_cases(factory)
        captured = await capture_cases(engine, factory, cases)
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(settings.libpq_url())
    out: dict[str, Any] = {}
    try:
        for case in cases:
            totals = []
            for i in range(min(draws, case.runs or draws)):
                total = 0.0
                for sql, args in captured[(case.name, i)]:
                    if "pokervod." not in sql:
                        continue
                    raw = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
                    plan = json.loads(raw) if isinstance(raw, str) else raw
                    total += float(plan[0]["Execution Time"])
                totals.append(total)
            out[case.name] = {
                "median_ms": round(statistics.median(totals), 3),
                "max_ms": round(max(totals), 3),
            }
            print(
                f"{case.name:34s} median {out[case.name]['median_ms']:8.3f}  max "
                f"{out[case.name]['max_ms']:8.3f} ms"
            )
    finally:
        await conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server_time")
    parser.add_argument("--scale", choices=sorted(SCALES), default="default")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    settings = bench_settings(SCALES[args.scale], url=args.database_url, data_dir=BENCH_DATA_DIR)
    asyncio.run(server_times(settings, args.draws))


if __name__ == "__main__":
    main()
