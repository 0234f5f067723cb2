"""Event delivery under concurrent writers (JSON key ``events``).

For 1, 8 and 32 writers, each writer stores events with `store_event` in transactions of its own
while a listener in another process (`pokervod_db.events.listen`, as a service would run it)
prints what it receives. Reported per writer count: emit rate (events/s over the writers'
wall time), delivery latency (listener receipt minus the moment the writer asked to commit:
p50/p95/max ms), and whether every event arrived once and in id order.

Run alone: ``python -m benchmarks.events_load`` (embedded server under ``.pokervod/bench-pgdata``).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pokervod_db.database import async_session_factory, create_engine
from pokervod_db.events import Event, listen, store_event
from pokervod_db.settings import Settings

WRITER_COUNTS = (1, 8, 32)
EVENTS_PER_WRITER = 50
TARGET_P95_MS = 50.0
_REPOSITORY = Path(__file__).resolve().parents[1]
_URL_ENV = "POKERVOD_EVENTS_BENCH_URL"  # the URL goes to the child by environment, never argv


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


async def _listener_main() -> None:
    """Child process: print ``ready`` once listening, then ``<id> <unix time>`` per event."""
    settings = Settings(_env_file=None).with_url(os.environ[_URL_ENV])  # type: ignore[call-arg]
    out = sys.stdout

    def ready(_last: int) -> None:
        out.write("ready\n")
        out.flush()

    async for event in listen(settings, types=["bench.events"], on_connected=ready):
        out.write(f"{event.id} {time.time():.6f}\n")
        out.flush()


async def _run_one(settings: Settings, writers: int, per_writer: int) -> dict[str, Any]:
    env = {**os.environ, _URL_ENV: settings.libpq_url()}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.events_load",
        "--listen",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        cwd=_REPOSITORY,  # `-m benchmarks…` from any working directory
    )
    assert child.stdout is not None
    received: list[tuple[int, float]] = []
    try:
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        if line.strip() != b"ready":
            raise RuntimeError(f"event listener did not start: {line!r}")
        engine = create_engine(
            settings.model_copy(update={"pool_size": writers, "max_overflow": 0}),
            application_name="pokervod-bench-events",
        )
        factory = async_session_factory(engine)
        committed: dict[int, float] = {}

        async def writer(w: int) -> None:
            for i in range(per_writer):
                async with factory() as session:
                    async with session.begin():
                        ev = await store_event(
                            session, Event(type="bench.events", payload={"w": w, "i": i})
                        )
                        asked = time.time()
                    assert ev.id is not None
                    committed[ev.id] = asked

        try:
            t0 = time.perf_counter()
            await asyncio.gather(*(writer(w) for w in range(writers)))
            elapsed = time.perf_counter() - t0
        finally:
            await engine.dispose()
        total = writers * per_writer
        deadline = time.monotonic() + 30
        while len(received) < total and time.monotonic() < deadline:
            try:
                line = await asyncio.wait_for(child.stdout.readline(), 1)
            except TimeoutError:
                continue
            if not line:
                break
            ident, at = line.split()
            received.append((int(ident), float(at)))
        # Anything more within a short grace period would be a duplicate.
        with_extra = True
        while with_extra:
            try:
                line = await asyncio.wait_for(child.stdout.readline(), 0.3)
            except TimeoutError:
                break
            with_extra = bool(line)
            if line:
                ident, at = line.split()
                received.append((int(ident), float(at)))
    finally:
        child.terminate()
        await child.wait()
    ids = [i for i, _ in received]
    latencies = [(at - committed[i]) * 1000 for i, at in received if i in committed]
    return {
        "writers": writers,
        "events": total,
        "delivered": len(received),
        "exactly_once": sorted(ids) == sorted(committed) and len(set(ids)) == len(ids),
        "in_order": ids == sorted(ids),
        "emit_events_per_s": round(total / elapsed, 1),
        "latency_p50_ms": round(_pct(latencies, 0.50), 2),
        "latency_p95_ms": round(_pct(latencies, 0.95), 2),
        "latency_max_ms": round(max(latencies, default=0.0), 2),
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else 0.0,
    }


async def time_events(
    settings: Settings,
    *,
    writer_counts: Sequence[int] = WRITER_COUNTS,
    per_writer: int = EVENTS_PER_WRITER,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Emit rate and delivery latency per writer count (the ``events`` section)."""
    runs = {}
    for writers in writer_counts:
        log(f"events: {writers} writers × {per_writer} …")
        r = await _run_one(settings, writers, per_writer)
        log(
            f"  {r['emit_events_per_s']:.0f} events/s, latency p50 {r['latency_p50_ms']:.1f} ms, "
            f"p95 {r['latency_p95_ms']:.1f} ms, max {r['latency_max_ms']:.1f} ms, "
            f"once {r['exactly_once']}, in order {r['in_order']}"
        )
        runs[str(writers)] = r
    worst = runs.get(str(max(writer_counts)))
    return {
        "per_writer": per_writer,
        "runs": runs,
        "target_p95_ms": TARGET_P95_MS,
        "met": None
        if worst is None
        else bool(
            worst["latency_p95_ms"] < TARGET_P95_MS and worst["exactly_once"] and worst["in_order"]
        ),
    }


def markdown_lines(section: dict[str, Any]) -> list[str]:
    """The ``events`` section as a Markdown table (for `benchmarks.report`)."""
    lines = [
        "",
        f"## Events ({section['per_writer']} per writer, listener in another process)",
        "",
        "| writers | events/s | p50 ms | p95 ms | max ms | once, in order |",
        "|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in section["runs"].values():
        ok = "yes" if r["exactly_once"] and r["in_order"] else "**no**"
        lines.append(
            f"| {r['writers']} | {r['emit_events_per_s']:,.0f} | {r['latency_p50_ms']:.1f} "
            f"| {r['latency_p95_ms']:.1f} | {r['latency_max_ms']:.1f} | {ok} |"
        )
    lines.append(f"\nTarget: p95 < {section['target_p95_ms']:g} ms at the most writers.")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--listen"]:
        asyncio.run(_listener_main())
        return 0
    from benchmarks.run import BENCH_DATA_DIR
    from pokervod_db import embedded, migrate

    base = Settings(  # type: ignore[call-arg]
        _env_file=None, EMBEDDED_DATA_DIR=BENCH_DATA_DIR, EMBEDDED_DATABASE="pokervod_bench_events"
    )
    settings = embedded.start(base)
    migrate.upgrade(settings)
    counts = tuple(int(a) for a in args) or WRITER_COUNTS  # e.g. `… events_load 32`
    asyncio.run(time_events(settings, writer_counts=counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
