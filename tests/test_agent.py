"""DatabaseAgent: migrations with their events, status, and events stored with the work."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from pokervod_db import migrate
from pokervod_db.agent import BaseAgent, DatabaseAgent
from pokervod_db.database import Database
from pokervod_db.events import Event, EventBus, EventType, read_events
from pokervod_db.locking import MAINTENANCE_LOCK_KEY
from pokervod_db.models import Project
from pokervod_db.settings import Settings
from tests.conftest import PgServer, _conninfo


@pytest.fixture
async def agent(db_settings: Settings) -> AsyncIterator[DatabaseAgent]:
    async with DatabaseAgent(db_settings) as a:
        yield a


@pytest.fixture
async def empty_agent(empty_db_settings: Settings) -> AsyncIterator[DatabaseAgent]:
    async with DatabaseAgent(empty_db_settings) as a:
        yield a


def _connect(pg_server: PgServer, settings: Settings) -> psycopg.Connection:
    return psycopg.connect(_conninfo(settings.url()), autocommit=True)


async def test_run_migration_upgrades_an_empty_database_and_emits_the_event(
    empty_agent: DatabaseAgent, empty_db_settings: Settings
) -> None:
    head = migrate.head_revision()
    result = await empty_agent.run_migration()
    assert result.success and result.error is None
    assert (result.from_version, result.version) == (None, head)
    assert result.applied == [r.revision for r in migrate.history()]
    (event,) = empty_agent.bus.history(EventType.DB_MIGRATION_COMPLETED)
    assert event.payload == {
        "version": head,
        "direction": "upgrade",
        "success": True,
        "from_version": None,
        "applied": result.applied,
    }
    assert event.source_block == "G"
    assert event.id is not None  # stored: the table exists after the upgrade
    stored = await read_events(empty_db_settings)
    assert [e.event_id for e in stored] == [event.event_id]
    assert json.loads(json.dumps(result.to_dict()))["version"] == head


async def test_downgrade_goes_back_one_step_by_default_and_upgrade_returns(
    agent: DatabaseAgent,
) -> None:
    history = [r.revision for r in migrate.history()]
    down = await agent.run_migration("downgrade")
    assert down.success
    assert (down.from_version, down.version) == (history[-1], history[-2])
    assert migrate.current(agent.settings) == history[-2]
    up = await agent.run_migration("upgrade", target=history[-1])
    assert up.success and up.version == history[-1] and up.applied == [history[-1]]
    assert [e.payload["direction"] for e in agent.bus.history()] == ["downgrade", "upgrade"]


async def test_failed_migration_emits_success_false_and_keeps_the_revision(
    empty_agent: DatabaseAgent, empty_db_settings: Settings, pg_server: PgServer
) -> None:
    with _connect(pg_server, empty_db_settings) as conn:
        conn.execute("CREATE SCHEMA pokervod")
        conn.execute("CREATE TABLE pokervod.projects (id int)")  # conflicts with migration 001
    result = await empty_agent.run_migration()
    assert result.success is False
    assert result.error is not None and "projects" in result.error
    assert result.version is None and result.from_version is None
    assert migrate.current(empty_db_settings) is None
    with _connect(pg_server, empty_db_settings) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'pokervod'")
        }
    assert tables == {"projects"}  # the failed run left nothing behind
    (event,) = empty_agent.bus.history(EventType.DB_MIGRATION_COMPLETED)
    assert event.payload["success"] is False
    assert event.payload["error"] == result.error
    assert event.id is None  # no agent_events table to store it in; published in-process


async def test_migration_blocked_by_the_maintenance_lock_fails_cleanly_with_a_stored_event(
    db_settings: Settings, pg_server: PgServer
) -> None:
    head = migrate.head_revision()
    settings = db_settings.model_copy(update={"migration_lock_timeout_s": 0.5})
    with _connect(pg_server, db_settings) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MAINTENANCE_LOCK_KEY,))
        async with DatabaseAgent(settings) as agent:
            result = await agent.run_migration("downgrade")
    assert not result.success
    assert result.error is not None and "waited 0.5 s" in result.error
    assert result.version == head
    assert migrate.current(db_settings) == head
    (stored,) = await read_events(db_settings)
    assert stored.type == EventType.DB_MIGRATION_COMPLETED
    assert stored.payload["success"] is False and stored.payload["direction"] == "downgrade"


async def test_invalid_direction_is_a_programming_error(agent: DatabaseAgent) -> None:
    with pytest.raises(ValueError, match="direction"):
        await agent.run_migration("sideways")


async def test_migration_status_at_head(agent: DatabaseAgent) -> None:
    status = await agent.get_migration_status()
    assert status.at_head and status.pending == [] and status.drift == []
    assert status.drift_checked and status.current == status.head == migrate.head_revision()


async def test_migration_status_of_an_empty_database(empty_agent: DatabaseAgent) -> None:
    empty = await empty_agent.get_migration_status()
    assert empty.current is None and not empty.at_head
    assert empty.pending == [r.revision for r in migrate.history()]
    assert json.loads(json.dumps(empty.to_dict()))["pending"] == empty.pending


async def test_migration_status_reports_drift(
    agent: DatabaseAgent, db_settings: Settings, pg_server: PgServer
) -> None:
    with _connect(pg_server, db_settings) as conn:
        conn.execute("ALTER TABLE pokervod.players ADD COLUMN nickname text")
    status = await agent.get_migration_status()
    assert status.at_head
    assert any("nickname" in line for line in status.drift), status.drift


async def test_event_emitted_with_a_session_commits_with_the_work(agent: DatabaseAgent) -> None:
    seen: list[Event] = []
    agent.bus.subscribe("catalog.project.created", seen.append)
    async with agent.transaction() as session:
        session.add(Project(code="WSOP", name="World Series of Poker"))
        event = await agent.emit("catalog.project.created", {"code": "WSOP"}, session=session)
        assert seen == []  # not before the commit
    assert [e.event_id for e in seen] == [event.event_id]
    (stored,) = await read_events(agent.settings)
    assert stored.id == event.id and stored.payload == {"code": "WSOP"}


async def test_event_emitted_with_a_session_is_dropped_on_rollback(agent: DatabaseAgent) -> None:
    seen: list[Event] = []
    agent.bus.subscribe(ALL_TYPES, seen.append)
    with pytest.raises(RuntimeError):
        async with agent.transaction() as session:
            session.add(Project(code="WPT", name="World Poker Tour"))
            await agent.emit("catalog.project.created", {"code": "WPT"}, session=session)
            raise RuntimeError("the work failed")
    async with agent.transaction() as session:  # the same hooks must not replay the old event
        await agent.emit("test.after", {}, session=session)
    assert [e.type for e in seen] == ["test.after"]
    assert [e.type for e in await read_events(agent.settings)] == ["test.after"]
    async with agent.engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM pokervod.projects"))
    assert count == 0


ALL_TYPES = "*"


async def test_correlation_id_and_on_error(agent: DatabaseAgent) -> None:
    with agent.correlation() as cid:
        parent = await agent.emit("test.parent", {"step": 1})
        child = await agent.emit("test.child", {"step": 2}, parent=parent)
        error = await agent.on_error(OSError("no space left"), operation="export")
    assert parent.correlation_id == child.correlation_id == error.correlation_id == cid
    assert child.parent_event_id == parent.event_id
    assert agent.correlation_id is None
    assert error.type == EventType.SYSTEM_ERROR
    assert error.payload == {
        "operation": "export",
        "error": "no space left",
        "error_type": "OSError",
    }
    stored = await read_events(agent.settings)
    assert [e.type for e in stored] == ["test.parent", "test.child", "system.error"]


async def test_base_agent_publishes_in_process_only() -> None:
    class Sheets(BaseAgent):
        block_id = "D"

    bus = EventBus()
    async with Sheets(bus=bus) as sheets:
        event = await sheets.emit("sheets.sync.completed", {"rows": 3})
        assert await sheets.health_check() is True
    assert event.id is None and event.source_block == "D"
    assert bus.history() == [event]


async def test_agent_given_a_database_uses_its_pool_and_leaves_it_open(
    db_settings: Settings,
) -> None:
    db = Database.from_settings(db_settings)
    try:
        async with DatabaseAgent(db_settings, database=db) as agent:
            assert agent.engine is db.engine and agent.session_factory is db.session_factory
            async with agent.transaction() as session:
                await session.execute(text("SELECT 1"))
            status = await agent.health()
            assert status.pool is not None and status.pool.size == db_settings.pool_size
            pid = await _backend_pid(db)
        # The agent did not dispose of the service's engine: the same pooled connection serves.
        assert await _backend_pid(db) == pid
    finally:
        await db.dispose()


async def test_agent_without_a_database_builds_one_and_disposes_of_it(
    db_settings: Settings,
) -> None:
    agent = DatabaseAgent(db_settings)
    async with agent:
        engine = agent.engine
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        assert _idle_connections(engine) == 1
    assert _idle_connections(engine) == 0  # disposed: no connection left open
    with pytest.raises(RuntimeError, match="not initialized"):
        _ = agent.engine


def _idle_connections(engine: AsyncEngine) -> int:
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    return pool.checkedin()


async def _backend_pid(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
