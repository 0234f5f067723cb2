"""search_path ``pokervod, public`` on every kind of connection the package opens (PRD 2.2), so
the other blocks' raw SQL with bare table names works."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from pokervod_db import migrate
from pokervod_db.backup.connection import maintenance_connection
from pokervod_db.database import Database, create_engine, create_sync_engine
from pokervod_db.settings import Settings

EXPECTED = "pokervod, public"


async def test_application_connections_find_tables_by_bare_name(db_settings: Settings):
    database = Database.from_settings(db_settings)
    try:
        async with database.transaction() as session:
            await session.execute(
                text("INSERT INTO projects (code, name) VALUES ('WSOP', 'World Series')")
            )
        async with database.engine.connect() as conn:
            assert await conn.scalar(text("SHOW search_path")) == EXPECTED
            assert await conn.scalar(text("SELECT count(*) FROM projects")) == 1
    finally:
        await database.dispose()


async def test_search_path_survives_the_pools_reset_between_checkouts(db_settings: Settings):
    # The SET runs in autocommit: inside the pool's implicit transaction a rollback on
    # check-in would undo it and the second checkout of the same connection would lose it.
    engine = create_engine(db_settings)
    try:
        for _ in range(3):
            async with engine.connect() as conn:
                assert await conn.scalar(text("SHOW search_path")) == EXPECTED
                await conn.rollback()
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        assert pool.checkedin() == 1  # the same connection each time
    finally:
        await engine.dispose()


def test_maintenance_connections_find_tables_by_bare_name(db_settings: Settings):
    engine = create_sync_engine(db_settings)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SHOW search_path")) == EXPECTED
            assert conn.scalar(text("SELECT count(*) FROM video_files")) == 0
    finally:
        engine.dispose()
    with maintenance_connection(db_settings) as conn:
        assert conn.scalar(text("SHOW search_path")) == EXPECTED


def test_migration_connections_use_the_search_path(empty_db_settings: Settings):
    # env.py migrates on create_sync_engine(settings, application_name="pokervod-db migrate");
    # current/drift/stamp read through maintenance_connection.
    engine = create_sync_engine(empty_db_settings, application_name="pokervod-db migrate")
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SHOW search_path")) == EXPECTED
    finally:
        engine.dispose()
    migrate.upgrade(empty_db_settings)
    assert migrate.current(empty_db_settings) is not None
    with maintenance_connection(empty_db_settings) as conn:
        assert conn.scalar(text("SHOW search_path")) == EXPECTED
        assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
