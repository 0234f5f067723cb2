"""Listing backups and pruning old ones.

Retention keeps, for the ``keep_daily`` most recent UTC days that have backups, the newest backup
of each day, and likewise for the ``keep_weekly`` most recent ISO weeks; the newest verified
backup is always kept, whatever its age. Backups are dated by their manifest's start time. Only
complete backups (archive and manifest) are ever deleted; anything else in the directory is left
alone and shown by `list_backups` with its problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pokervod_db.backup.archive import (
    Manifest,
    archive_size,
    iter_backups,
    manifest_path,
    read_manifest,
    remove_archive,
    stem_time,
)
from pokervod_db.errors import BackupError, PokervodDBError
from pokervod_db.settings import Settings


@dataclass
class BackupInfo:
    """One backup in the backup directory, as `backup list` shows it."""

    name: str
    file: Path | None
    started_at: datetime | None
    size_bytes: int | None
    revision: str | None
    verified_at: datetime | None
    verified_ok: bool | None
    tag: str | None
    kind: str | None
    problem: str | None = None
    manifest: Manifest | None = field(default=None, repr=False)

    @property
    def complete(self) -> bool:
        return self.problem is None

    @property
    def verified(self) -> bool:
        return bool(self.verified_ok)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": str(self.file) if self.file else None,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "size_bytes": self.size_bytes,
            "revision": self.revision,
            "verified": self.verified,
            "verified_at": self.verified_at.isoformat() if self.verified_at else None,
            "tag": self.tag,
            "format": self.kind,
            "problem": self.problem,
        }


def list_backups(settings: Settings, *, backup_dir: Path | None = None) -> list[BackupInfo]:
    """Every backup of the directory, newest first (no database connection needed)."""
    directory = (backup_dir or settings.backup_dir).expanduser()
    found: list[BackupInfo] = []
    for stem, archive, manifest_file in iter_backups(directory):
        info = BackupInfo(stem, archive, stem_time(stem), None, None, None, None, None, None)
        if archive is None:
            info.problem = "archive missing (only the manifest is left)"
        else:
            try:
                info.size_bytes = archive_size(archive)
            except OSError:
                info.problem = "archive unreadable"
        if manifest_file is None:
            info.problem = info.problem or "no manifest: not made by a complete backup"
        elif archive is not None:
            try:
                manifest = read_manifest(archive)
            except PokervodDBError as exc:
                info.problem = str(exc)
            else:
                info.manifest = manifest
                info.started_at = manifest.started_at
                info.revision = manifest.revision
                info.tag = manifest.tag
                info.kind = manifest.kind.value
                if manifest.verification is not None:
                    info.verified_at = manifest.verification.verified_at
                    info.verified_ok = manifest.verification.ok
                if info.size_bytes is not None and info.size_bytes != manifest.size_bytes:
                    info.problem = "size differs from the manifest (truncated or changed)"
        found.append(info)
    epoch = datetime.min.replace(tzinfo=UTC)
    found.sort(key=lambda b: (b.started_at or epoch, b.name), reverse=True)
    return found


def newest_verified(backups: list[BackupInfo]) -> BackupInfo | None:
    """The newest complete backup whose last verification passed."""
    return next((b for b in backups if b.complete and b.verified), None)


def newest_verified_age_s(
    settings: Settings, *, backup_dir: Path | None = None, now: datetime | None = None
) -> float | None:
    """Seconds since the newest verified backup was taken (None when none is verified).

    For the health report: an old value means verification stopped running, or failing.
    """
    found = newest_verified(list_backups(settings, backup_dir=backup_dir))
    if found is None or found.started_at is None:
        return None
    return ((now or datetime.now(UTC)) - found.started_at).total_seconds()


@dataclass
class PruneResult:
    kept: list[BackupInfo]
    deleted: list[BackupInfo]
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "kept": [b.name for b in self.kept],
            "deleted": [b.name for b in self.deleted],
            "dry_run": self.dry_run,
        }


def select_kept(backups: list[BackupInfo], *, keep_daily: int, keep_weekly: int) -> set[str]:
    """Names of the complete backups that the retention rules keep (see the module doc)."""
    complete = [b for b in backups if b.complete and b.started_at is not None]
    complete.sort(key=lambda b: (b.started_at, b.name), reverse=True)
    kept: set[str] = set()
    days: set[object] = set()
    weeks: set[object] = set()
    for b in complete:
        assert b.started_at is not None
        moment = b.started_at.astimezone(UTC)
        day = moment.date()
        week = moment.isocalendar()[:2]
        if day not in days and len(days) < keep_daily:
            days.add(day)
            kept.add(b.name)
        if week not in weeks and len(weeks) < keep_weekly:
            weeks.add(week)
            kept.add(b.name)
    verified = newest_verified(complete)
    if verified is not None:
        kept.add(verified.name)
    return kept


def prune_backups(
    settings: Settings,
    *,
    keep_daily: int,
    keep_weekly: int,
    backup_dir: Path | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Delete complete backups that the retention rules do not keep (archive, then manifest)."""
    if keep_daily < 0 or keep_weekly < 0:
        raise BackupError("keep_daily and keep_weekly cannot be negative")
    if keep_daily == 0 and keep_weekly == 0:
        raise BackupError(
            "keeping 0 daily and 0 weekly backups would delete every backup but the newest "
            "verified one; keep at least one day or week"
        )
    backups = list_backups(settings, backup_dir=backup_dir)
    kept_names = select_kept(backups, keep_daily=keep_daily, keep_weekly=keep_weekly)
    kept: list[BackupInfo] = []
    deleted: list[BackupInfo] = []
    for b in backups:
        if not b.complete or b.name in kept_names:
            kept.append(b)
            continue
        if not dry_run:
            assert b.file is not None
            try:
                remove_archive(b.file)  # the archive first: a half-pruned backup is not usable
                manifest_path(b.file).unlink(missing_ok=True)
            except OSError as exc:
                raise BackupError(f"cannot delete {b.file}: {exc.strerror}") from exc
        deleted.append(b)
    return PruneResult(kept=kept, deleted=deleted, dry_run=dry_run)
