"""WAL archiving, verified base backups and point-in-time recovery of a private embedded server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from pokervod_db import embedded
from pokervod_db.backup import physical, wal
from pokervod_db.database import create_engine
from pokervod_db.errors import BackupError
from pokervod_db.health import check_health
from pokervod_db.settings import Settings
from tests.server_support import archive_current_segment, private_server, scalar

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def archived() -> Iterator[tuple[Settings, Path]]:
    """(configured settings, base dir) of a server that archives WAL into BACKUP_DIR/wal."""
    with private_server("pitr", BACKUP_WAL=True) as (configured, _started, base):
        yield configured, base


def _url(configured: Settings) -> str:
    return embedded.start(configured).libpq_url()


def _insert(configured: Settings, *codes: str) -> None:
    with psycopg.connect(_url(configured), autocommit=True) as conn:
        for code in codes:
            conn.execute("INSERT INTO pokervod.projects (code, name) VALUES (%s, 'x')", (code,))


def _codes(configured: Settings) -> list[str]:
    with psycopg.connect(_url(configured)) as conn:
        rows = conn.execute("SELECT code FROM pokervod.projects ORDER BY code").fetchall()
    return [r[0] for r in rows]


async def test_backup_wal_archives_segments_and_health_reports_the_archiver(
    archived: tuple[Settings, Path],
) -> None:
    configured, _ = archived
    url = _url(configured)
    assert scalar(url, "SHOW archive_mode") == "on"
    assert scalar(url, "SHOW archive_timeout") == "1min"
    archive_current_segment(url, wal.archive_dir(configured))
    started = embedded.start(configured)
    engine = create_engine(started)
    try:
        report = await check_health(started, engine)
    finally:
        await engine.dispose()
    archiver = {c.name: c for c in report.checks}["archiver"]
    assert archiver.ok and not archiver.critical and "last archived" in archiver.detail
    assert report.archiver is not None and report.archiver["failed_count"] == 0


def test_physical_backup_is_verified_and_the_next_one_is_incremental(
    archived: tuple[Settings, Path],
) -> None:
    configured, _ = archived
    first = physical.create_physical_backup(configured, full=True)
    assert first.verified and first.kind == "full" and first.size_bytes > 1_000_000
    assert first.start_lsn and first.start_wal and first.duration_s > 0
    assert (first.path / "backup_manifest").exists()
    assert oct(physical._sidecar(first.path).stat().st_mode & 0o777) == "0o600"
    second = physical.create_physical_backup(configured)
    assert second.verified and second.kind == "incremental" and second.parent == first.name
    assert second.size_bytes < first.size_bytes
    window = physical.recoverable_window(configured)
    assert window.earliest == first.finished_at and window.wal_segments > 0


def test_point_in_time_restore_keeps_exactly_the_rows_committed_before_the_time(
    archived: tuple[Settings, Path],
) -> None:
    configured, _ = archived
    physical.create_physical_backup(configured)
    _insert(configured, "BEFORE1", "BEFORE2")
    time.sleep(1.1)
    target = datetime.now(UTC)
    time.sleep(1.1)
    _insert(configured, "AFTER1", "AFTER2")
    before_restore = _codes(configured)

    result = physical.restore_physical(configured, to_time=target)

    codes = _codes(configured)
    assert "BEFORE1" in codes and "BEFORE2" in codes
    assert "AFTER1" not in codes and "AFTER2" not in codes
    assert set(before_restore) - set(codes) == {"AFTER1", "AFTER2"}
    assert result.old_data_dir is not None and result.old_data_dir.is_dir()
    assert (result.old_data_dir / "PG_VERSION").exists()
    assert result.timeline >= 2 and "revision" in result.checked
    # The restored server runs without recovery settings left behind.
    assert scalar(_url(configured), "SELECT pg_is_in_recovery()") is False
    assert scalar(_url(configured), "SELECT current_setting('restore_command')") == ""


def test_restore_to_the_end_of_the_archive_keeps_every_committed_row(
    archived: tuple[Settings, Path],
) -> None:
    configured, _ = archived
    physical.create_physical_backup(configured, full=True)
    _insert(configured, "LATE1")
    time.sleep(0.2)
    _insert(configured, "LATE2")  # never archived: it is still in the old pg_wal
    before = _codes(configured)
    physical.restore_physical(configured)
    assert _codes(configured) == before


def test_corrupted_base_backup_is_refused_before_anything_is_touched(
    archived: tuple[Settings, Path],
) -> None:
    configured, _ = archived
    backup = physical.create_physical_backup(configured, full=True)
    victim = next(
        p
        for p in sorted((backup.path / "base").rglob("*"))
        if p.is_file() and p.stat().st_size > 8192
    )
    with victim.open("r+b") as handle:
        handle.seek(4096)
        handle.write(b"\x00corrupt\x00")
    data_dir = configured.embedded_data_dir.resolve()
    pid_before = (data_dir / "postmaster.pid").read_text().splitlines()[0]
    siblings_before = sorted(p.name for p in data_dir.parent.iterdir())
    rows_before = _codes(configured)

    with pytest.raises(BackupError, match="failed verification") as err:
        physical.restore_physical(configured, backup=backup.name)

    assert "\n" not in str(err.value)
    assert (data_dir / "postmaster.pid").read_text().splitlines()[0] == pid_before
    assert sorted(p.name for p in data_dir.parent.iterdir()) == siblings_before
    assert _codes(configured) == rows_before


def test_prune_keeps_the_wal_that_kept_base_backups_need(archived: tuple[Settings, Path]) -> None:
    configured, _ = archived
    url = _url(configured)
    for _ in range(2):
        archive_current_segment(url, wal.archive_dir(configured))
    newest = physical.create_physical_backup(configured, full=True)
    segments_before = sorted(p.name for p in physical._segments(configured))

    result = physical.prune_physical(configured, keep_full=1)

    assert result.kept[0] == newest.name and newest.name in result.kept
    assert result.deleted and all(not (newest.path.parent / n).exists() for n in result.deleted)
    left = sorted(p.name for p in physical._segments(configured))
    assert left and min(s[8:] for s in left) >= newest.start_wal[8:]
    assert result.wal_deleted == len(segments_before) - len(left)
    assert physical.restore_physical(configured).backup == newest.name  # still restorable


def test_restore_physical_refuses_a_server_it_does_not_run() -> None:
    external = Settings(_env_file=None, DATABASE_URL="postgresql://u:secret@db.example:5432/x")
    with pytest.raises(BackupError, match="only the embedded server") as err:
        physical.restore_physical(external)
    assert "secret" not in str(err.value)
