"""``python -m benchmarks.run --scale default|small|tiny`` (``make bench SCALE=…``).

Builds (or reuses) a generated archive in its own database, times the read queries, the ingest
paths, the migration and backup/restore, and writes ``benchmarks/results/<scale>-<time>.json``
plus a Markdown table beside it. See ``benchmarks/README.md`` for the result format.

The database is never the user's: an embedded server under ``.pokervod/bench-pgdata`` by
default, or the server of ``BENCH_DATABASE_URL`` (its user needs CREATEDB), always in a
database named ``pokervod_bench_<scale>`` that the benchmark drops and rebuilds as it likes.
``DATABASE_URL`` is ignored on purpose.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks import (
    bare,
    events_load,
    ops,
    physical,
    reads,
    search_quality,
    soak,
    throughput,
    writes,
)
from benchmarks.generate import GENERATOR_VERSION, generate
from benchmarks.report import markdown
from benchmarks.scales import SCALES, Scale
from pokervod_db import embedded, migrate
from pokervod_db.database import async_session_factory, create_engine
from pokervod_db.settings import Settings

RESULTS_DIR = Path(__file__).parent / "results"
SECTIONS = frozenset(
    {"reads", "request_path", "throughput", "ingest", "migration", "events", "backup"}
)
BENCH_DATA_DIR = Path(".pokervod/bench-pgdata")


def bench_settings(scale: Scale, *, url: str | None, data_dir: Path) -> Settings:
    """Settings of the benchmark database of ``scale`` (created when missing)."""
    name = f"pokervod_bench_{scale.name}"
    base = Settings(_env_file=None, EMBEDDED_DATA_DIR=data_dir, EMBEDDED_DATABASE=name)  # type: ignore[call-arg]
    if url is None:
        return embedded.start(base)
    settings = base.with_url(url)
    with ops._admin(settings) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    return settings.with_url(ops.conninfo(settings, name))


async def _prepare(
    settings: Settings, scale: Scale, *, regenerate: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    """Reuse the generated archive when it matches this scale and generator; else rebuild."""
    conn = await asyncpg.connect(ops.conninfo(settings))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS public.pokervod_bench_meta "
            "(scale text, generator int, revision text, generated_at timestamptz, timings jsonb)"
        )
        meta = await conn.fetchrow("SELECT * FROM public.pokervod_bench_meta")
        head = migrate.head_revision()
        if (
            not regenerate
            and meta is not None
            and meta["scale"] == scale.name
            and meta["generator"] == GENERATOR_VERSION
            and meta["revision"] == head
        ):
            log(f"reusing the {scale.name} archive generated {meta['generated_at']:%Y-%m-%d %H:%M}")
            return {"reused": True, "timings_s": json.loads(meta["timings"])}
        log(f"generating the {scale.name} archive …")
        await conn.execute("DELETE FROM public.pokervod_bench_meta")
        await conn.execute("DROP SCHEMA IF EXISTS pokervod CASCADE")
    finally:
        await conn.close()
    migrate.upgrade(settings)
    conn = await asyncpg.connect(ops.conninfo(settings))
    try:
        t0 = time.perf_counter()
        timings = await generate(conn, scale, log=log)
        timings["total"] = round(time.perf_counter() - t0, 3)
        drift = migrate.drift(settings)
        if drift:
            raise RuntimeError(f"the generated archive differs from the models: {drift}")
        await conn.execute(
            "INSERT INTO public.pokervod_bench_meta VALUES ($1, $2, $3, now(), $4)",
            scale.name,
            GENERATOR_VERSION,
            migrate.head_revision(),
            json.dumps(timings),
        )
        log(f"generated in {timings['total']:.0f} s")
        return {"reused": False, "timings_s": timings}
    finally:
        await conn.close()


async def run_benchmark(
    settings: Settings,
    scale: Scale,
    *,
    runs: int | None = None,
    regenerate: bool = False,
    log: Callable[[str], None] = print,
    sections: frozenset[str] = SECTIONS,
) -> dict[str, Any]:
    """Run the benchmark (all ``sections`` by default) against the database of ``settings``."""
    started = datetime.now(UTC)
    db_name = settings.url().database or "pokervod_bench"
    generation = await _prepare(settings, scale, regenerate=regenerate, log=log)
    skipped = {"skipped": "not selected (--sections)"}
    migration: dict[str, Any] = skipped
    if "migration" in sections:
        log("migration (empty → head, whole process) …")
        migration = ops.time_migration(settings, db_name)
    facts = ops.server_facts(settings)
    app_settings = settings.model_copy(
        update={"slow_query_ms": 60_000.0, "statement_timeout_ms": 0}
    )
    engine = create_engine(app_settings, application_name="pokervod-bench")
    factory = async_session_factory(engine)
    read_results: dict[str, Any] = {}
    chosen: dict[str, Any] = {}
    write_results: dict[str, Any] = skipped
    replica_lag: dict[str, Any] = skipped
    request_path: dict[str, Any] = skipped
    concurrent: dict[str, Any] = skipped
    try:
        if "reads" in sections:
            log(f"read queries ({runs or scale.runs} runs each) …")
            read_results, chosen = await reads.time_reads(factory, runs=runs or scale.runs, log=log)
        log("search quality …")
        quality = await search_quality.time_search_quality(
            factory, runs=min(runs or scale.runs, search_quality.RUNS), log=log
        )
        if "request_path" in sections or "throughput" in sections:
            bare_runs = min(500, runs or scale.runs)
            log(f"request path: package vs the same SQL on bare asyncpg ({bare_runs} runs) …")
            request_path, cases, captured = await bare.time_request_path(
                engine, factory, ops.conninfo(settings), runs=bare_runs, log=log
            )
            if "throughput" in sections:
                log(f"throughput: {throughput.CLIENTS} concurrent clients …")
                concurrent = await throughput.time_throughput(
                    app_settings,
                    ops.conninfo(settings),
                    cases,
                    captured,
                    seconds=1.0 if scale.name == "tiny" else 10.0,
                    log=log,
                )
        if "ingest" in sections:
            log("ingest (a standby watches its replay lag) …")
            probe = physical.LagProbe(settings, log).start()
            try:
                write_results = await writes.time_writes(
                    engine,
                    factory,
                    fresh_rows=scale.fresh_rows,
                    orm_rows=scale.orm_rows,
                    reupsert=True,
                    log=log,
                )
            finally:
                replica_lag = probe.finish()
    finally:
        await engine.dispose()
    events: dict[str, Any] = skipped
    soaked: dict[str, Any] = skipped
    if "events" in sections:
        per_writer = 5 if scale.name == "tiny" else events_load.EVENTS_PER_WRITER
        events = await events_load.time_events(settings, per_writer=per_writer, log=log)
        soaked = await soak.soak(
            settings, seconds=2.0 if scale.name == "tiny" else soak.SECONDS, log=log
        )
    backup: dict[str, Any] = skipped
    physical_results: dict[str, Any] = skipped
    if "backup" in sections:
        log("backup and restore …")
        backup = ops.time_backup_restore(settings, db_name, log=log)
        log("physical backup and restore …")
        physical_results = physical.time_physical(settings, log=log)
    return {
        "scale": scale.name,
        "counts": scale.counts(),
        "started_at": started.isoformat(),
        "duration_s": round((datetime.now(UTC) - started).total_seconds(), 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "postgres": {k: v for k, v in facts.items() if k in ("version", "settings")},
        "database_size_bytes": facts["database_size_bytes"],
        "database_size": facts["database_size"],
        "tables": facts["tables"],
        "generation": generation,
        "parameters": chosen,
        "reads": read_results,
        "search_quality": quality,
        "ingest": write_results,
        "migration": migration,
        "backup_restore": backup,
        "physical": physical_results,
        "replica_lag": replica_lag,
        "events": events,
        "soak": soaked,
        "request_path": request_path,
        "throughput": concurrent,
    }


def save(results: dict[str, Any], output_dir: Path) -> tuple[Path, Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromisoformat(results["started_at"]).strftime("%Y%m%dT%H%M%SZ")
    json_path = output_dir / f"{results['scale']}-{stamp}.json"
    md_path = json_path.with_suffix(".md")
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    md_path.write_text(markdown(results))
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="default")
    parser.add_argument("--runs", type=int, default=None, help="runs per read query")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--regenerate", action="store_true", help="rebuild the archive")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL") or None,
        help="server to use instead of the embedded one (default: $BENCH_DATABASE_URL)",
    )
    parser.add_argument("--data-dir", type=Path, default=BENCH_DATA_DIR)
    parser.add_argument(
        "--sections",
        default=",".join(sorted(SECTIONS)),
        help=f"comma-separated subset of {','.join(sorted(SECTIONS))} (default: all)",
    )
    args = parser.parse_args(argv)
    sections = frozenset(s.strip() for s in args.sections.split(",") if s.strip())
    if not sections <= SECTIONS:
        parser.error(f"unknown sections: {', '.join(sorted(sections - SECTIONS))}")
    scale = SCALES[args.scale]
    settings = bench_settings(scale, url=args.database_url, data_dir=args.data_dir)
    results = asyncio.run(
        run_benchmark(
            settings, scale, runs=args.runs, regenerate=args.regenerate, sections=sections
        )
    )
    json_path, md_path = save(results, args.output_dir)
    print()
    print(md_path.read_text())
    print(f"saved {json_path} and {md_path}")
    if args.database_url is None:
        embedded.stop(Settings(_env_file=None, EMBEDDED_DATA_DIR=args.data_dir))  # type: ignore[call-arg]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
