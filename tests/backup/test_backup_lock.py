"""One lock for migrate, backup and restore: the second waits (bounded), never overlaps."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pokervod_db import backup, migrate
from pokervod_db.backup.connection import maintenance_connection
from pokervod_db.errors import LockTimeoutError
from pokervod_db.locking import maintenance_lock
from pokervod_db.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(db_settings: Settings, tmp_path: Path) -> Settings:
    migrate.downgrade(db_settings, "-1")  # leave one migration for `upgrade` to run
    return db_settings.model_copy(update={"backup_dir": tmp_path / "backups"})


def _backup_paused_in_dump(
    settings: Settings,
) -> tuple[threading.Thread, threading.Event, dict[str, Any]]:
    """Start a backup in a thread that stops inside pg_dump's work until released."""
    paused, release = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def progress(step: backup.Progress) -> None:
        if step.phase == "dump" and step.tables_done >= 1 and not paused.is_set():
            paused.set()
            release.wait(30)

    def run() -> None:
        try:
            outcome["result"] = backup.create_backup(settings, progress=progress)
        except BaseException as exc:
            outcome["error"] = exc
        outcome["ended"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    assert paused.wait(30), "the backup did not start dumping"
    return thread, release, outcome


def test_migration_waits_for_a_running_backup_then_runs(settings: Settings) -> None:
    before = migrate.current(settings)
    thread, release, outcome = _backup_paused_in_dump(settings)
    migrated: dict[str, Any] = {}

    def upgrade() -> None:
        s = settings.model_copy(update={"migration_lock_timeout_s": 60})
        migrated["outcome"] = migrate.upgrade(s)
        migrated["ended"] = time.monotonic()

    migration = threading.Thread(target=upgrade)
    migration.start()
    time.sleep(1.0)
    assert "outcome" not in migrated, "the migration overlapped the backup"
    release.set()
    thread.join(60)
    migration.join(60)
    assert "error" not in outcome, outcome.get("error")
    assert migrated["outcome"].applied and migrated["ended"] >= outcome["ended"]
    # The backup describes the database as it was before the migration.
    assert outcome["result"].revision == before


def test_migration_gives_up_clearly_when_a_backup_holds_the_lock(settings: Settings) -> None:
    thread, release, outcome = _backup_paused_in_dump(settings)
    try:
        s = settings.model_copy(update={"migration_lock_timeout_s": 0.5})
        with pytest.raises(LockTimeoutError, match=r"cannot start the migration: .*backup"):
            migrate.upgrade(s)
    finally:
        release.set()
        thread.join(60)
    assert "error" not in outcome


def test_backup_and_restore_give_up_clearly_when_a_migration_holds_the_lock(
    settings: Settings,
) -> None:
    made = backup.create_backup(settings)
    s = settings.model_copy(update={"backup_lock_timeout_s": 0.5})
    with (
        maintenance_connection(settings, application_name="pokervod-db migrate") as conn,
        maintenance_lock(conn, timeout_s=1, purpose="the migration"),
    ):
        with pytest.raises(LockTimeoutError, match=r"cannot start the backup: pokervod-db migrate"):
            backup.create_backup(s)
        with pytest.raises(
            LockTimeoutError, match=r"cannot start the restore: pokervod-db migrate"
        ):
            backup.restore_backup(s, archive=made.file)
    assert [b.file for b in backup.list_backups(settings)] == [made.file]
