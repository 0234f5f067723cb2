"""kill -9 of a backup or restore at chosen points: never a valid-looking file, never a mix."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pokervod_db import backup
from pokervod_db.backup.archive import TEMP_PREFIX
from pokervod_db.settings import Settings
from tests.backup.support import (
    all_rows,
    change_data,
    env_for,
    fill,
    schemas,
    start_paused,
    wait_for,
    wait_no_clients,
)

pytestmark = pytest.mark.slow


@pytest.fixture
async def filled(db_settings: Settings, session, tmp_path: Path) -> Settings:
    await fill(session)
    return db_settings.model_copy(update={"backup_dir": tmp_path / "backups"})


def _kill(process) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.mark.parametrize(("phase", "at"), [("dump", 3), ("check", 0)])
def test_killed_backup_leaves_no_valid_looking_file(
    filled: Settings, tmp_path: Path, phase: str, at: int
) -> None:
    marker = tmp_path / "paused"
    child = start_paused(
        env_for(filled, filled.backup_dir), "backup", phase=phase, at=at, marker=marker
    )
    wait_for(marker, child)
    _kill(child)
    wait_no_clients(filled)  # pg_dump died with its parent

    names = [p.name for p in filled.backup_dir.iterdir()]
    assert not [n for n in names if n.startswith("pokervod_backup_")], names
    assert backup.list_backups(filled) == []
    # The next backup cleans the temporary files of the dead run and succeeds.
    made = backup.create_backup(filled)
    assert sorted(p.name for p in filled.backup_dir.iterdir()) == sorted(
        [made.file.name, made.manifest_file.name]
    )
    assert not any(n.startswith(TEMP_PREFIX) for n in os.listdir(filled.backup_dir))


@pytest.mark.parametrize(
    ("phase", "at", "expect_new"),
    [
        ("safety backup: dump", 2, False),  # while the safety backup runs
        ("restore", 6, False),  # in the middle of loading the tables
        ("restore: check", 0, False),  # everything loaded, COMMIT not yet sent
        ("restore: committed", 0, True),  # committed, old schema not yet dropped
    ],
)
def test_killed_restore_keeps_old_or_new_data_never_a_mix(
    filled: Settings, tmp_path: Path, phase: str, at: int, expect_new: bool
) -> None:
    made = backup.create_backup(filled)
    new_rows = all_rows(filled)
    change_data(filled)
    old_rows = all_rows(filled)

    marker = tmp_path / "paused"
    child = start_paused(
        env_for(filled, filled.backup_dir),
        "restore",
        phase=phase,
        at=at,
        marker=marker,
        archive=made.file,
    )
    wait_for(marker, child)
    _kill(child)
    wait_no_clients(filled)  # psql died with its parent

    assert all_rows(filled) == (new_rows if expect_new else old_rows)
    # A later restore takes the lock (the dead one's was released), removes any leftover
    # schema and succeeds.
    backup.restore_backup(filled, archive=made.file, safety_backup=False)
    assert all_rows(filled) == new_rows
    assert schemas(filled) == ["pokervod"]
