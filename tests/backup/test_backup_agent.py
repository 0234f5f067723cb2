"""The agent's backup operations: events, migration with a backup first, health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pokervod_db import migrate
from pokervod_db.agent import DatabaseAgent
from pokervod_db.backup import list_backups
from pokervod_db.errors import BackupError
from pokervod_db.events import EventType, read_events
from pokervod_db.settings import Settings
from tests.backup.support import all_rows, change_data

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(db_settings: Settings, tmp_path: Path) -> Settings:
    return db_settings.model_copy(update={"backup_dir": tmp_path / "backups"})


@pytest.fixture
async def agent(settings: Settings) -> AsyncIterator[DatabaseAgent]:
    async with DatabaseAgent(settings) as a:
        yield a


async def test_backup_and_restore_emit_their_events(
    agent: DatabaseAgent, settings: Settings
) -> None:
    made = await agent.backup_database(tag="manual")
    (done,) = agent.bus.history(EventType.DB_BACKUP_COMPLETED)
    assert done.payload["file"] == str(made.file) and done.payload["sha256"] == made.sha256
    assert done.payload["size_mb"] == made.size_mb and done.payload["revision"] == made.revision
    assert done.payload["duration_s"] >= 0 and done.id is not None  # stored durably

    before = all_rows(settings, ("projects", "players"))
    change_data(settings)
    last_before = max(e.id or 0 for e in await read_events(settings))
    restored = await agent.restore_database(made.file)
    assert all_rows(settings, ("projects", "players")) == before
    (event,) = agent.bus.history(EventType.DB_RESTORE_COMPLETED)
    assert event.payload["file"] == str(made.file)
    assert event.payload["revision"] == restored.revision
    assert event.payload["row_counts"] == restored.row_counts
    assert event.payload["duration_s"] > 0
    # The restored sequence would have reused ids: new events continue above those seen.
    assert event.id is not None and event.id > last_before


async def test_failed_restore_emits_system_error_and_raises(
    agent: DatabaseAgent, tmp_path: Path
) -> None:
    with pytest.raises(BackupError, match="does not exist"):
        await agent.restore_database(tmp_path / "missing.dump")
    (error,) = agent.bus.history(EventType.SYSTEM_ERROR)
    assert error.payload["operation"] == "restore"
    assert "does not exist" in error.payload["error"]
    assert not agent.bus.history(EventType.DB_RESTORE_COMPLETED)


async def test_migration_with_backup_first_backs_up_only_when_there_is_work(
    agent: DatabaseAgent, settings: Settings
) -> None:
    at_head = await agent.run_migration(backup_first=True)
    assert at_head.success and at_head.backup is None and not list_backups(settings)

    await agent.run_migration("downgrade")
    older = migrate.current(settings)
    result = await agent.run_migration(backup_first=True)
    assert result.success and result.backup is not None
    (info,) = list_backups(settings)
    assert str(info.file) == result.backup and info.revision == older
    assert info.tag == f"pre-upgrade-{older}"
    last = agent.bus.history(EventType.DB_MIGRATION_COMPLETED)[-1]
    assert last.payload["backup"] == result.backup


async def test_health_reports_the_age_of_the_newest_verified_backup(
    agent: DatabaseAgent,
) -> None:
    report = await agent.health()
    check = next(c for c in report.checks if c.name == "backup")
    assert not check.ok and not check.critical and report.healthy
    assert report.newest_verified_backup_age_s is None

    made = await agent.backup_database()
    await agent.verify_backup(made.file)
    report = await agent.health()
    check = next(c for c in report.checks if c.name == "backup")
    assert check.ok and report.newest_verified_backup_age_s is not None
    assert 0 <= report.newest_verified_backup_age_s < 600
