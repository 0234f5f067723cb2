"""Engines, sessions and transaction helpers, all built from `Settings` by functions.

Nothing here runs at import time: a caller builds an engine with `create_engine(settings)` and a
session factory with `async_session_factory(engine)`, and disposes of the engine when done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy import create_engine as create_sync_engine_
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import DBAPIError, DisconnectionError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as create_async_engine_
from sqlalchemy.pool import NullPool, QueuePool

from pokervod_db import embedded
from pokervod_db import reader as reading
from pokervod_db.errors import (
    DatabaseUnavailableError,
    PokervodDBError,
    PoolExhaustedError,
    sqlstate,
    translate,
)
from pokervod_db.settings import SCHEMA, Settings, asyncpg_options, mask_url
from pokervod_db.softdelete import HIDE_DELETED

if TYPE_CHECKING:
    from pokervod_db.routing import ReadRouter

log = logging.getLogger(__name__)

T = TypeVar("T")

APPLICATION_NAME = "pokervod-db"


def create_engine(settings: Settings, *, application_name: str = APPLICATION_NAME) -> AsyncEngine:
    """The application's async engine (asyncpg) with the pool sizes and timeouts of `settings`."""
    from pokervod_db.monitoring import install_query_monitor

    options = asyncpg_options(settings.async_url())
    connect_args: dict[str, Any] = {
        "timeout": options.timeout or settings.connect_timeout,
        "server_settings": {
            "application_name": application_name,
            **session_timeouts(settings),
            **options.server_settings,
        },
    }
    if options.dsn is not None:
        connect_args["dsn"] = options.dsn  # explicit host, user, … win over the DSN's
    if settings.pgbouncer:
        # Transaction pooling: consecutive transactions may run on different server
        # connections, so nothing may live in the session. No statement caches and unique
        # names for the prepared statements asyncpg still makes (SQLAlchemy's asyncpg docs);
        # no startup parameters PgBouncer would refuse; settings per transaction instead.
        connect_args.update(
            statement_cache_size=0,
            prepared_statement_cache_size=0,
            prepared_statement_name_func=lambda: f"__pokervod_{uuid.uuid4().hex}__",
            server_settings={"application_name": application_name, **options.server_settings},
        )
    engine = create_async_engine_(
        options.url,
        echo=settings.echo_sql,
        hide_parameters=True,  # DB_ECHO shows statements, never the values (secrets, PII)
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout,
        pool_pre_ping=False,  # see install_idle_pre_ping
        connect_args=connect_args,
    )
    if settings.pool_pre_ping:
        install_idle_pre_ping(engine, idle_s=settings.pool_pre_ping_idle_s)
    install_query_monitor(engine, settings)
    if settings.pgbouncer:
        install_per_transaction_settings(engine.sync_engine, settings)
    else:
        install_search_path(engine.sync_engine)
    # Database.reader() opens its own asyncpg connections: the same options, search_path as
    # a startup parameter (no PgBouncer in front of a Reader, see pokervod_db.reader).
    reader_args = dict(connect_args)
    reader_args["server_settings"] = {
        **connect_args["server_settings"],
        "search_path": SEARCH_PATH,
    }
    reading.register(
        engine,
        reading.ReaderSetup(
            connect_kwargs=reading.connect_kwargs(engine, reader_args),
            max_size=settings.pool_size + settings.max_overflow,
            acquire_timeout_s=settings.pool_timeout,
            shown_url=mask_url(engine.url),
            pgbouncer=settings.pgbouncer,
        ),
    )
    return engine


_LAST_USED = "pokervod_last_used"


def install_idle_pre_ping(engine: AsyncEngine, *, idle_s: float) -> None:
    """Ping a pooled connection on checkout only when it sat idle ``idle_s`` or longer.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout; through the asyncpg adapter that
    is BEGIN, a statement and ROLLBACK, three round trips before each request's first query.
    A connection that served a request a moment ago is alive unless the server went away in
    that moment, which the request then reports as any other failure (the pool discards a
    connection that failed with a disconnect). The idea, and the default window order of
    magnitude, is HikariCP's ``aliveBypassWindowMs``. A dead connection found by the ping is
    replaced by the pool (``DisconnectionError``), as with ``pool_pre_ping``.
    """
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _connected(dbapi_connection: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        last = record.info.get(_LAST_USED)
        if last is not None and time.monotonic() - last < idle_s:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError(f"pooled connection failed its ping: {exc}") from exc
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(sync_engine, "checkin")
    def _checkin(dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_LAST_USED] = time.monotonic()


def install_per_transaction_settings(engine: Engine, settings: Settings) -> None:
    """Behind PgBouncer: set search_path and the timeouts at the start of every transaction
    (``set_config(…, true)`` = ``SET LOCAL``), one round trip, gone when the transaction ends."""
    values = {"search_path": SEARCH_PATH, **session_timeouts(settings)}
    statement = "SELECT " + ", ".join(
        f"set_config('{name}', '{value}', true)" for name, value in values.items()
    )

    @event.listens_for(engine, "begin")
    def _set_local(conn: Connection) -> None:
        conn.exec_driver_sql(statement)


def session_timeouts(settings: Settings) -> dict[str, str]:
    """The server settings that bound an application connection's statements and idle
    transactions (``0`` = off); maintenance connections (migrations, backup) do without."""
    return {
        "statement_timeout": str(settings.statement_timeout_ms),
        "idle_in_transaction_session_timeout": str(settings.idle_in_transaction_timeout_ms),
    }


def create_sync_engine(
    settings: Settings, *, application_name: str = APPLICATION_NAME, pooled: bool = False
) -> Engine:
    """A psycopg engine for Alembic and maintenance work (no pool unless asked for)."""
    kwargs: dict[str, Any] = {} if pooled else {"poolclass": NullPool}
    settings = settings.direct()  # migrations, backups and locks need a real session
    engine = create_sync_engine_(
        settings.sync_url(),
        echo=settings.echo_sql,
        hide_parameters=True,  # DB_ECHO shows statements, never the values (secrets, PII)
        connect_args={
            "connect_timeout": max(1, round(settings.connect_timeout)),
            "application_name": application_name,
        },
        **kwargs,
    )
    install_search_path(engine)
    return engine


SEARCH_PATH = f"{SCHEMA}, public"
"""The search_path of every connection the package opens (the archive's schema first), so raw SQL with bare table
names (``SELECT count(*) FROM projects``) finds the archive's tables."""


def install_search_path(engine: Engine) -> None:
    """Set `SEARCH_PATH` on each new connection of ``engine`` (asyncpg or psycopg).

    A ``SET`` on connect rather than a startup parameter: PgBouncer refuses startup parameters
    it does not know. It runs in autocommit, else the pool's reset would roll it back with the
    implicit transaction it ran in. It runs after the dialect's first-connect initialisation
    (no ``insert=True``), so SQLAlchemy's default schema stays ``public`` and reflection (the
    drift check, autogenerate) keeps naming our tables ``pokervod.*`` as the models do.
    """

    @event.listens_for(engine, "connect")
    def _set_search_path(dbapi_connection: Any, _record: Any) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"SET search_path TO {SEARCH_PATH}")
        finally:
            cursor.close()
            dbapi_connection.autocommit = autocommit


def async_session_factory(
    engine: AsyncEngine, *, hide_deleted: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (``expire_on_commit=False``).

    ``hide_deleted``: ORM loads of these sessions leave soft-deleted rows out (softdelete.py).
    """
    return async_sessionmaker(
        engine, class_=AsyncSession, expire_on_commit=False, info={HIDE_DELETED: hide_deleted}
    )


def unavailable(url: str, exc: BaseException) -> DatabaseUnavailableError:
    """One line for a failed connection: which server (``url`` is masked), why, what to do."""
    if isinstance(exc, TimeoutError) or "timeout expired" in str(exc):
        reason = "no answer (timed out)"
    elif isinstance(exc, OSError) and exc.errno:
        reason = os.strerror(exc.errno)  # asyncpg raises the socket's error: "Connection refused"
    else:
        # psycopg frames libpq's reason as "connection failed: …"; the sentence below says it.
        reason = translate(exc).reason.removeprefix("connection failed: ")
    return DatabaseUnavailableError(
        f"cannot connect to {url}: {reason}; check DATABASE_URL and that the server is running",
        reason=reason,
    )


@contextmanager
def maintenance_connection(
    settings: Settings,
    *,
    application_name: str = APPLICATION_NAME,
    engine: Engine | None = None,
) -> Iterator[Connection]:
    """A short psycopg connection of its own (no pool) for migrations, backups and status reads.

    A failed connect is one `DatabaseUnavailableError` naming the (masked) server; a driver error
    inside the block leaves as the matching `PokervodDBError`, chained. With ``engine`` (an
    engine handed over by the caller, as pytest-alembic does) that engine is used and kept.
    """
    own = engine is None
    if engine is None:
        used = create_sync_engine(settings, application_name=application_name)
        shown = settings.masked_url()
    else:
        used, shown = engine, engine.url.render_as_string(hide_password=True)
    try:
        try:
            conn = used.connect()
        except (DBAPIError, OSError) as exc:
            raise unavailable(shown, exc) from exc
        with conn:
            try:
                yield conn
            except SQLAlchemyError as exc:
                raise translate(exc) from exc
    finally:
        if own:
            used.dispose()


async def check_connection(engine: AsyncEngine, *, wait_s: float = 10.0) -> None:
    """Open one connection and run ``SELECT 1``; raise `DatabaseUnavailableError` in one line."""
    try:
        async with asyncio.timeout(wait_s):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise unavailable(mask_url(engine.url), exc) from exc
    except Exception as exc:
        # SQLAlchemy 2.0.36 lets some asyncpg connect errors (a wrong password) through
        # unwrapped; every server error carries a SQLSTATE.
        if getattr(exc, "sqlstate", None) is None:
            raise
        raise unavailable(mask_url(engine.url), exc) from exc


async def get_db(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncGenerator[AsyncSession, None]:
    """The PRD's request-scoped session: commit on success, roll back on any error.

    Use it with FastAPI as ``Depends(partial(get_db, session_factory))`` or through
    `Database.get_db`.
    """
    async with session_factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException as exc:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await session.rollback()
            error = _translated(session_factory, exc) if isinstance(exc, Exception) else exc
            if error is exc:
                raise
            raise error from exc


@asynccontextmanager
async def transaction(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work in one transaction: commit when the block ends, roll back if it raises.

    Driver failures (server down or gone mid-call, pool exhausted, statement timeout) come out
    as `PokervodDBError` subclasses in one line; the caller's own exceptions pass unchanged.
    """
    try:
        async with session_factory() as session, session.begin():
            yield session
    except Exception as exc:
        error = _translated(session_factory, exc)
        if error is exc:
            raise
        raise error from exc


def _translated(session_factory: async_sessionmaker[AsyncSession], exc: Exception) -> Exception:
    """`exc` as the package's error when it comes from the driver, the pool or the server."""
    if isinstance(exc, PokervodDBError):
        return exc
    engine = session_factory.kw.get("bind")
    url = (
        engine.url.render_as_string(hide_password=True)
        if isinstance(engine, AsyncEngine)
        else "the database"
    )
    if isinstance(exc, sa_exc.TimeoutError) and isinstance(engine, AsyncEngine):
        pool = engine.pool
        size = pool.size() if isinstance(pool, QueuePool) else "?"
        overflow = getattr(pool, "_max_overflow", "?")
        timeout = getattr(pool, "_timeout", "?")
        return PoolExhaustedError(
            f"no free connection to {url} within {timeout} s: all {size} pooled (+{overflow} "
            "overflow) connections are in use; hold connections for shorter or raise "
            "DB_POOL_SIZE / DB_MAX_OVERFLOW / DB_POOL_TIMEOUT"
        )
    lost = BrokenPipeError | ConnectionResetError | ConnectionAbortedError
    if isinstance(exc, OSError) and not isinstance(exc, lost) and exc.errno:
        return unavailable(url, exc)  # the socket is missing or refused: the server is down
    translated = translate(exc)
    if isinstance(exc, SQLAlchemyError | OSError | TimeoutError) or type(translated) is not (
        PokervodDBError
    ):
        return translated
    return exc


def _retryable(exc: BaseException) -> bool:
    """Serialization failure or deadlock: the transaction was rolled back and may run again."""
    return sqlstate(exc) in _RETRY_SQLSTATES or getattr(exc, "sqlstate", None) in _RETRY_SQLSTATES


_RETRY_SQLSTATES = frozenset({"40001", "40P01"})


async def run_in_transaction(
    session_factory: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    attempts: int = 5,
    isolation_level: str | None = None,
    base_delay_s: float = 0.05,
    max_delay_s: float = 2.0,
) -> T:
    """Run ``work(session)`` in a transaction and commit; run it again on a serialization
    failure, a deadlock or a connection lost before the commit, at most ``attempts`` times.

    ``work`` must be safe to repeat: everything it did in the database was rolled back, but
    side effects outside it (files, HTTP calls) are not. Between attempts it sleeps a random
    time up to ``base_delay_s * 2**attempt`` (capped at ``max_delay_s``: "full jitter"), so
    clashing workers do not clash again in step. A connection lost *during* the commit is not
    retried: whether the commit happened is unknown, and the error says so.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    for attempt in range(1, attempts + 1):
        committing = False
        try:
            async with session_factory() as session:
                if isolation_level is not None:
                    await session.connection(execution_options={"isolation_level": isolation_level})
                result = await work(session)
                committing = True
                await session.commit()
                return result
        except Exception as exc:
            error = _translated(session_factory, exc)
            lost = isinstance(error, DatabaseUnavailableError) and not isinstance(
                error, PoolExhaustedError
            )
            if committing and lost:
                raise DatabaseUnavailableError(
                    f"the connection was lost during COMMIT, so whether the transaction was "
                    f"committed is unknown; check before running it again ({error})"
                ) from exc
            if attempt == attempts or not (_retryable(exc) or lost):
                if error is exc:
                    raise
                raise error from exc
            delay = random.uniform(0, min(max_delay_s, base_delay_s * 2**attempt))
            log.warning(
                "transaction attempt %d of %d failed (%s); retrying in %.0f ms",
                attempt,
                attempts,
                error,
                delay * 1000,
            )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class Database:
    """An engine with its session factory: what a service builds once at start-up."""

    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    router: ReadRouter | None = None
    _readers: reading.ReaderPool | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, application_name: str = APPLICATION_NAME
    ) -> Database:
        """The engine (one pool) and its sessions; share it, e.g. ``DatabaseAgent(database=…)``.

        Without ``DATABASE_URL`` the embedded server is joined (and started when it is not
        running), as the CLI and the agent do. With ``DATABASE_REPLICA_URLS`` it also routes
        `read_transaction` (routing.py)."""
        settings = embedded.start(settings)
        engine = create_engine(settings, application_name=application_name)
        database = cls(engine=engine, session_factory=async_session_factory(engine))
        if settings.replica_urls is not None:
            from pokervod_db.routing import ReadRouter

            database.router = ReadRouter(settings, database.session_factory)
        return database

    async def get_db(self) -> AsyncGenerator[AsyncSession, None]:
        """FastAPI dependency: ``Depends(database.get_db)``."""
        async for session in get_db(self.session_factory):
            yield session

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """``async with database.transaction() as session:`` commits or rolls back."""
        return transaction(self.session_factory)

    async def run_in_transaction(
        self,
        work: Callable[[AsyncSession], Awaitable[T]],
        *,
        attempts: int = 5,
        isolation_level: str | None = None,
    ) -> T:
        """`run_in_transaction` on this database's sessions (retries what is safe to retry)."""
        return await run_in_transaction(
            self.session_factory, work, attempts=attempts, isolation_level=isolation_level
        )

    def read_transaction(self) -> Any:
        """``async with database.read_transaction() as session:`` a read-only transaction on a
        replica within ``DB_REPLICA_MAX_LAG_S``, on the primary when none is (see routing.py)."""
        from pokervod_db.routing import read_transaction

        return read_transaction(self.session_factory, self.router)

    def reader(self) -> reading.ReaderContext:
        """``async with database.reader() as r:`` one pooled connection for the hot reads of
        `pokervod_db.queries`, without a session (pokervod_db.reader): no BEGIN/COMMIT for a
        one-statement read, ORM results detached. Its pool opens on first use, beside the
        engine's (at most ``DB_POOL_SIZE + DB_MAX_OVERFLOW`` connections each)."""
        readers = self._readers
        if readers is None:
            readers = self._readers = reading.ReaderPool(self.engine)
        return readers.reader()

    async def dispose(self) -> None:
        if self._readers is not None:
            await self._readers.close()
        if self.router is not None:
            await self.router.dispose()
        await self.engine.dispose()


def __getattr__(name: str) -> Any:
    # create_catalog_tree and its result types moved to pokervod_db.catalog (an operation on
    # the catalog, not part of the engine); the old import path keeps working.
    if name in {"create_catalog_tree", "CatalogTreeResult", "SeasonFailure"}:
        from pokervod_db import catalog

        return getattr(catalog, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
