"""The lean request path: read statements written once, sent straight through asyncpg.

A read through SQLAlchemy pays, per call, for building the statement's cache key, the
compiled-cache lookup, the DBAPI adapter's cursor and the result machinery, each behind a
greenlet switch: on a 2-core machine several times the cost of the indexed lookup itself
(benchmarks: `docs/performance.md`). The hot reads of `pokervod_db.queries` therefore render
their SQL once, at import, and run it here on the asyncpg connection that the caller's
`AsyncSession` already holds, inside the same transaction (opened the way SQLAlchemy opens it,
so the session's commit or rollback ends it). Results come back as asyncpg records, which the
caller turns into typed rows. What callers keep: their session, their transaction, the
slow-query counters of `pokervod_db.monitoring`, SQLAlchemy's exception classes.

`capture_statements` records the SQL and arguments sent (the benchmark replays them through
bare asyncpg; tests EXPLAIN them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.util import await_only as await_

from pokervod_db.monitoring import query_stats

if TYPE_CHECKING:
    from pokervod_db.reader import Reader

_captured: ContextVar[list[tuple[str, tuple[Any, ...]]] | None] = ContextVar(
    "pokervod_fastpath_captured", default=None
)


@contextmanager
def capture_statements() -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    """Collect ``(sql, args)`` of every statement the lean path sends inside the block."""
    captured: list[tuple[str, tuple[Any, ...]]] = []
    token = _captured.set(captured)
    try:
        yield captured
    finally:
        _captured.reset(token)


async def driver(session: AsyncSession | Reader, *, flush: bool = False) -> asyncpg.Connection:
    """The session's asyncpg connection, inside the session's transaction.

    On a `Reader` (no session): its connection, inside a read-only snapshot that lasts until
    the reader is given back, so several statements see one state as in a session.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, with its first statement; a statement
    sent here must not run outside it, so the adapter is asked to begin first (its own
    method, so its bookkeeping knows and the session's commit or rollback ends it). With
    ``flush``, pending ORM changes are flushed first, as an ORM query would (autoflush).
    All of it in one greenlet switch: each switch costs more than a microsecond-scale read.
    """
    if not isinstance(session, AsyncSession):
        await session.hold_snapshot()
        return session.connection
    return await session.run_sync(_driver_sync, flush)


def _driver_sync(sync_session: Session, flush: bool) -> asyncpg.Connection:
    if flush and sync_session.autoflush:
        if sync_session.new or sync_session.deleted or sync_session.dirty:
            sync_session.flush()
    fairy = sync_session.connection().connection
    adapter: Any = fairy.dbapi_connection
    if getattr(adapter, "_transaction", True) is None and adapter.isolation_level != "autocommit":
        try:
            await_(adapter._start_transaction())
        except Exception as exc:  # the adapter raised its DBAPI error: wrap as SQLAlchemy does
            raise _wrapped(sync_session, "BEGIN", (), exc) from exc
    driver_conn = fairy.driver_connection
    assert isinstance(driver_conn, asyncpg.Connection)
    return driver_conn


async def fetch(session: AsyncSession | Reader, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of ``sql`` (``$n`` parameters) run on the session's connection and transaction.

    On a `Reader`: one statement, its own snapshot, no transaction around it."""
    if not isinstance(session, AsyncSession):
        return await session.fetch(sql, *args)
    conn = await driver(session)
    return await fetch_on(session, conn, sql, *args)


async def fetch_on(
    session: AsyncSession | Reader, conn: asyncpg.Connection, sql: str, *args: Any
) -> list[asyncpg.Record]:
    """`fetch` on a connection already obtained with `driver` (several statements, one call)."""
    if not isinstance(session, AsyncSession):
        return await session.fetch(sql, *args)
    captured = _captured.get()
    if captured is not None:
        captured.append((sql, args))
    t0 = time.perf_counter()
    try:
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    except Exception as exc:
        adapter: Any = (await session.connection()).sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
        try:
            adapter._handle_exception(exc)  # the adapter's DBAPI error for this asyncpg error
        except Exception as dbapi_error:
            raise _wrapped(session, sql, args, dbapi_error) from exc
        raise  # pragma: no cover - _handle_exception always raises
    stats = query_stats(session.bind)  # type: ignore[arg-type]
    if stats is not None:
        stats.record((time.perf_counter() - t0) * 1000.0, sql)
    return rows


def _wrapped(
    session: AsyncSession | Session, sql: str, args: Sequence[Any], error: BaseException
) -> BaseException:
    """The SQLAlchemy exception (``OperationalError``, ``ProgrammingError``, …) for ``error``."""
    if not isinstance(error, Exception):
        return error
    dbapi_error = session.bind.dialect.loaded_dbapi.Error  # type: ignore[union-attr]
    return sa_exc.DBAPIError.instance(sql, tuple(args), error, dbapi_error)


class OrmLoader:
    """Builds persistent ORM objects of ``model`` from rows fetched on the lean path.

    The rows carry `columns` (every column attribute the ORM loads by default, deferred ones
    left out) in that order, starting at ``offset``. An object already in the session is
    returned as it is, or refreshed from the row with ``populate_existing`` (the ORM option
    of the same name); a new one is built straight into its instance dict, marked as
    loaded, and added to the session, which is what the ORM's loader does with a lot less
    per-row bookkeeping.
    """

    def __init__(self, model: type[Any]) -> None:
        mapper = sa_inspect(model)
        props = [p for p in mapper.column_attrs if not p.deferred]
        self.model = model
        self.mapper = mapper
        self.keys = [p.key for p in props]
        self.columns = [p.columns[0].name for p in props]
        self.width = len(props)
        (pk,) = mapper.primary_key
        self.pk_index = self.columns.index(pk.name)
        self.new_instance = mapper.class_manager.new_instance
        self.identity_class = mapper.identity_key_from_primary_key((None,))[0]

    def select_list(self, alias: str) -> str:
        return ", ".join(f"{alias}.{c}" for c in self.columns)

    def load(
        self,
        session: AsyncSession,
        row: Sequence[Any],
        offset: int = 0,
        *,
        populate_existing: bool = False,
    ) -> Any:
        values = row[offset : offset + self.width]
        key = self.mapper.identity_key_from_primary_key((values[self.pk_index],))
        sync = session.sync_session
        existing = sync.identity_map.get(key)
        if existing is not None:
            if populate_existing:
                for name, value in zip(self.keys, values, strict=True):
                    set_committed_value(existing, name, value)
            return existing
        obj = self.mapper.class_manager.new_instance()
        obj.__dict__.update(zip(self.keys, values, strict=True))
        make_transient_to_detached(obj)
        sync.add(obj)
        return obj

    def detached(self, row: Sequence[Any], offset: int = 0) -> Any:
        """A detached object of ``model`` from ``row`` (reads on a `Reader`: no session).

        Its loaded attributes read like a persistent object's; ``session.add(obj)`` (or
        ``merge``) attaches it to a session as the row it was read from."""
        obj = self.new_instance()
        values = row[offset : offset + self.width]
        obj.__dict__.update(zip(self.keys, values, strict=True))
        # What make_transient_to_detached does for a new instance, at a third of its cost: the
        # identity key (nothing to commit or expire; a deferred column raises
        # DetachedInstanceError when read, as on any detached object).
        obj._sa_instance_state.key = (self.identity_class, (values[self.pk_index],), None)
        return obj
