"""Alembic environment of pokervod-db.

Used by the ``alembic`` command (``alembic.ini`` at the repository root), by the functions of
`pokervod_db.migrate` (which pass settings through ``config.attributes``) and by pytest-alembic
(which passes an engine or connection as ``config.attributes["connection"]``). Every online run:

1. takes the maintenance advisory lock, so concurrent runners (several containers starting at
   once, a backup in progress) wait their turn and then find the work already done;
2. creates schema ``pokervod`` if missing and keeps Alembic's version table in it;
3. runs all pending migrations in one transaction (PostgreSQL DDL is transactional): a failed
   ``upgrade head`` leaves the database exactly at the revision it had. A ``lock_timeout`` makes
   DDL stuck behind a long reader fail instead of blocking every query behind it;
4. records, under the lock, the revision it started from and the revisions it applied, so the
   caller reports what this process did, not what a concurrent runner did;
5. compares only schema ``pokervod``, including types and server defaults.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from pokervod_db import embedded
from pokervod_db.database import maintenance_connection
from pokervod_db.errors import PokervodDBError, translate
from pokervod_db.locking import maintenance_lock
from pokervod_db.migrate import MIGRATION_REPORT, MigrationReport, configure_context
from pokervod_db.models import Base
from pokervod_db.settings import SCHEMA, Settings, load_settings

config = context.config
target_metadata = Base.metadata
# pokervod_db.migrate passes its Settings and handles logging and errors itself; the `alembic`
# command line (and pytest-alembic) get alembic.ini's logging and one-line CommandErrors.
CALLED_BY_PACKAGE = isinstance(config.attributes.get("settings"), Settings)
if not CALLED_BY_PACKAGE and config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _settings() -> Settings:
    """The caller's settings, else the environment's (DATABASE_URL or the embedded default)."""
    given = config.attributes.get("settings")
    if isinstance(given, Settings):
        return given
    return load_settings()


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: emit the SQL instead of running it (never connects)."""
    settings = _settings()
    url = "postgresql+psycopg://" if settings.uses_embedded else settings.sync_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        include_schemas=True,
        version_table_schema=SCHEMA,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        # What an online run does before its migrations: a lock_timeout so DDL queued behind a
        # long reader fails instead of blocking, and the schema that holds the version table.
        context.execute(f"SET lock_timeout = {settings.statement_lock_timeout_ms}")
        context.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        context.run_migrations()


def _record_step(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
    report: MigrationReport = config.attributes[MIGRATION_REPORT]
    report.applied.append(step.up_revision_id)  # the script that ran, in either direction
    report.to_revision = next(iter(heads), None)


def _run(connection: Connection, settings: Settings) -> None:
    # Only when missing: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when
    # the schema exists, and an application role (pokervod_app) must be able to run
    # `upgrade head` on a database that is already at head.
    if not connection.execute(
        text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": SCHEMA}
    ).first():
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    # Session-wide: applies to every migration transaction that follows.
    connection.execute(text(f"SET lock_timeout = {settings.statement_lock_timeout_ms}"))
    connection.commit()
    report = config.attributes[MIGRATION_REPORT] = MigrationReport()
    configure_context(
        context, connection, transaction_per_migration=False, on_version_apply=_record_step
    )
    with context.begin_transaction():
        # Read under the lock and in the migration's transaction: the true starting point.
        heads = context.get_context().get_current_heads()
        report.from_revision = report.to_revision = heads[0] if heads else None
        context.run_migrations()
    if connection.in_transaction():
        connection.commit()


@contextmanager
def _locked_connection(settings: Settings, engine: Engine | None = None) -> Iterator[Connection]:
    """A maintenance connection (``engine``'s when given) holding the maintenance lock."""
    with (
        maintenance_connection(
            settings, application_name="pokervod-db migrate", engine=engine
        ) as connection,
        maintenance_lock(
            connection, timeout_s=settings.migration_lock_timeout_s, purpose="the migration"
        ),
    ):
        yield connection


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        # The caller owns the connection (and the lock, if it wants one).
        _run(given, _settings())
        return
    if isinstance(given, Engine):
        # pytest-alembic hands over its engine: run exactly as a normal migration would.
        settings = _settings()
        with _locked_connection(settings, given) as connection:
            _run(connection, settings)
        return
    settings = embedded.start(_settings())
    with _locked_connection(settings) as connection:
        _run(connection, settings)


def main() -> None:
    try:
        if context.is_offline_mode():
            run_migrations_offline()
        else:
            run_migrations_online()
    except (PokervodDBError, DBAPIError) as exc:
        if CALLED_BY_PACKAGE:
            raise
        # The alembic command prints a CommandError as one "FAILED: …" line and exits 1.
        raise CommandError(str(translate(exc))) from exc


main()
