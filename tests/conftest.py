"""Test fixtures: our own suite uses the shipped pytest plugin (`pokervod_db.testing`).

The plugin provides the server (embedded, or ``POKERVOD_TEST_DATABASE_URL``), the template
migrated to head once, and a private copy per test; the names below are the ones our tests have
always used, kept as thin aliases.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pokervod_db.database import async_session_factory, create_engine
from pokervod_db.settings import Settings
from pokervod_db.testing import TEST_URL_ENV, PgServer, _conninfo, new_database_name

__all__ = ["TEST_URL_ENV", "PgServer", "_conninfo"]


@pytest.fixture(scope="session")
def pg_server(pokervod_server: PgServer) -> PgServer:
    return pokervod_server


@pytest.fixture(scope="session")
def template_db(pokervod_template: str) -> str:
    """A database migrated to head, copied for each test."""
    return pokervod_template


@pytest.fixture
def fresh_db_name() -> str:
    return new_database_name()


@pytest.fixture
def db_settings(pokervod_settings: Settings) -> Settings:
    """Settings of a private database at head (a copy of the template)."""
    return pokervod_settings


@pytest.fixture
def empty_db_settings(pg_server: PgServer, fresh_db_name: str) -> Iterator[Settings]:
    """Settings of a private, empty database (no schema, no revision)."""
    pg_server.create_database(fresh_db_name)
    yield pg_server.settings_for(fresh_db_name)
    pg_server.drop_database(fresh_db_name)


@pytest.fixture
async def engine(db_settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_settings)
    yield eng
    await eng.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_session_factory(engine)


@pytest.fixture
async def session(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session on the private database; factories add to it (pokervod_db.testing.factories)."""
    from pokervod_db.testing import factories

    async with session_factory() as s:
        factories.bind(s)
        yield s
        factories.bind(None)


@pytest.fixture
def cli_env(db_settings: Settings, tmp_path: Path) -> dict[str, str]:
    """Environment for running ``pokervod-db`` in a subprocess against the private database."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL"}}
    env["DATABASE_URL"] = db_settings.libpq_url()
    env["BACKUP_DIR"] = str(tmp_path / "backups")
    return env
