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

The connections come from a small pool of their own (`ReaderPool`, asyncpg connections opened
on first use with the engine's connect options: host, TLS, ``application_name``, statement and
idle-transaction timeouts, search_path), at most ``DB_POOL_SIZE + DB_MAX_OVERFLOW`` of them,
waited for at most ``DB_POOL_TIMEOUT``. A connection goes back without a reset query (asyncpg's
pool sends one per release, a round trip): a Reader changes no session state, its
transaction-local settings end with their transaction, and a connection left in a transaction,
cancelled mid-statement or broken is closed instead of reused. Errors are the package's
(`pokervod_db.errors`), statement times count in `monitoring.query_stats`.

Out of scope: PgBouncer transaction pooling (the Reader needs session-level settings:
`reader()` refuses with `ConfigurationError`) and replica routing (a Reader reads the primary;
`Database.read_transaction` routes sessions).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
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
    """An asyncpg pool ``reset=`` that keeps the session as `ReaderPool` does (asyncpg still
    rolls back an open transaction): the benchmark's bare pool releases like the readers."""


class Reader:
    """One pooled connection for one request's reads; get it with ``database.reader()``.

    Pass it to the reads of `pokervod_db.queries` in place of a session. It is not safe to
    share between concurrent tasks (one connection runs one statement at a time).
    """

    __slots__ = ("_depth", "_held", "_stats", "connection", "engine")

    def __init__(
        self, connection: asyncpg.Connection, stats: QueryStats | None, engine: AsyncEngine
    ) -> None:
        self.connection = connection
        self.engine = engine
        """The engine whose settings the reader's pool connects with; per-engine state (the
        query counters, the catalog tree cache) is shared between both forms through it."""
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
            elif isinstance(exc, asyncio.CancelledError | TimeoutError):
                pass  # a statement may still be running: the pool closes this connection
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
    """The connections behind `Database.reader()`: a small LIFO pool, opened on first use.

    Not asyncpg's `Pool`: its ``acquire(timeout=…)`` runs in a new task (``wait_for``) and its
    ``release`` in another (``shield``), two event-loop round trips per request that cost more
    than a one-row read on this machine (docs/performance.md). Here a free connection is taken
    and given back without suspending; a request waits (in FIFO order, at most
    ``DB_POOL_TIMEOUT``) only when all ``max_size`` connections are out. A connection is opened
    when none is free and the pool is below ``max_size``; one that failed, was cancelled in the
    middle of a statement, or is still inside a transaction it could not end is closed, not
    reused.
    """

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
        self.engine = engine
        self.stats = query_stats(engine)
        self._idle: list[asyncpg.Connection] = []
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._size = 0  # connections open or being opened
        self._out: set[asyncpg.Connection] = set()
        self._closed = False

    def reader(self) -> ReaderContext:
        return ReaderContext(self)

    @property
    def size(self) -> int:
        """Connections open (or being opened) now: the pool's share of the server's."""
        return self._size

    async def acquire(self) -> asyncpg.Connection:
        """A free connection, a new one, or (all out) the next one given back."""
        if self._closed:
            raise ConfigurationError("this Database was disposed; its readers are closed")
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.is_closed():
                self._out.add(conn)
                return conn
            self._size -= 1
        if self._size < self.setup.max_size:
            return await self._connect()
        waiter: asyncio.Future[asyncpg.Connection | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.setup.acquire_timeout_s):
                conn = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                handed = waiter.result()  # handed over just as we gave up: pass it on
                self._out.discard(handed)
                self._give_back(handed)
            elif waiter.done() and not waiter.cancelled():
                self._size -= 1  # we were allowed to connect: pass the slot on
                self._wake_one()
            else:
                waiter.cancel()
            raise
        if conn is None:  # a slot was freed: open a connection in it
            self._size -= 1
            return await self._connect()
        self._out.add(conn)
        return conn

    async def _connect(self) -> asyncpg.Connection:
        from pokervod_db.database import unavailable

        self._size += 1
        try:
            conn = await asyncpg.connect(**self.setup.connect_kwargs)
        except BaseException as exc:
            self._size -= 1
            self._wake_one()
            if isinstance(exc, OSError | TimeoutError) or getattr(exc, "sqlstate", None):
                raise unavailable(self.setup.shown_url, exc) from exc
            raise
        self._out.add(conn)
        return conn

    def release(self, conn: asyncpg.Connection, *, reusable: bool) -> None:
        """Give ``conn`` back; close it instead when it is not ``reusable`` or in a
        transaction (a Reader ends its own; anything else is a failure mid-way)."""
        self._out.discard(conn)
        if not reusable or self._closed or conn.is_closed() or conn.is_in_transaction():
            conn.terminate()
            self._size -= 1
            self._wake_one()
            return
        self._give_back(conn)

    def _give_back(self, conn: asyncpg.Connection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._out.add(conn)
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _wake_one(self) -> None:
        """A slot was freed: let the first waiter open a connection in it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._size += 1  # reserved for the waiter, which opens it
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close every connection, the borrowed ones too; later `reader()` calls fail."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in [*idle, *self._out]:
            try:
                await asyncio.wait_for(conn.close(), 5)
            except Exception:
                conn.terminate()
        self._out.clear()
        self._size = 0
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        self._waiters.clear()


class ReaderContext:
    """``async with database.reader() as reader:`` borrows a connection, gives it back."""

    __slots__ = ("_reader", "_readers")

    def __init__(self, readers: ReaderPool) -> None:
        self._readers = readers
        self._reader: Reader | None = None

    async def __aenter__(self) -> Reader:
        readers = self._readers
        try:
            conn = await readers.acquire()
        except TimeoutError as exc:
            setup = readers.setup
            raise PoolExhaustedError(
                f"no free connection to {setup.shown_url} within {setup.acquire_timeout_s:g} s: "
                f"all {setup.max_size} reader connections are in use; hold readers for shorter "
                "or raise DB_POOL_SIZE / DB_MAX_OVERFLOW / DB_POOL_TIMEOUT"
            ) from exc
        self._reader = Reader(conn, readers.stats, readers.engine)
        return self._reader

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        reader = self._reader
        self._reader = None
        assert reader is not None
        conn = reader.connection
        # Cancelled or timed out in the middle of a statement: the connection's state is
        # unknown (a cancel request may still be on its way), so it is not reused.
        reusable = not isinstance(exc, asyncio.CancelledError | TimeoutError)
        try:
            if reusable and reader._held and not conn.is_closed():
                try:
                    await reader._end(exc is None)
                except BaseException:
                    reusable = False
                    if exc is None:
                        raise
        finally:
            self._readers.release(conn, reusable=reusable)
