"""Concurrent throughput: 32 clients run a mix of reads for a fixed time through `Database` and
`pokervod_db.queries`, then the same SQL (captured from those calls, `benchmarks.bare`) through
an asyncpg pool of the same size.

Each client loops: pick a read of the mix and a parameter draw, run it as one request, count
it. A package request is the lean form, ``async with database.reader() as r: await read(r, …)``;
a bare request takes a connection from the asyncpg pool and replays the statements that read
sent, in the same transaction shape (`benchmarks.bare.replay`). Fair both ways: the same pool
size, the same statements, and the same reset on release (asyncpg's rollback of an open
transaction, without its reset query: `pokervod_db.reader`). The two sides alternate in two halves each, so both meet the same
background load of a shared machine. On two cores the client's own CPU is the bottleneck, so
the ratio says how much of it the package's request path takes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from benchmarks.bare import PARAMETER_SETS, Statements, replay
from benchmarks.reads import Case
from pokervod_db.database import Database
from pokervod_db.reader import keep_session
from pokervod_db.settings import Settings

CLIENTS = 32
POOL_SIZE = 10
TARGET_RATIO = 0.7
MIX = (
    "project_by_code",
    "video_files_of_episode",
    "hand_clips_of_video_file",
    "list_hand_clips_first_page",
    "hand_clips_of_tag",
    "count_hand_clips_of_tag",
)
"""The reads of the issue's measurement, plus a tag's page and count."""


async def _run(
    clients: int, seconds: float, request: Callable[[random.Random], Awaitable[None]]
) -> int:
    """Requests completed by ``clients`` concurrent loops in ``seconds``."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        nonlocal done
        rng = random.Random(n)
        while time.perf_counter() < deadline:
            await request(rng)
            done += 1

    await asyncio.gather(*(client(n) for n in range(clients)))
    return done


async def time_throughput(
    settings: Settings,
    dsn: str,
    cases: list[Case],
    captured: dict[tuple[str, int], Statements],
    *,
    clients: int = CLIENTS,
    seconds: float = 10.0,
    pool_size: int = POOL_SIZE,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Reads per second of the package and of bare asyncpg, and their ratio."""
    mix = [c for c in cases if c.name in MIX]
    pool_settings = settings.model_copy(update={"pool_size": pool_size, "max_overflow": 0})
    database = Database.from_settings(pool_settings)
    pool = await asyncpg.create_pool(
        dsn, min_size=pool_size, max_size=pool_size, reset=keep_session
    )
    assert pool is not None

    async def api(rng: random.Random) -> None:
        case = rng.choice(mix)
        i = rng.randrange(PARAMETER_SETS)
        async with database.reader() as reader:
            await case.call(cast(AsyncSession, reader), random.Random(i))

    async def raw(rng: random.Random) -> None:
        case = rng.choice(mix)
        statements = captured[(case.name, rng.randrange(PARAMETER_SETS))]
        async with pool.acquire() as conn:
            await replay(conn, statements)

    api_done = raw_done = 0
    try:
        await _run(clients, 1.0, api)  # warm the pool and the statement caches
        await _run(clients, 1.0, raw)
        for _ in range(2):
            api_done += await _run(clients, seconds / 2, api)
            raw_done += await _run(clients, seconds / 2, raw)
    finally:
        await pool.close()
        await database.dispose()
    api_rate, raw_rate = api_done / seconds, raw_done / seconds
    ratio = round(api_rate / raw_rate, 3) if raw_rate else None
    log(
        f"  {clients} clients, {seconds:g} s: package {api_rate:,.0f} reads/s, "
        f"bare asyncpg {raw_rate:,.0f} reads/s, ratio {ratio}"
    )
    return {
        "clients": clients,
        "seconds": seconds,
        "pool_size": pool_size,
        "mix": [c.name for c in mix],
        "api_reads_per_s": round(api_rate, 1),
        "raw_reads_per_s": round(raw_rate, 1),
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "met": ratio is not None and ratio >= TARGET_RATIO,
    }
