"""Session-free reads: `Database.reader()` lends one pooled asyncpg connection as a `Reader`.

Why: a read through an `AsyncSession` pays, per request, for the session, greenlet switches
(pool checkout, BEGIN, COMMIT, close) and identity-map bookkeeping: about half a millisecond
of Python on a 2-core machine, several times an indexed lookup (docs/performance.md, "Lean
request path (round 2)"). The hot reads of `pokervod_db.queries` accept a `Reader` instead of
a session and then send their statements straight to the connection:

- a single-statement read sends no BEGIN/COMMIT: one statement is its own snapshot;
- a read of several statements runs them in one ``REPEATABLE READ READ ONLY`` transaction
  (`Reader.snapshot`), so they see one state of the archive;
- ORM results come back as *detached* instances of the same model classes (no session to
  attach them to; ``session.add(obj)`` makes one persistent again), lists as the same rows.

The connections come from an asyncpg pool of their own, opened on first use with the engine's
connect options (host, TLS, ``application_name``, statement and idle-transaction timeouts,
search_path), sized ``DB_POOL_SIZE + DB_MAX_OVERFLOW`` and waited for at most
``DB_POOL_TIMEOUT``. A connection goes back to the pool without asyncpg's reset query (one
round trip per request): a Reader changes no session state, transaction-local settings end
with their transaction, and a connection left inside a transaction is rolled back. Errors
are the package's (`pokervod_db.errors`), statement times count in `monitoring.query_stats`.

Out of scope: PgBouncer transaction pooling (the Reader needs session-level settings:
`reader()` refuses with `ConfigurationError`) and replica routing (a Reader reads the primary;
`Database.read_transaction` routes sessions).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from weakref import WeakKeyDictionary

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from pokervod_db import fastpath
from pokervod_db.errors import (
    ConfigurationError,
    PokervodDBError,
    PoolExhaustedError,
    translate,
)
from pokervod_db.monitoring import QueryStats, query_stats

SNAPSHOT_BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
"""How a `Reader` opens a snapshot (captured as a statement, so a replay has the same shape)."""
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"
TRANSACTION_CONTROL = frozenset({SNAPSHOT_BEGIN, COMMIT, ROLLBACK, "BEGIN"})
"""Captured statements that are transaction control, sent with the simple protocol."""

# Adapter keywords of SQLAlchemy's asyncpg dialect that asyncpg.connect does not take.
_ADAPTER_ONLY = frozenset(
    {"prepared_statement_cache_size", "prepared_statement_name_func", "async_fallback"}
)


@dataclass(frozen=True)
class ReaderSetup:
    """How `create_engine` connects, kept for the engine's readers (see `register`)."""

    connect_kwargs: dict[str, Any]
    max_size: int
    acquire_timeout_s: float
    shown_url: str
    pgbouncer: bool


_SETUPS: WeakKeyDictionary[Engine, ReaderSetup] = WeakKeyDictionary()


def register(engine: AsyncEngine, setup: ReaderSetup) -> None:
    """Remember how ``engine`` connects, so `Database.reader()` connects the same way."""
    _SETUPS[engine.sync_engine] = setup


def connect_kwargs(engine: AsyncEngine, connect_args: dict[str, Any]) -> dict[str, Any]:
    """``asyncpg.connect`` keywords equal to what ``engine`` passes: the dialect's reading of
    the URL (host, port, user, password, database) plus the engine's ``connect_args``."""
    _, params = engine.dialect.create_connect_args(engine.url)
    kwargs = {k: v for k, v in params.items() if k not in _ADAPTER_ONLY}
    kwargs.update({k: v for k, v in connect_args.items() if k not in _ADAPTER_ONLY})
    return kwargs


async def keep_session(connection: asyncpg.Connection) -> None:
    """Pool reset on release: nothing beyond asyncpg's own rollback of an open transaction
    (a Reader changes no session state; see the module). Public: the benchmark's bare pool
    releases the same way."""


class Reader:
    """One pooled connection for one request's reads; get it with ``database.reader()``.

    Pass it to the reads of `pokervod_db.queries` in place of a session. It is not safe to
    share between concurrent tasks (one connection runs one statement at a time).
    """

    __slots__ = ("_depth", "_held", "_stats", "connection")

    def __init__(self, connection: asyncpg.Connection, stats: QueryStats | None) -> None:
        self.connection = connection
        self._stats = stats
        self._depth = 0  # open snapshot() blocks
        self._held = False  # a snapshot opened by `hold_snapshot`, ended when the reader is

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Rows of ``sql`` (``$n`` parameters); driver errors as `PokervodDBError`."""
        captured = fastpath._captured.get()
        if captured is not None:
            captured.append((sql, args))
        t0 = time.perf_counter()
        try:
            rows: list[asyncpg.Record] = await self.connection.fetch(sql, *args)
        except Exception as exc:
            raise _error(exc) from exc
        if self._stats is not None:
            self._stats.record((time.perf_counter() - t0) * 1000.0, sql)
        return rows

    @property
    def in_snapshot(self) -> bool:
        """Whether statements now run inside one read-only snapshot transaction."""
        return self._depth > 0 or self._held

    def snapshot(self) -> _Snapshot:
        """``async with reader.snapshot():`` the block's statements see one snapshot
        (``REPEATABLE READ READ ONLY``); nested blocks join the outer one."""
        return _Snapshot(self)

    async def hold_snapshot(self) -> None:
        """Open a snapshot that lasts until the reader is given back (`fastpath.driver` on a
        Reader: code written for a session's transaction gets the same consistency)."""
        if not self.in_snapshot:
            await self._control(SNAPSHOT_BEGIN)
            self._held = True

    async def _control(self, sql: str) -> None:
        captured = fastpath._captured.get()
        if captured is not None:
            captured.append((sql, ()))
        try:
            await self.connection.execute(sql)
        except Exception as exc:
            raise _error(exc) from exc

    async def _end(self, ok: bool) -> None:
        if self._held:
            self._held = False
            await self._control(COMMIT if ok else ROLLBACK)


class _Snapshot:
    __slots__ = ("_outer", "_reader")

    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self._outer = False

    async def __aenter__(self) -> Reader:
        reader = self._reader
        self._outer = not reader.in_snapshot
        if self._outer:
            await reader._control(SNAPSHOT_BEGIN)
        reader._depth += 1
        return reader

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        reader = self._reader
        reader._depth -= 1
        if self._outer:
            if exc is None:
                await reader._control(COMMIT)
            elif not reader.connection.is_closed():
                # A failed ROLLBACK (connection gone) leaves the pool to discard it on release.
                try:
                    await reader._control(ROLLBACK)
                except PokervodDBError:
                    reader.connection.terminate()


def _error(exc: BaseException) -> BaseException:
    """The package's error for a driver or server failure; anything else unchanged."""
    if isinstance(exc, asyncpg.DataError):  # an argument of the wrong type: not a lost link
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return PokervodDBError(f"invalid query argument: {first}", reason=first)
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError | TimeoutError):
        return translate(exc)
    return exc


class ReaderPool:
    """The asyncpg pool behind `Database.reader()`, opened on first use."""

    def __init__(self, engine: AsyncEngine) -> None:
        setup = _SETUPS.get(engine.sync_engine)
        if setup is None:
            raise ConfigurationError(
                "this engine was not made by pokervod_db.database.create_engine, so its "
                "connect options are unknown; build the Database with Database.from_settings"
            )
        if setup.pgbouncer:
            raise ConfigurationError(
                "Database.reader() needs session-level settings, which PgBouncer transaction "
                "pooling does not keep (DB_PGBOUNCER); read with database.transaction() instead"
            )
        self.setup = setup
        self.stats = query_stats(engine)
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await self._open()
        return self._pool

    async def _open(self) -> asyncpg.Pool:
        from pokervod_db.database import unavailable

        try:
            pool = await asyncpg.create_pool(
                min_size=0,
                max_size=self.setup.max_size,
                reset=keep_session,
                **self.setup.connect_kwargs,
            )
        except Exception as exc:
            if isinstance(exc, OSError | TimeoutError) or getattr(exc, "sqlstate", None):
                raise unavailable(self.setup.shown_url, exc) from exc
            raise
        assert pool is not None
        return pool

    def reader(self) -> ReaderContext:
        return ReaderContext(self)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


class ReaderContext:
    """``async with database.reader() as reader:`` borrows a connection, gives it back."""

    __slots__ = ("_conn", "_reader", "_readers")

    def __init__(self, readers: ReaderPool) -> None:
        self._readers = readers
        self._conn: Any = None
        self._reader: Reader | None = None

    async def __aenter__(self) -> Reader:
        readers = self._readers
        pool = readers._pool or await readers.pool()
        try:
            self._conn = await pool.acquire(timeout=readers.setup.acquire_timeout_s)
        except TimeoutError as exc:
            raise PoolExhaustedError(
                f"no free connection to {readers.setup.shown_url} within "
                f"{readers.setup.acquire_timeout_s:g} s: all {readers.setup.max_size} reader "
                "connections are in use; hold readers for shorter or raise DB_POOL_SIZE / "
                "DB_MAX_OVERFLOW / DB_POOL_TIMEOUT"
            ) from exc
        except Exception as exc:
            from pokervod_db.database import unavailable

            if isinstance(exc, OSError) or getattr(exc, "sqlstate", None):
                raise unavailable(readers.setup.shown_url, exc) from exc
            raise
        self._reader = Reader(self._conn, readers.stats)
        return self._reader

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        reader, conn = self._reader, self._conn
        self._reader = self._conn = None
        assert reader is not None and conn is not None
        try:
            if reader._held and not conn.is_closed():
                try:
                    await reader._end(exc is None)
                except PokervodDBError:
                    conn.terminate()
                    if exc is None:
                        raise
        finally:
            # Release even when cancelled: asyncpg rolls back what is still open, or
            # terminates a connection it cannot clean.
            await self._readers._pool.release(conn)  # type: ignore[union-attr]
