"""Engines, sessions and transaction helpers, all built from `Settings` by functions.

Nothing here runs at import time: a caller builds an engine with `create_engine(settings)` and a
session factory with `async_session_factory(engine)`, and disposes of the engine when done.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy import create_engine as create_sync_engine_
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as create_async_engine_
from sqlalchemy.pool import NullPool

from pokervod_db.errors import DatabaseUnavailableError, translate
from pokervod_db.models import Project, Season
from pokervod_db.settings import Settings, asyncpg_options, mask_url

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
    return engine


def create_sync_engine(
    settings: Settings, *, application_name: str = APPLICATION_NAME, pooled: bool = False
) -> Engine:
    """A psycopg engine for Alembic and maintenance work (no pool unless asked for)."""
    kwargs: dict[str, Any] = {} if pooled else {"poolclass": NullPool}
    return create_sync_engine_(
        settings.sync_url(),
        echo=settings.echo_sql,
        hide_parameters=True,  # DB_ECHO shows statements, never the values (secrets, PII)
        connect_args={
            "connect_timeout": max(1, round(settings.connect_timeout)),
            "application_name": application_name,
        },
        **kwargs,
    )


def async_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (``expire_on_commit=False``)."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def unavailable(url: str, exc: BaseException) -> DatabaseUnavailableError:
    """One line for a failed connection: which server (``url`` is masked), why, what to do."""
    if isinstance(exc, TimeoutError) or "timeout expired" in str(exc):
        reason = "no answer (timed out)"
    elif isinstance(exc, OSError) and exc.errno:
        reason = os.strerror(exc.errno)  # asyncpg raises the socket's error: "Connection refused"
    else:
        reason = str(translate(exc)).removeprefix("database unavailable: ")
        reason = reason.removeprefix("connection failed: ")
    return DatabaseUnavailableError(
        f"cannot connect to {url}: {reason}; check DATABASE_URL and that the server is running"
    )


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

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        engine = create_engine(settings)
        return cls(engine=engine, session_factory=async_session_factory(engine))

    async def get_db(self) -> AsyncIterator[AsyncSession]:
        """FastAPI dependency: ``Depends(database.get_db)``."""
        async for session in get_db(self.session_factory):
            yield session

    def transaction(self) -> Any:
        """``async with database.transaction() as session:`` commits or rolls back."""
        return transaction(self.session_factory)

    async def dispose(self) -> None:
        await self.engine.dispose()


# --- the savepoint pattern of PRD 6.2 -------------------------------------------------------


@dataclass
class SeasonFailure:
    """A season of a catalog tree that was rolled back to its savepoint."""

    index: int
    data: Mapping[str, Any]
    error: str


@dataclass
class CatalogTreeResult:
    project: Project
    seasons: list[Season] = field(default_factory=list)
    failed: list[SeasonFailure] = field(default_factory=list)


async def create_catalog_tree(
    session: AsyncSession,
    tree: Mapping[str, Any],
    *,
    on_failure: Callable[[SeasonFailure], None] | None = None,
) -> CatalogTreeResult:
    """Create a project with its seasons; a bad season is rolled back alone and reported.

    ``tree`` is ``{"project": {...Project columns}, "seasons": [{...Season columns}, ...]}``.
    The project insert is not protected: if it fails, the error propagates (translated) and the
    caller's transaction decides. Each season gets its own savepoint, so a season that breaks a
    constraint leaves the project and the other seasons in place. The caller commits.
    """
    project_data = dict(tree["project"])
    seasons_data: Sequence[Mapping[str, Any]] = tree.get("seasons", ())
    project = Project(**project_data)
    session.add(project)
    try:
        await session.flush()
    except DBAPIError as exc:
        raise translate(exc) from exc

    result = CatalogTreeResult(project=project)
    for index, season_data in enumerate(seasons_data):
        season = Season(project_id=project.id, **season_data)
        try:
            async with session.begin_nested():
                session.add(season)
        except DBAPIError as exc:
            failure = SeasonFailure(index=index, data=season_data, error=str(translate(exc)))
            log.warning(
                "season %d of project %s rolled back: %s", index, project.code, failure.error
            )
            result.failed.append(failure)
            if on_failure is not None:
                on_failure(failure)
            continue
        result.seasons.append(season)
    return result
