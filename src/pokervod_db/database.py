"""Engines, sessions and transaction helpers, all built from `Settings` by functions.

Nothing here runs at import time: a caller builds an engine with `create_engine(settings)` and a
session factory with `async_session_factory(engine)`, and disposes of the engine when done.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy import create_engine as create_sync_engine_
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as create_async_engine_
from sqlalchemy.pool import NullPool

from pokervod_db import embedded
from pokervod_db.errors import DatabaseUnavailableError, translate
from pokervod_db.settings import SCHEMA, Settings, asyncpg_options, mask_url
from pokervod_db.softdelete import HIDE_DELETED

if TYPE_CHECKING:
    from pokervod_db.routing import ReadRouter

log = logging.getLogger(__name__)

APPLICATION_NAME = "pokervod-db"


def create_engine(settings: Settings, *, application_name: str = APPLICATION_NAME) -> AsyncEngine:
    """The application's async engine (asyncpg) with the pool sizes and timeouts of `settings`."""
    from pokervod_db.monitoring import install_query_monitor

    options = asyncpg_options(settings.async_url())
    connect_args: dict[str, Any] = {
        "timeout": options.timeout or settings.connect_timeout,
        "server_settings": {"application_name": application_name, **options.server_settings},
    }
    if options.dsn is not None:
        connect_args["dsn"] = options.dsn  # explicit host, user, … win over the DSN's
    engine = create_async_engine_(
        options.url,
        echo=settings.echo_sql,
        hide_parameters=True,  # DB_ECHO shows statements, never the values (secrets, PII)
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout,
        pool_pre_ping=settings.pool_pre_ping,
        connect_args=connect_args,
    )
    install_query_monitor(engine, settings)
    install_search_path(engine.sync_engine)
    return engine


def create_sync_engine(
    settings: Settings, *, application_name: str = APPLICATION_NAME, pooled: bool = False
) -> Engine:
    """A psycopg engine for Alembic and maintenance work (no pool unless asked for)."""
    kwargs: dict[str, Any] = {} if pooled else {"poolclass": NullPool}
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
"""The search_path of every connection the package opens (PRD 2.2), so raw SQL with bare table
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


async def get_db(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """The PRD's request-scoped session: commit on success, roll back on any error.

    Use it with FastAPI as ``Depends(partial(get_db, session_factory))`` or through
    `Database.get_db`.
    """
    async with session_factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


@asynccontextmanager
async def transaction(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work in one transaction: commit when the block ends, roll back if it raises."""
    async with session_factory() as session, session.begin():
        yield session


@dataclass
class Database:
    """An engine with its session factory: what a service builds once at start-up."""

    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    router: ReadRouter | None = None

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

    async def get_db(self) -> AsyncIterator[AsyncSession]:
        """FastAPI dependency: ``Depends(database.get_db)``."""
        async for session in get_db(self.session_factory):
            yield session

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """``async with database.transaction() as session:`` commits or rolls back."""
        return transaction(self.session_factory)

    def read_transaction(self) -> Any:
        """``async with database.read_transaction() as session:`` a read-only transaction on a
        replica within ``DB_REPLICA_MAX_LAG_S``, on the primary when none is (see routing.py)."""
        from pokervod_db.routing import read_transaction

        return read_transaction(self.session_factory, self.router)

    async def dispose(self) -> None:
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
