"""Test fixtures: our own suite uses the shipped pytest plugin (`pokervod_db.testing`).

The plugin provides the server (embedded, or ``POKERVOD_TEST_DATABASE_URL``), the template
migrated to head once, and a private copy per test; the names below are the ones our tests have
always used, kept as thin aliases.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from psycopg import sql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pokervod_db.database import Database, async_session_factory, create_engine
from pokervod_db.settings import Settings
from pokervod_db.testing import TEST_URL_ENV, PgServer, _conninfo

__all__ = ["TEST_URL_ENV", "PgServer", "_conninfo"]


def _isolate_from_the_callers_environment() -> None:
    """Run the suite as if on a fresh machine, whatever the caller exported.

    Every variable the settings read (an exported ``BACKUP_S3_BUCKET`` would make backup tests
    upload to a real bucket), libpq's ``PG*`` and boto3's ``AWS_*`` are removed.
    """
    names = {f.alias for f in Settings.model_fields.values() if f.alias}
    for name in list(os.environ):
        if name in names or name.startswith(("PG", "AWS_", "BACKUP_")):
            del os.environ[name]


_isolate_from_the_callers_environment()


def pytest_configure(config: pytest.Config) -> None:
    """The working directory becomes an empty one, so no ``.env`` left in the checkout is read
    by the tests or the commands they run. Here rather than at import: pytest resolves
    ``testpaths`` against the working directory after loading this file and before configuring.
    """
    os.chdir(tempfile.mkdtemp(prefix="pokervod-test-cwd-"))


@pytest.fixture(scope="session")
def pg_server(pokervod_server: PgServer) -> PgServer:
    return pokervod_server


@pytest.fixture(scope="session")
def template_db(pokervod_template: str) -> str:
    """A database migrated to head, copied for each test."""
    return pokervod_template


@pytest.fixture
def fresh_db_name(pokervod_database_name: str) -> str:
    """The name of db_settings' database (tests that need both get the same one)."""
    return pokervod_database_name


@pytest.fixture
def db_settings(pokervod_settings: Settings) -> Settings:
    """Settings of a private database at head (a copy of the template)."""
    return pokervod_settings


@pytest.fixture
async def db(db_settings: Settings) -> AsyncIterator[Database]:
    """A `Database` on the test's private database, disposed afterwards."""
    database = Database.from_settings(db_settings)
    yield database
    await database.dispose()


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


ROLE_PASSWORD = "the-right-one"


@pytest.fixture
def password_role(pg_server: PgServer) -> Iterator[str]:
    """A role with a password on a server that checks it (the embedded test server only).

    The embedded server trusts every local login; for this role alone we switch its hba entry
    to scram-sha-256. A shared server (POKERVOD_TEST_DATABASE_URL) is never reconfigured.
    """
    if os.environ.get(TEST_URL_ENV):
        pytest.skip("a shared server: its roles and authentication are not ours to change")
    role = "pokervod_pw_test"
    with pg_server.admin() as conn:
        hba = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(ROLE_PASSWORD)
            )
        )
        original = None
        if "pokervod-test-pg-" in str(hba):  # the embedded server of this test session
            original = hba.read_text()
            rules = f"local all {role} scram-sha-256\nhost all {role} 127.0.0.1/32 scram-sha-256\n"
            hba.write_text(rules + original)
            conn.execute("SELECT pg_reload_conf()")
            time.sleep(0.2)
    try:
        yield role
    finally:
        with pg_server.admin() as conn:
            if original is not None:
                hba.write_text(original)
                conn.execute("SELECT pg_reload_conf()")
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


T = TypeVar("T")


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion in a sync test on a private event loop.

    Unlike `asyncio.run`, this leaves the thread's current event loop alone: `asyncio.run`
    sets it to None when done, and pytest-asyncio before 1.x then fails every later async test
    of the session with "There is no current event loop".
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
