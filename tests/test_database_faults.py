"""Faults meet clear errors: server down or gone mid-call, pool exhausted, runaway statements;
the retry helper on real serialization failures, deadlocks and lost connections; 200 tasks."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from pokervod_db.database import Database, create_sync_engine
from pokervod_db.errors import (
    DatabaseUnavailableError,
    PokervodDBError,
    PoolExhaustedError,
    StatementTimeoutError,
)
from pokervod_db.settings import Settings


def _one_line(exc: BaseException) -> str:
    message = str(exc)
    assert message and "\n" not in message, message
    return message


async def test_runaway_statement_is_cancelled_with_a_clear_error(db_settings: Settings) -> None:
    database = Database.from_settings(db_settings.model_copy(update={"statement_timeout_ms": 200}))
    try:
        with pytest.raises(StatementTimeoutError) as caught:
            async with database.transaction() as session:
                await session.execute(text("SELECT pg_sleep(5)"))
        assert "DB_STATEMENT_TIMEOUT_MS" in _one_line(caught.value)
        async with database.transaction() as session:  # the pool is usable afterwards
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await database.dispose()


async def test_timeouts_apply_to_application_connections_only(
    db_settings: Settings, db: Database
) -> None:
    async with db.transaction() as session:
        statement = (await session.execute(text("SHOW statement_timeout"))).scalar_one()
        idle = (
            await session.execute(text("SHOW idle_in_transaction_session_timeout"))
        ).scalar_one()
    assert (statement, idle) == ("30s", "1min")
    maintenance = create_sync_engine(db_settings)  # migrations, backup, restore
    try:
        with maintenance.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "0"
    finally:
        maintenance.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://nobody@/pokervod?host=/nonexistent-socket-dir",  # FileNotFoundError
        "postgresql://nobody@127.0.0.1:1/pokervod",  # connection refused
    ],
)
async def test_transaction_with_server_down_is_database_unavailable(url: str) -> None:
    settings = Settings(_env_file=None, DATABASE_URL=url, DB_CONNECT_TIMEOUT=2)
    database = Database.from_settings(settings)
    try:
        with pytest.raises(DatabaseUnavailableError) as caught:
            async with database.transaction() as session:
                await session.execute(text("SELECT 1"))
        assert "cannot connect" in _one_line(caught.value)
        with pytest.raises(DatabaseUnavailableError):
            await database.run_in_transaction(_select_one, attempts=2)
    finally:
        await database.dispose()


async def _select_one(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT 1"))).scalar_one())


async def test_connection_killed_mid_call_is_database_unavailable(
    db: Database, db_settings: Settings
) -> None:
    async def kill_soon(pid: int) -> None:
        await asyncio.sleep(0.3)
        with psycopg.connect(db_settings.libpq_url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    with pytest.raises(DatabaseUnavailableError) as caught:
        async with db.transaction() as session:
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            killer = asyncio.create_task(kill_soon(pid))
            await session.execute(text("SELECT pg_sleep(10)"))
    await killer
    _one_line(caught.value)
    assert await db.run_in_transaction(_select_one) == 1  # the pool recovers


async def test_exhausted_pool_names_its_size_and_timeout(db_settings: Settings) -> None:
    settings = db_settings.model_copy(
        update={"pool_size": 1, "max_overflow": 0, "pool_timeout": 0.2}
    )
    database = Database.from_settings(settings)
    try:
        async with database.transaction() as held:
            await held.execute(text("SELECT 1"))
            with pytest.raises(PoolExhaustedError) as caught:
                async with database.transaction() as session:
                    await session.execute(text("SELECT 1"))
        message = _one_line(caught.value)
        assert "1 pooled" in message and "0.2 s" in message and "DB_POOL_SIZE" in message
        assert isinstance(caught.value, DatabaseUnavailableError)
    finally:
        await database.dispose()


# --- retries ---------------------------------------------------------------------------------


@pytest.fixture
async def counters(db: Database) -> Database:
    async with db.transaction() as session:
        await session.execute(text("CREATE TABLE public.counters (id int PRIMARY KEY, n int)"))
        await session.execute(text("INSERT INTO public.counters VALUES (1, 0), (2, 0)"))
    return db


async def _values(db: Database) -> list[int]:
    async with db.transaction() as session:
        rows = await session.execute(text("SELECT n FROM public.counters ORDER BY id"))
        return [int(n) for n in rows.scalars()]


async def test_retry_runs_again_after_a_real_serialization_failure(counters: Database) -> None:
    attempts: list[int] = []

    async def work(session: AsyncSession) -> str:
        attempts.append(1)
        await session.execute(text("SELECT n FROM public.counters WHERE id = 1"))  # snapshot
        if len(attempts) == 1:  # a concurrent update commits after our snapshot was taken
            async with counters.transaction() as other:
                await other.execute(text("UPDATE public.counters SET n = n + 10 WHERE id = 1"))
        await session.execute(text("UPDATE public.counters SET n = n + 1 WHERE id = 1"))
        return "done"

    result = await counters.run_in_transaction(work, isolation_level="REPEATABLE READ")
    assert result == "done" and len(attempts) == 2
    assert await _values(counters) == [11, 0]  # both updates, none lost, none doubled


async def test_retry_runs_again_after_a_real_deadlock(counters: Database) -> None:
    attempts: list[int] = []
    waiting = asyncio.Event()

    async def other_side() -> None:
        async with counters.transaction() as other:
            await other.execute(text("UPDATE public.counters SET n = n + 10 WHERE id = 2"))
            await waiting.wait()
            await asyncio.sleep(0.3)  # the work now waits for row 2
            await other.execute(text("UPDATE public.counters SET n = n + 10 WHERE id = 1"))

    async def work(session: AsyncSession) -> None:
        attempts.append(1)
        await session.execute(text("UPDATE public.counters SET n = n + 1 WHERE id = 1"))
        if len(attempts) == 1:
            waiting.set()
        await session.execute(text("UPDATE public.counters SET n = n + 1 WHERE id = 2"))

    other = asyncio.create_task(other_side())
    await asyncio.sleep(0.2)  # the other side holds row 2 first
    await counters.run_in_transaction(work)
    await other
    assert len(attempts) == 2
    assert await _values(counters) == [11, 11]


async def test_retry_runs_again_after_the_connection_is_lost_before_commit(
    counters: Database,
) -> None:
    attempts: list[int] = []

    async def work(session: AsyncSession) -> None:
        attempts.append(1)
        await session.execute(text("UPDATE public.counters SET n = n + 1 WHERE id = 1"))
        if len(attempts) == 1:
            await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    await counters.run_in_transaction(work)
    assert len(attempts) == 2
    assert await _values(counters) == [1, 0]


async def test_retry_is_bounded_and_never_retries_the_callers_own_errors(
    counters: Database,
) -> None:
    calls: list[int] = []

    async def always_conflicts(session: AsyncSession) -> None:
        calls.append(1)
        await session.execute(text("SELECT n FROM public.counters WHERE id = 1"))
        async with counters.transaction() as other:
            await other.execute(text("UPDATE public.counters SET n = n + 1 WHERE id = 1"))
        await session.execute(text("UPDATE public.counters SET n = 0 WHERE id = 1"))

    with pytest.raises(PokervodDBError, match="serialize"):
        await counters.run_in_transaction(
            always_conflicts, attempts=3, isolation_level="REPEATABLE READ"
        )
    assert len(calls) == 3

    async def broken(session: AsyncSession) -> None:
        calls.append(1)
        raise ValueError("bad input")

    calls.clear()
    with pytest.raises(ValueError, match="bad input"):
        await counters.run_in_transaction(broken)
    assert len(calls) == 1
    with pytest.raises(ValueError, match="attempts"):
        await counters.run_in_transaction(broken, attempts=0)


# --- load ------------------------------------------------------------------------------------


async def test_200_concurrent_tasks_on_the_default_pool_pass_and_leave_no_connection(
    db_settings: Settings,
) -> None:
    database = Database.from_settings(db_settings)
    name = db_settings.url().database

    async def task(i: int) -> int:
        async with database.transaction() as session:
            await session.execute(
                text("INSERT INTO pokervod.tags (name, category) VALUES (:n, 'emotion')"),
                {"n": f"load-{i}"},
            )
            return int(
                (await session.execute(text("SELECT count(*) FROM pokervod.tags"))).scalar_one()
            )

    try:
        results = await asyncio.gather(*(task(i) for i in range(200)))
        assert len(results) == 200 and min(results) >= 1
        async with database.transaction() as session:
            total = await session.scalar(text("SELECT count(*) FROM pokervod.tags"))
        assert total == 200
    finally:
        await database.dispose()
    with psycopg.connect(db_settings.libpq_url(), autocommit=True) as admin:
        left = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (name, "pokervod-db"),
        ).fetchone()
    assert left == (0,)
