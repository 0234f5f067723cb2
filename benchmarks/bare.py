"""The request path against bare asyncpg: each read through the package, and the very SQL it
sent (captured from the call) replayed on a bare asyncpg connection, same transaction shape.

A request through the package is ``async with factory() as s, s.begin(): await read(s, …)``
(BEGIN, the read's statements, COMMIT, as `Database.transaction` does); the bare request is
``async with conn.transaction(): await conn.fetch(sql, *args)`` for each captured statement.
Both run round-robin with the same parameters, so the ratio of their medians is what the
package costs on top of the driver (pool checkout, session, ORM or row building, anything
else the request path does in Python).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from benchmarks.reads import NON_FTS_P95_MS, Case, build_cases, percentiles
from pokervod_db import fastpath

TARGET_RATIO = 1.5
PARAMETER_SETS = 50
"""Distinct parameter draws per read; call i uses draw i mod 50 (the captured SQL of it)."""

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
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], cases: list[Case]
) -> dict[tuple[str, int], Statements]:
    """The statements of each (read, parameter draw)."""
    captured: dict[tuple[str, int], Statements] = {}
    for case in cases:
        for i in range(PARAMETER_SETS):
            async with factory() as session, session.begin():
                with capture(engine) as sent:
                    await case.call(session, random.Random(i))
            captured[(case.name, i)] = sent
    return captured


async def replay(conn: asyncpg.Connection, statements: Statements) -> None:
    """One bare request: the captured statements in one transaction."""
    async with conn.transaction():
        for sql, args in statements:
            await conn.fetch(sql, *args)


async def package_request(factory: async_sessionmaker[AsyncSession], case: Case, i: int) -> None:
    """One request through the package: a session, one transaction, the read."""
    async with factory() as session, session.begin():
        await case.call(session, random.Random(i))


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
    """Package vs bare asyncpg per read: medians, p95s and their ratio."""
    cases = await request_cases(factory)
    captured = await capture_cases(engine, factory, cases)
    package: dict[str, list[float]] = {c.name: [] for c in cases}
    bare: dict[str, list[float]] = {c.name: [] for c in cases}
    conn = await asyncpg.connect(dsn)
    try:
        for r in range(warmup + runs):
            i = r % PARAMETER_SETS
            for case in cases:
                if r >= warmup + min(runs, case.runs or runs):
                    continue
                t0 = time.perf_counter()
                await package_request(factory, case, i)
                t1 = time.perf_counter()
                await replay(conn, captured[(case.name, i)])
                t2 = time.perf_counter()
                if r >= warmup:
                    package[case.name].append((t1 - t0) * 1000)
                    bare[case.name].append((t2 - t1) * 1000)
    finally:
        await conn.close()
    results: dict[str, Any] = {}
    for case in cases:
        p, b = percentiles(package[case.name]), percentiles(bare[case.name])
        ratio = round(p["p50_ms"] / b["p50_ms"], 2) if b["p50_ms"] else None
        results[case.name] = {
            "statements": len(captured[(case.name, 0)]),
            "package_p50_ms": p["p50_ms"],
            "package_p95_ms": p["p95_ms"],
            "bare_p50_ms": b["p50_ms"],
            "bare_p95_ms": b["p95_ms"],
            "ratio": ratio,
            "target_ratio": TARGET_RATIO,
            "met": ratio is not None and ratio <= TARGET_RATIO,
        }
        log(
            f"  {case.name:34s} package p50 {p['p50_ms']:7.3f}  bare p50 {b['p50_ms']:7.3f} ms"
            f"  ratio {ratio}"
        )
    return {"runs": runs, "reads": results}, cases, captured
