"""Retention and listing on synthetic backups with chosen timestamps, and prune on real archives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pokervod_db import backup
from pokervod_db.backup import list_backups, prune_backups
from pokervod_db.backup.archive import (
    ArchiveKind,
    Manifest,
    Verification,
    manifest_path,
    read_manifest,
    stem_for,
    write_manifest,
)
from pokervod_db.errors import BackupError
from pokervod_db.settings import Settings

NOW = datetime(2025, 12, 11, 12, 0, tzinfo=UTC)  # a Thursday


def _settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, BACKUP_DIR=tmp_path)


def _fake(directory: Path, moment: datetime, *, verified: bool | None = None) -> str:
    stem = stem_for(moment)
    archive = directory / f"{stem}.dump.zst"
    archive.write_bytes(b"\x28\xb5\x2f\xfd fake")
    manifest = Manifest(
        archive=archive.name,
        kind=ArchiveKind.CUSTOM_ZSTD,
        compression="zstd:3",
        sha256="0" * 64,
        size_bytes=archive.stat().st_size,
        started_at=moment,
        duration_s=1.0,
        database="pokervod",
        schema_name="pokervod",
        server_version="18.1",
        server_version_num=180001,
        pg_dump_version="18.1",
        revision="003_agent_events",
        row_counts={},
        checksums={},
        checksum_method="none",
        objects={},
    )
    if verified is not None:
        manifest.verification = Verification(
            verified_at=moment + timedelta(hours=1),
            ok=verified,
            detail="",
            duration_s=1.0,
            server_version="18.1",
        )
    write_manifest(archive, manifest)
    return stem


def _every_6_hours_for(tmp_path: Path, days: int) -> list[str]:
    return [_fake(tmp_path, NOW - timedelta(hours=6 * i)) for i in range(days * 4)]


def test_keep_daily_keeps_the_newest_backup_of_each_recent_day(tmp_path: Path) -> None:
    _every_6_hours_for(tmp_path, 10)
    result = prune_backups(_settings(tmp_path), keep_daily=3, keep_weekly=0)
    kept = sorted(b.name for b in result.kept)
    assert kept == [
        stem_for(datetime(2025, 12, 9, 18, 0, tzinfo=UTC)),
        stem_for(datetime(2025, 12, 10, 18, 0, tzinfo=UTC)),
        stem_for(NOW),  # today's newest (12:00)
    ]
    assert len(result.deleted) == 40 - 3
    assert sorted(b.name for b in list_backups(_settings(tmp_path))) == kept


def test_keep_weekly_keeps_the_newest_backup_of_each_recent_iso_week(tmp_path: Path) -> None:
    _every_6_hours_for(tmp_path, 20)
    result = prune_backups(_settings(tmp_path), keep_daily=1, keep_weekly=3, dry_run=True)
    kept = sorted(b.name for b in result.kept)
    # Weeks: Mon 8 Dec (this week, newest = now), Mon 1 Dec (newest Sun 7 Dec 18:00),
    # Mon 24 Nov (newest Sun 30 Nov 18:00). Daily 1 = now, already kept.
    assert kept == [
        stem_for(datetime(2025, 11, 30, 18, 0, tzinfo=UTC)),
        stem_for(datetime(2025, 12, 7, 18, 0, tzinfo=UTC)),
        stem_for(NOW),
    ]
    assert len(list_backups(_settings(tmp_path))) == 80  # dry run deleted nothing


def test_the_newest_verified_backup_is_never_deleted(tmp_path: Path) -> None:
    old_verified = _fake(tmp_path, NOW - timedelta(days=40), verified=True)
    _fake(tmp_path, NOW - timedelta(days=30), verified=True)
    newest_verified = _fake(tmp_path, NOW - timedelta(days=20), verified=True)
    failed = _fake(tmp_path, NOW - timedelta(days=10), verified=False)
    today = _fake(tmp_path, NOW)
    result = prune_backups(_settings(tmp_path), keep_daily=1, keep_weekly=0)
    assert sorted(b.name for b in result.kept) == sorted([newest_verified, today])
    assert old_verified in {b.name for b in result.deleted}
    assert failed in {b.name for b in result.deleted}


def test_incomplete_entries_are_listed_with_their_problem_and_never_pruned(
    tmp_path: Path,
) -> None:
    complete = _fake(tmp_path, NOW - timedelta(days=5))
    orphan = tmp_path / f"{stem_for(NOW - timedelta(days=9))}.dump"
    orphan.write_bytes(b"PGDMP no manifest")
    (tmp_path / "notes.txt").write_text("not a backup")
    (tmp_path / f".pokervod_tmp_1_{stem_for(NOW)}.dump.zst").write_bytes(b"partial")

    listed = list_backups(_settings(tmp_path))
    assert [(b.name, b.problem is None) for b in listed] == [
        (complete, True),
        (orphan.name.removesuffix(".dump"), False),
    ]
    assert "no manifest" in (listed[1].problem or "")
    prune_backups(_settings(tmp_path), keep_daily=1, keep_weekly=0)
    assert orphan.exists() and (tmp_path / "notes.txt").exists()
    assert (tmp_path / f"{complete}.dump.zst").exists()


def test_prune_refuses_to_keep_nothing(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="keep at least one day or week"):
        prune_backups(_settings(tmp_path), keep_daily=0, keep_weekly=0)


def test_age_of_the_newest_verified_backup(tmp_path: Path) -> None:
    from pokervod_db.backup import newest_verified_age_s

    settings = _settings(tmp_path)
    assert newest_verified_age_s(settings, now=NOW) is None
    _fake(tmp_path, NOW - timedelta(days=3), verified=True)
    _fake(tmp_path, NOW - timedelta(days=1), verified=False)
    _fake(tmp_path, NOW - timedelta(hours=1))
    assert newest_verified_age_s(settings, now=NOW) == timedelta(days=3).total_seconds()


@pytest.mark.slow
def test_prune_on_real_archives_deletes_archive_and_manifest_and_keeps_the_rest_restorable(
    db_settings: Settings, tmp_path: Path
) -> None:
    """Real pg_dump archives, moved to chosen days: what prune keeps still passes every check a
    restore makes before touching the database; what it deletes is gone with its manifest."""
    settings = db_settings.model_copy(update={"backup_dir": tmp_path / "backups"})
    days = [NOW - timedelta(days=n) for n in (3, 2, 1)]
    archives = []
    for moment in days:
        made = backup.create_backup(settings, upload=False)
        manifest = read_manifest(made.file)
        moved = made.file.with_name(stem_for(moment) + ArchiveKind(made.kind).suffix)
        made.file.rename(moved)
        made.manifest_file.unlink()
        manifest.archive, manifest.started_at = moved.name, moment
        write_manifest(moved, manifest)
        archives.append(moved)
    oldest, middle, newest = archives
    assert backup.verify_backup(settings, middle).ok  # the newest verified one

    result = prune_backups(settings, keep_daily=1, keep_weekly=0)

    assert [b.name for b in result.deleted] == [oldest.name.split(".")[0]]
    assert not oldest.exists() and not manifest_path(oldest).exists()
    for kept in (middle, newest):
        assert backup.check_archive(settings, kept).manifest.archive == kept.name
    assert {b.file for b in list_backups(settings)} == {middle, newest}
