"""Backup files on disk: names, kinds, the manifest beside each archive, checksums.

A backup is an archive plus ``<stem>.manifest.json``. Archives come in three kinds, told apart by
their first bytes (never trusted from the name alone):

- ``<stem>.dump``: pg_dump custom format with pg_dump's own compression (gzip or none);
- ``<stem>.dump.zst``: custom format written uncompressed by pg_dump and compressed by us with
  multi-threaded zstd (the default: about twice as fast as gzip and no larger);
- ``<stem>.dumpdir/``: directory format, dumped with parallel jobs, for large databases.

The archive is renamed into place last, after its manifest: a file with a final name always has a
complete manifest, and a killed backup leaves only a temporary name that the next run removes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from pokervod_db.errors import BackupError

PREFIX = "pokervod_backup_"
MANIFEST_SUFFIX = ".manifest.json"
TEMP_PREFIX = ".pokervod_tmp_"
_STEM = re.compile(r"^pokervod_backup_(\d{8}_\d{6})(?:_(\d+))?$")
_CHUNK = 1 << 20

PGDMP_MAGIC = b"PGDMP"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class ArchiveKind(StrEnum):
    CUSTOM = "custom"
    CUSTOM_ZSTD = "custom+zstd"
    DIRECTORY = "directory"

    @property
    def suffix(self) -> str:
        return {"custom": ".dump", "custom+zstd": ".dump.zst", "directory": ".dumpdir"}[self.value]


class Verification(BaseModel):
    """The outcome of `verify_backup`, recorded in the manifest."""

    verified_at: datetime
    ok: bool
    detail: str
    duration_s: float
    server_version: str


class Manifest(BaseModel):
    """What an archive holds, measured in the same snapshot that pg_dump dumped."""

    format_version: int = 1
    archive: str
    kind: ArchiveKind
    compression: str
    sha256: str
    size_bytes: int
    started_at: datetime
    duration_s: float
    database: str
    schema_name: str = Field(alias="schema")
    server_version: str
    server_version_num: int
    pg_dump_version: str
    revision: str | None
    row_counts: dict[str, int]
    checksums: dict[str, str]
    checksum_method: str
    objects: dict[str, int]
    tag: str | None = None
    verification: Verification | None = None

    model_config = {"populate_by_name": True}

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2) + "\n"


def stem_for(moment: datetime, attempt: int = 0) -> str:
    """``pokervod_backup_YYYYMMDD_HHMMSS`` in UTC (``_N`` appended when that second is taken)."""
    stem = PREFIX + moment.astimezone(UTC).strftime("%Y%m%d_%H%M%S")
    return stem if attempt == 0 else f"{stem}_{attempt}"


def parse_stem(name: str) -> str | None:
    """The stem of a backup file or manifest name, or None for anything else."""
    for suffix in (MANIFEST_SUFFIX, *(k.suffix for k in ArchiveKind)):
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            return stem if _STEM.match(stem) else None
    return None


def stem_time(stem: str) -> datetime | None:
    match = _STEM.match(stem)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y%m%d_%H%M%S").replace(tzinfo=UTC)


def manifest_path(archive: Path) -> Path:
    stem = parse_stem(archive.name)
    if stem is None:
        # A renamed archive: look for "<name>.manifest.json" beside it.
        return archive.with_name(archive.name + MANIFEST_SUFFIX)
    return archive.with_name(stem + MANIFEST_SUFFIX)


def detect_kind(path: Path) -> ArchiveKind:
    """The kind of an archive by its content; `BackupError` for anything that is not one."""
    if path.is_dir():
        toc = path / "toc.dat"
        if toc.is_file() and _head(toc, len(PGDMP_MAGIC)) == PGDMP_MAGIC:
            return ArchiveKind.DIRECTORY
        raise BackupError(f"{path} is a directory but not a pg_dump directory archive (no toc.dat)")
    head = _head(path, 8)
    if not head:
        raise BackupError(f"{path} is empty: not a backup archive")
    if head.startswith(PGDMP_MAGIC):
        return ArchiveKind.CUSTOM
    if head.startswith(ZSTD_MAGIC):
        return ArchiveKind.CUSTOM_ZSTD
    raise BackupError(
        f"{path} is not a pg_dump archive (it does not start with a pg_dump or zstd header)"
    )


def _head(path: Path, size: int) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(size)
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from exc


def archive_files(path: Path) -> list[Path]:
    """The files that make up an archive (one, or every file of a directory archive, sorted)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path]


def archive_size(path: Path) -> int:
    return sum(p.stat().st_size for p in archive_files(path))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def archive_sha256(path: Path) -> str:
    """sha256 of a file; for a directory archive, of the sorted ``name sha256`` lines of its files."""
    if not path.is_dir():
        return file_sha256(path)
    lines = "".join(
        f"{p.relative_to(path).as_posix()} {file_sha256(p)}\n" for p in archive_files(path)
    )
    return hashlib.sha256(lines.encode()).hexdigest()


def read_manifest(archive: Path) -> Manifest:
    path = manifest_path(archive)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BackupError(
            f"{archive} has no manifest ({path.name} is missing): its checksum and revision "
            "cannot be checked, so it is not used"
        ) from exc
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return Manifest.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise BackupError(f"{path} is not a valid backup manifest: {_first_error(exc)}") from exc


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(exc).splitlines()[0]


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary name, fsync, rename), mode 0600."""
    tmp = path.with_name(f"{TEMP_PREFIX}{os.getpid()}_{path.name}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_manifest(archive: Path, manifest: Manifest) -> None:
    write_private(manifest_path(archive), manifest.to_json().encode())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync a file, or every file and the directory of a directory archive."""
    for p in archive_files(path):
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    if path.is_dir():
        fsync_dir(path)


def ensure_backup_dir(path: Path) -> Path:
    """Create the backup directory (mode 0700) or fail with one clear line."""
    path = path.expanduser()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(
            f"cannot create the backup directory {path}: {exc.strerror}; set BACKUP_DIR to a "
            "writable place"
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise BackupError(f"the backup directory {path} is not writable; set BACKUP_DIR")
    check_backup_dir_owner(path)
    return path


def check_backup_dir_owner(path: Path) -> None:
    """Refuse a backup directory that someone else could write into.

    Whoever can write BACKUP_DIR can swap archives and manifests (an archive is only data to a
    restore, but a swapped one still replaces the catalog) or plant links; so it must belong to
    the running user and be writable by nobody else. Refused, not warned: a warning scrolls by.
    """
    info = path.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise BackupError(
            f"the backup directory {path} belongs to uid {info.st_uid}, not to this user "
            f"(uid {os.getuid()}); chown it to this user or set BACKUP_DIR"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise BackupError(
            f"the backup directory {path} is writable by its group or by everyone "
            f"(mode {stat.S_IMODE(info.st_mode):o}); run chmod go-w {path}"
        )


def iter_backups(backup_dir: Path) -> Iterator[tuple[str, Path | None, Path | None]]:
    """``(stem, archive or None, manifest or None)`` for every backup-like entry of the directory."""
    found: dict[str, dict[str, Path]] = {}
    try:
        entries = list(backup_dir.iterdir())
    except FileNotFoundError:
        return
    for entry in entries:
        stem = parse_stem(entry.name)
        if stem is None:
            continue
        slot = "manifest" if entry.name.endswith(MANIFEST_SUFFIX) else "archive"
        found.setdefault(stem, {})[slot] = entry
    for stem, parts in found.items():
        yield stem, parts.get("archive"), parts.get("manifest")


def remove_archive(path: Path) -> None:
    """Delete an archive (file or directory) without ever following a symbolic link.

    A link is removed as a link (never what it points at); a directory is removed by
    ``shutil.rmtree``, which unlinks links inside it instead of descending into them.
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def is_pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(backup_dir: Path, *, max_age_s: float = 86400.0) -> list[Path]:
    """Delete temporary files left by killed runs (their pid is gone, or they are a day old)."""
    removed: list[Path] = []
    now = datetime.now(UTC).timestamp()
    try:
        entries = list(backup_dir.iterdir())
    except FileNotFoundError:
        return removed
    pattern = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)_")
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None:
            continue
        try:
            info = entry.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode):
            # Never ours (we create plain files and directories): remove the link itself, never
            # what it points at.
            try:
                entry.unlink()
            except OSError:
                continue
            removed.append(entry)
            continue
        try:
            age = now - info.st_mtime
        except FileNotFoundError:
            continue
        if is_pid_alive(int(match.group(1))) and age < max_age_s:
            continue
        try:
            remove_archive(entry)
        except OSError:
            continue
        removed.append(entry)
    return removed


def manifest_dict(manifest: Manifest) -> dict[str, Any]:
    return manifest.model_dump(mode="json", by_alias=True)
