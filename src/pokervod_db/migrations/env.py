"""Alembic environment of pokervod-db.

Used both by the ``alembic`` command (``alembic.ini`` at the repository root) and by the
functions of `pokervod_db.migrate` (which pass settings or a connection through
``config.attributes``). Every online run:

1. takes the maintenance advisory lock, so concurrent runners (several containers starting at
   once, a backup in progress) wait their turn and then find the work already done;
2. creates schema ``pokervod`` if missing and keeps Alembic's version table in it;
3. runs all pending migrations in one transaction (PostgreSQL DDL is transactional): a failed
   ``upgrade head`` leaves the database exactly at the revision it had. A ``lock_timeout`` makes
   DDL stuck behind a long reader fail instead of blocking every query behind it;
4. compares only schema ``pokervod``, including types and server defaults.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, text

from pokervod_db import embedded
from pokervod_db.database import create_sync_engine
from pokervod_db.locking import maintenance_lock
from pokervod_db.migrate import configure_context
from pokervod_db.models import Base
from pokervod_db.settings import SCHEMA, Settings

config = context.config
target_metadata = Base.metadata
if config.config_file_name is not None and not config.attributes.get("settings"):
    # Only the `alembic` command reads alembic.ini's logging; library callers keep theirs.
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _settings() -> Settings:
    settings = config.attributes.get("settings")
    if settings is None:
        settings = Settings()
    return embedded.start(settings)


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: emit the SQL instead of running it."""
    settings = config.attributes.get("settings") or Settings()
    url = settings.sync_url() if not settings.uses_embedded else "postgresql+psycopg://"
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
        context.run_migrations()


def _run(connection: Connection, settings: Settings) -> None:
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    # Session-wide: applies to every migration transaction that follows.
    connection.execute(text(f"SET lock_timeout = {settings.statement_lock_timeout_ms}"))
    connection.commit()
    configure_context(context, connection, transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()
    if connection.in_transaction():
        connection.commit()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    settings = _settings()
    if given is not None:
        # The caller holds the lock (or knows what it does) and owns the connection.
        _run(given, settings)
        return
    engine = create_sync_engine(settings, application_name="pokervod-db migrate")
    try:
        with (
            engine.connect() as connection,
            maintenance_lock(
                connection, timeout_s=settings.migration_lock_timeout_s, purpose="the migration"
            ),
        ):
            _run(connection, settings)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
