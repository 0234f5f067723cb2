"""Taking a backup: a consistent pg_dump of schema ``pokervod`` with a manifest beside it.

Under the maintenance lock (so no migration or restore runs meanwhile, and a migration's
exclusive lock never queues behind pg_dump's shared locks), a REPEATABLE READ transaction on our
own connection exports its snapshot; pg_dump dumps exactly that snapshot (``--snapshot``) while
the same connection counts and checksums every table in it. The manifest therefore describes
exactly what the archive holds, however many writers are busy.

The archive is written under a temporary name, fsync'd, read back with ``pg_restore --list``, and
only then renamed into place after its manifest (see `archive`).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from pokervod_db import embedded
from pokervod_db.backup.archive import (
    TEMP_PREFIX,
    ArchiveKind,
    Manifest,
    archive_sha256,
    archive_size,
    ensure_backup_dir,
    fsync_dir,
    fsync_tree,
    manifest_dict,
    manifest_path,
    parse_stem,
    remove_archive,
    remove_stale_temporaries,
    stem_for,
    write_manifest,
)
from pokervod_db.backup.checks import read_toc
from pokervod_db.backup.connection import locked_connection, server_info
from pokervod_db.backup.content import CHECKSUM_METHOD, schema_exists, summarize, table_list
from pokervod_db.backup.progress import Progress, ProgressFn, Throttle, report
from pokervod_db.backup.streams import compress_to_file
from pokervod_db.backup.tools import (
    PgTools,
    StderrReader,
    check_versions,
    find_tools,
    libpq_environment,
    spawn,
    stop,
)
from pokervod_db.errors import BackupError
from pokervod_db.settings import SCHEMA, Settings

FORMATS = ("custom", "directory")
_DEFAULT_ZSTD_LEVEL = 3


@dataclass(frozen=True)
class Compression:
    """How an archive is compressed: by us (zstd around a custom archive) or by pg_dump."""

    method: str
    level: int | None
    external: bool

    @property
    def label(self) -> str:
        return self.method if self.level is None else f"{self.method}:{self.level}"

    def pg_dump_arg(self) -> str:
        if self.external or self.method == "none":
            return "0"
        return self.label


def parse_compression(spec: str, fmt: str) -> tuple[ArchiveKind, Compression]:
    """``zstd[:N]``, ``gzip[:N]``, ``lz4[:N]`` or ``none`` for a ``custom`` or ``directory`` archive."""
    if fmt not in FORMATS:
        raise BackupError(f"unknown backup format {fmt!r}; use one of {', '.join(FORMATS)}")
    method, _, level_text = spec.strip().lower().partition(":")
    if method not in {"zstd", "gzip", "lz4", "none"}:
        raise BackupError(f"unknown compression {spec!r}; use zstd[:N], gzip[:N], lz4[:N] or none")
    level: int | None = None
    if level_text:
        try:
            level = int(level_text)
        except ValueError as exc:
            raise BackupError(f"compression level in {spec!r} is not a number") from exc
    if method == "none":
        level = None
    if fmt == "custom" and method == "zstd":
        return ArchiveKind.CUSTOM_ZSTD, Compression("zstd", level or _DEFAULT_ZSTD_LEVEL, True)
    kind = ArchiveKind.CUSTOM if fmt == "custom" else ArchiveKind.DIRECTORY
    return kind, Compression(method, level, False)


@dataclass
class BackupResult:
    """A finished backup: where it is and what it holds."""

    file: Path
    manifest_file: Path
    size_bytes: int
    sha256: str
    revision: str | None
    duration_s: float
    started_at: datetime
    kind: str
    compression: str
    row_counts: dict[str, int]
    tag: str | None = None
    s3_key: str | None = None
    removed_temporaries: list[str] = field(default_factory=list)

    @property
    def size_mb(self) -> float:
        return round(self.size_bytes / 1_000_000, 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "manifest": str(self.manifest_file),
            "size_bytes": self.size_bytes,
            "size_mb": self.size_mb,
            "sha256": self.sha256,
            "revision": self.revision,
            "duration_s": round(self.duration_s, 3),
            "started_at": self.started_at.isoformat(),
            "format": self.kind,
            "compression": self.compression,
            "row_counts": self.row_counts,
            "tag": self.tag,
            "s3_key": self.s3_key,
        }

    def event_payload(self) -> dict[str, Any]:
        """The ``db.backup.completed`` payload: where the archive is and what it holds (sizes
        in bytes, and in MB of 10**6 bytes as the PRD's ``size_mb``)."""
        return {
            "file": str(self.file),
            "size_mb": self.size_mb,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "revision": self.revision,
            "duration_s": round(self.duration_s, 3),
            "format": self.kind,
            "compression": self.compression,
            "tag": self.tag,
            "s3_key": self.s3_key,
        }


def create_backup(
    settings: Settings,
    *,
    backup_dir: Path | None = None,
    fmt: str = "custom",
    compression: str | None = None,
    jobs: int = 1,
    tag: str | None = None,
    checksums: bool = True,
    upload: bool = True,
    progress: ProgressFn | None = None,
) -> BackupResult:
    """Back up schema ``pokervod`` into ``backup_dir`` (default ``BACKUP_DIR``); see the module doc.

    ``compression`` defaults to ``BACKUP_COMPRESSION`` (zstd) for the custom format and to gzip
    for the directory format. When an S3 bucket is configured and ``upload`` is true, the archive
    and its manifest are copied there afterwards.
    """
    if compression is None:
        compression = settings.backup_compression if fmt == "custom" else "gzip"
    parse_compression(compression, fmt)  # fail on a typo before connecting
    if jobs < 1:
        raise BackupError(f"jobs must be at least 1, not {jobs}")
    if jobs > 1 and fmt != "directory":
        raise BackupError("parallel jobs need the directory format")
    if upload:
        from pokervod_db.backup import storage

        if storage.configured(settings):
            storage.require_boto3()  # before the dump: no archive made only to fail its upload
    settings = embedded.start(settings)
    tools = find_tools(settings)
    target = ensure_backup_dir(backup_dir or settings.backup_dir)
    with locked_connection(settings, purpose="the backup") as conn:
        result = backup_locked(
            settings,
            conn,
            tools=tools,
            backup_dir=target,
            fmt=fmt,
            compression=compression,
            jobs=jobs,
            tag=tag,
            checksums=checksums,
            progress=progress,
        )
    if upload:
        from pokervod_db.backup import storage

        if storage.configured(settings):
            result.s3_key = storage.upload(settings, result.file)
    return result


def backup_locked(  # noqa: C901 (being changed on other branches; split once they landed)
    settings: Settings,
    conn: Connection,
    *,
    tools: PgTools,
    backup_dir: Path,
    fmt: str = "custom",
    compression: str = "zstd",
    jobs: int = 1,
    tag: str | None = None,
    checksums: bool = True,
    progress: ProgressFn | None = None,
) -> BackupResult:
    """The backup itself, on a connection that already holds the maintenance lock.

    A restore calls this for its safety backup on its own locked connection (advisory locks are
    per session: taking the lock again on a second connection would wait for ourselves).
    """
    kind, comp = parse_compression(compression, fmt)
    info = server_info(conn)
    check_versions(tools, info.version_num)
    if not schema_exists(conn):
        raise BackupError(
            f"database {info.database} has no schema {SCHEMA}: nothing to back up "
            "(run `pokervod-db upgrade` first)"
        )
    removed = remove_stale_temporaries(backup_dir)
    started_at = datetime.now(UTC)
    t0 = time.monotonic()
    stem = stem_for(started_at)
    tmp = backup_dir / f"{TEMP_PREFIX}{os.getpid()}_{stem}{kind.suffix}"
    dump: subprocess.Popen[bytes] | None = None
    try:
        if conn.in_transaction():
            conn.commit()  # SET TRANSACTION must open the snapshot transaction
        # The snapshot the whole backup describes. READ ONLY: this transaction never writes.
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        snapshot = str(conn.execute(text("SELECT pg_export_snapshot()")).scalar_one())
        tables = table_list(conn)
        report(progress, Progress("dump", 0, len(tables)))

        env, conninfo = libpq_environment(
            settings, application_name="pokervod-db backup", server_version_num=info.version_num
        )
        argv = [
            tools.path("pg_dump"),
            "--dbname",
            conninfo,
            "--schema",
            SCHEMA,
            "--snapshot",
            snapshot,
            "--verbose",
            f"--lock-wait-timeout={max(1, settings.statement_lock_timeout_ms)}",
            "--compress",
            comp.pg_dump_arg(),
        ]
        if kind is ArchiveKind.DIRECTORY:
            argv += ["--format", "directory", "--jobs", str(jobs), "--file", str(tmp)]
        elif kind is ArchiveKind.CUSTOM:
            argv += ["--format", "custom", "--file", str(tmp)]
        else:
            argv += ["--format", "custom"]
        done = [0]
        written = [0]

        def on_line(line: str) -> None:
            if "dumping contents of table" in line:
                done[0] += 1
                report(progress, Progress("dump", done[0], len(tables), written[0]))

        throttle = Throttle()

        def on_bytes(n: int) -> None:
            written[0] = n
            if throttle.due():
                report(progress, Progress("dump", done[0], len(tables), n))

        stdout = subprocess.PIPE if kind is ArchiveKind.CUSTOM_ZSTD else subprocess.DEVNULL
        dump = spawn(argv, env=env, stdout=stdout, stderr=subprocess.PIPE)
        stderr = StderrReader(dump.stderr, on_line)
        pump = None
        if kind is ArchiveKind.CUSTOM_ZSTD:
            assert dump.stdout is not None
            pump = _Pump(dump.stdout, tmp, comp.level or _DEFAULT_ZSTD_LEVEL, on_bytes)
        # Meanwhile, in the same snapshot, measure what pg_dump is dumping.
        summary = summarize(conn, checksums=checksums)
        rc = dump.wait()
        stderr.join()
        if pump is not None:
            pump.join()
        conn.commit()  # ends the snapshot transaction; pg_dump is done with it
        if rc != 0 or stderr.has_errors():
            raise BackupError(f"pg_dump failed (exit {rc}): {stderr.summary()}")
        if pump is not None and pump.error is not None:
            raise BackupError(f"writing {tmp.name} failed: {pump.error}") from pump.error

        _make_private(tmp)
        fsync_tree(tmp)
        report(progress, Progress("check", len(tables), len(tables), written[0]))
        toc = read_toc(tools, tmp, kind)
        if not toc.has_schema or sorted(toc.data_tables) != sorted(summary.row_counts):
            raise BackupError(
                f"the archive read back from {tmp.name} does not list every table of {SCHEMA}; "
                "the backup was discarded"
            )
        if pump is not None:
            sha256, size = pump.sha256, pump.size
        else:
            sha256, size = archive_sha256(tmp), archive_size(tmp)
        manifest = Manifest(
            archive="",
            kind=kind,
            compression=comp.label,
            sha256=sha256,
            size_bytes=size,
            started_at=started_at,
            duration_s=0.0,
            database=info.database,
            schema_name=SCHEMA,
            server_version=info.version,
            server_version_num=info.version_num,
            pg_dump_version=tools.version,
            revision=summary.revision,
            row_counts=summary.row_counts,
            checksums=summary.checksums,
            checksum_method=CHECKSUM_METHOD if checksums else "none",
            objects=summary.objects,
            tag=tag,
        )
        final = _place(tmp, backup_dir, started_at, kind, manifest, t0)
    except BaseException as exc:
        stop(dump)
        if conn.in_transaction():
            conn.rollback()
        remove_archive(tmp)
        if isinstance(exc, OSError):  # a full disk, a quota, a file size limit …
            raise BackupError(
                f"writing the backup into {backup_dir} failed: {exc.strerror or exc}; "
                "nothing was kept (free some space and run it again)"
            ) from exc
        raise
    manifest = Manifest.model_validate(manifest_dict(manifest) | {"archive": final.name})
    return BackupResult(
        file=final,
        manifest_file=manifest_path(final),
        size_bytes=manifest.size_bytes,
        sha256=manifest.sha256,
        revision=manifest.revision,
        duration_s=manifest.duration_s,
        started_at=started_at,
        kind=kind.value,
        compression=comp.label,
        row_counts=manifest.row_counts,
        tag=tag,
        removed_temporaries=[p.name for p in removed],
    )


def _place(
    tmp: Path,
    backup_dir: Path,
    started_at: datetime,
    kind: ArchiveKind,
    manifest: Manifest,
    t0: float,
) -> Path:
    """Write the manifest, then rename the archive to the first free name (never overwriting)."""
    for attempt in range(100):
        stem = stem_for(started_at, attempt)
        final = backup_dir / f"{stem}{kind.suffix}"
        if any(parse_stem(p.name) == stem for p in backup_dir.iterdir()):
            continue
        manifest.archive = final.name
        manifest.duration_s = round(time.monotonic() - t0, 3)
        write_manifest(final, manifest)
        try:
            if kind is ArchiveKind.DIRECTORY:
                os.rename(tmp, final)
            else:
                os.link(tmp, final)  # fails instead of replacing a file that appeared meanwhile
                tmp.unlink()
        except FileExistsError:
            manifest_path(final).unlink(missing_ok=True)
            continue
        except BaseException:
            manifest_path(final).unlink(missing_ok=True)
            raise
        fsync_dir(backup_dir)
        return final
    raise BackupError(f"no free backup file name in {backup_dir} for {started_at:%Y%m%d_%H%M%S}")


def _make_private(path: Path) -> None:
    if path.is_dir():
        path.chmod(0o700)
        for p in path.rglob("*"):
            p.chmod(0o700 if p.is_dir() else 0o600)
    else:
        path.chmod(0o600)


class _Pump:
    """Compresses pg_dump's stdout into the temporary archive in a thread."""

    def __init__(self, source: Any, dest: Path, level: int, on_bytes: Any) -> None:
        self.error: BaseException | None = None
        self.sha256 = ""
        self.size = 0
        self._args = (source, dest, level, on_bytes)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        source, dest, level, on_bytes = self._args
        try:
            self.sha256, self.size = compress_to_file(source, dest, level=level, on_bytes=on_bytes)
        except BaseException as exc:
            self.error = exc
            # Keep draining so pg_dump is not blocked on a full pipe; it will be reported.
            try:
                while source.read(1 << 20):
                    pass
            except (OSError, ValueError):
                pass

    def join(self) -> None:
        self._thread.join()
