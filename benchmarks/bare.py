"""The request path against bare asyncpg: each read through the package, and the very SQL it
sent (captured from the call) replayed on a bare asyncpg connection, in the same transaction
shape.

The package's figure is the lean form: ``async with database.reader() as r: await read(r, …)``
(`pokervod_db.reader`), a pooled connection with no session. A one-statement read sends no
BEGIN/COMMIT there, so its bare replay sends none either; a read of several statements sends
``BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`` … ``COMMIT`` and so does its replay: the
capture records transaction control as statements (`pokervod_db.reader.TRANSACTION_CONTROL`)
and `replay` sends them as they were sent. The session form (``async with factory() as s,
s.begin(): await read(s, …)``: BEGIN, the statements, COMMIT) is timed too, with its own bare
replay, as ``session_*`` keys; reads that need a session (`SESSION_ONLY`) are timed in it alone.
All run round-robin with the same parameters, so the ratio of medians is what the package costs
on top of the driver (pool checkout, row or object building, anything else in Python).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from benchmarks.reads import NON_FTS_P95_MS, Case, build_cases, percentiles
from pokervod_db import fastpath
from pokervod_db.reader import TRANSACTION_CONTROL, ReaderPool

TARGET_RATIO = 1.5
PARAMETER_SETS = 50
"""Distinct parameter draws per read; call i uses draw i mod 50 (the captured SQL of it)."""

SESSION_ONLY = frozenset({"catalog_tree_orm"})
"""Reads that return objects attached to a session: no lean form."""

Statements = list[tuple[str, tuple[Any, ...]]]


@contextmanager
def capture(engine: AsyncEngine) -> Iterator[Statements]:
    """Every statement a read sends, through SQLAlchemy or the lean path, with its arguments."""
    sent: Statements = []

    def on_execute(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        sent.append((statement, tuple(params or ())))

    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    try:
        with fastpath.capture_statements() as lean:
            yield sent
            sent.extend(lean)  # a read uses one path or the other, never both in turn
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", on_execute)


async def capture_cases(
    engine: AsyncEngine,
    factory: async_sessionmaker[AsyncSession],
    readers: ReaderPool | None,
    cases: list[Case],
) -> dict[tuple[str, int], Statements]:
    """The statements of each (read, parameter draw), transaction control included: of the
    lean form when ``readers`` is given and the read has one, else of the session form.

    Each draw is called once untimed before it is captured, so a read served from a cache
    (the catalog tree) is captured as the timed calls will run it, a hit, and the bare side
    replays the same statements instead of a miss's."""
    captured: dict[tuple[str, int], Statements] = {}
    for case in cases:
        for i in range(PARAMETER_SETS):
            if readers is not None and case.name not in SESSION_ONLY:
                await lean_request(readers, case, random.Random(i))
                with fastpath.capture_statements() as sent:
                    await lean_request(readers, case, random.Random(i))
            else:
                async with factory() as session, session.begin():
                    await case.call(session, random.Random(i))
                async with factory() as session, session.begin():
                    with capture(engine) as sent:
                        await case.call(session, random.Random(i))
                sent = [("BEGIN", ()), *sent, ("COMMIT", ())]
            captured[(case.name, i)] = sent
    return captured


async def replay(conn: asyncpg.Connection, statements: Statements) -> None:
    """One bare request: the captured statements as sent (BEGIN/COMMIT only if captured)."""
    for sql, args in statements:
        if sql in TRANSACTION_CONTROL:
            await conn.execute(sql)
        else:
            await conn.fetch(sql, *args)


async def package_request(
    factory: async_sessionmaker[AsyncSession], case: Case, rng: random.Random
) -> None:
    """One request through the package's session form: a session, one transaction, the read.
    ``rng`` (the parameter draw) is made by the caller, outside the timed span: seeding a
    Mersenne Twister is the harness's cost, not the package's."""
    async with factory() as session, session.begin():
        await case.call(session, rng)


async def lean_request(readers: ReaderPool, case: Case, rng: random.Random) -> None:
    """One request through the package's lean form: a Reader, the read."""
    async with readers.reader() as reader:
        await case.call(cast(AsyncSession, reader), rng)


async def request_cases(factory: async_sessionmaker[AsyncSession]) -> list[Case]:
    """The non-search reads of `benchmarks.reads` (search is timed there only)."""
    async with factory() as session:
        cases, _ = await build_cases(session)
        await session.rollback()
    return [c for c in cases if c.target_ms == NON_FTS_P95_MS or c.name == "catalog_tree_orm"]


async def time_request_path(
    engine: AsyncEngine,
    factory: async_sessionmaker[AsyncSession],
    dsn: str,
    *,
    runs: int,
    log: Callable[[str], None],
    warmup: int = 20,
) -> tuple[dict[str, Any], list[Case], dict[tuple[str, int], Statements]]:
    """Package (lean form) vs bare asyncpg per read, and the session form vs its own bare
    replay: medians, p95s and ratios. Returns the lean captures (the throughput mix's SQL)."""
    cases = await request_cases(factory)
    readers = ReaderPool(engine)
    try:
        captured = await capture_cases(engine, factory, readers, cases)
        in_session = await capture_cases(engine, factory, None, cases)
        timings = await _time(readers, factory, dsn, cases, captured, in_session, runs, warmup)
    finally:
        await readers.close()
    results: dict[str, Any] = {}
    for case in cases:
        t = {k: percentiles(v) for k, v in timings[case.name].items()}
        lean = case.name not in SESSION_ONLY
        package, bare = (t["lean"], t["lean_bare"]) if lean else (t["session"], t["session_bare"])
        ratio = _ratio(package, bare)
        session_ratio = _ratio(t["session"], t["session_bare"])
        statements = captured[(case.name, 0)]
        results[case.name] = {
            "form": "reader" if lean else "session",
            "statements": sum(1 for sql, _ in statements if sql not in TRANSACTION_CONTROL),
            "transaction": any(sql in TRANSACTION_CONTROL for sql, _ in statements),
            "package_p50_ms": package["p50_ms"],
            "package_p95_ms": package["p95_ms"],
            "bare_p50_ms": bare["p50_ms"],
            "bare_p95_ms": bare["p95_ms"],
            "ratio": ratio,
            "target_ratio": TARGET_RATIO,
            "met": ratio is not None and ratio <= TARGET_RATIO,
            "session_p50_ms": t["session"]["p50_ms"],
            "session_p95_ms": t["session"]["p95_ms"],
            "session_bare_p50_ms": t["session_bare"]["p50_ms"],
            "session_ratio": session_ratio,
        }
        log(
            f"  {case.name:34s} package p50 {package['p50_ms']:7.3f}  bare p50 "
            f"{bare['p50_ms']:7.3f} ms  ratio {ratio}  (session p50 "
            f"{t['session']['p50_ms']:7.3f} ms, ratio {session_ratio})"
        )
    return {"runs": runs, "reads": results}, cases, captured


async def _pair(
    request: Callable[[random.Random], Awaitable[None]],
    conn: asyncpg.Connection,
    statements: Statements,
    i: int,
    *,
    bare_first: bool,
) -> tuple[float, float]:
    """One package request and its bare replay, in ms. The order alternates by round: on a
    loaded machine the first of two back-to-back requests waits longer for the CPU (measured:
    swapping the order moved a 1.2× ratio to 0.9×), and alternating cancels that bias."""
    rng = random.Random(i)  # outside the timed span: the harness's cost, not the package's
    if bare_first:
        t0 = time.perf_counter()
        await replay(conn, statements)
        t1 = time.perf_counter()
        await request(rng)
        t2 = time.perf_counter()
        return (t2 - t1) * 1000, (t1 - t0) * 1000
    t0 = time.perf_counter()
    await request(rng)
    t1 = time.perf_counter()
    await replay(conn, statements)
    t2 = time.perf_counter()
    return (t1 - t0) * 1000, (t2 - t1) * 1000


def _ratio(package: dict[str, float], bare: dict[str, float]) -> float | None:
    return round(package["p50_ms"] / bare["p50_ms"], 2) if bare["p50_ms"] else None


async def _time(
    readers: ReaderPool,
    factory: async_sessionmaker[AsyncSession],
    dsn: str,
    cases: list[Case],
    captured: dict[tuple[str, int], Statements],
    in_session: dict[tuple[str, int], Statements],
    runs: int,
    warmup: int,
) -> dict[str, dict[str, list[float]]]:
    """Round-robin: per round and read, the lean form and its replay, the session form and its
    replay (each pair in alternating order, see `_pair`)."""
    kinds = ("lean", "lean_bare", "session", "session_bare")
    timings: dict[str, dict[str, list[float]]] = {c.name: {k: [] for k in kinds} for c in cases}
    conn = await asyncpg.connect(dsn)
    try:
        for r in range(warmup + runs):
            i = r % PARAMETER_SETS
            for case in cases:
                if r >= warmup + min(runs, case.runs or runs):
                    continue
                spent = timings[case.name]
                if case.name not in SESSION_ONLY:
                    package_ms, bare_ms = await _pair(
                        functools.partial(lean_request, readers, case),
                        conn,
                        captured[(case.name, i)],
                        i,
                        bare_first=r % 2 == 1,
                    )
                    if r >= warmup:
                        spent["lean"].append(package_ms)
                        spent["lean_bare"].append(bare_ms)
                package_ms, bare_ms = await _pair(
                    functools.partial(package_request, factory, case),
                    conn,
                    in_session[(case.name, i)],
                    i,
                    bare_first=r % 2 == 1,
                )
                if r >= warmup:
                    spent["session"].append(package_ms)
                    spent["session_bare"].append(bare_ms)
    finally:
        await conn.close()
    for spent in timings.values():
        for kind in ("lean", "lean_bare"):
            if not spent[kind]:
                spent[kind] = spent[kind.replace("lean", "session")]
    return timings
