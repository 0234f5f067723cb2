"""Continuous WAL archiving of the embedded server (``BACKUP_WAL=true``).

The server archives each completed WAL segment into ``BACKUP_DIR/wal`` with PostgreSQL's own
``basic_archive`` module (it copies through a temporary file, fsyncs, and refuses to overwrite a
different file of the same name). ``archive_timeout`` (``WAL_ARCHIVE_TIMEOUT_S``, 60 s by
default) switches to a new segment at least that often when anything was written, so a lost
disk loses at most about that many seconds of commits. ``summarize_wal`` is turned on as well:
PostgreSQL 17+ needs the WAL summaries for incremental base backups.

For an external server, see docs/replicas-and-pitr.md (``pg_receivewal`` or its own archiving).
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pokervod_db.errors import ConfigurationError, DatabaseUnavailableError
from pokervod_db.settings import Settings

log = logging.getLogger(__name__)

ARCHIVE_SUBDIR = "wal"


def archive_dir(settings: Settings) -> Path:
    """Where the archived WAL segments go: ``BACKUP_DIR/wal``."""
    path = (settings.backup_dir.expanduser().resolve() / ARCHIVE_SUBDIR).resolve()
    # The path ends up in a server setting and in restore_command (a shell command with %
    # placeholders): refuse what could be read as a placeholder or break the quoting.
    if any(ch in str(path) for ch in "%\n\r\0"):
        raise ConfigurationError(
            f"BACKUP_DIR {settings.backup_dir} contains %, a newline or NUL; "
            "choose a plain path for WAL archiving"
        )
    return path


def restore_command(settings: Settings) -> str:
    """The ``restore_command`` that reads segments back from the archive."""
    return f"cp {shlex.quote(str(archive_dir(settings)))}/%f %p"


def wanted_settings(settings: Settings) -> dict[str, str]:
    """Server settings that make the embedded server archive into `archive_dir`."""
    return {
        "archive_mode": "on",
        "archive_library": "basic_archive",
        "basic_archive.archive_directory": str(archive_dir(settings)),
        "archive_timeout": f"{settings.wal_archive_timeout_s}s",
        "summarize_wal": "on",
    }


def _current(conn: psycopg.Connection[Any], name: str) -> str | None:
    row = conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone()
    return None if row is None else row[0]


def configure_archiving(server: Any, data_dir: Path, settings: Settings) -> None:
    """Turn WAL archiving on for the embedded server (restarting it if archive_mode changes).

    Called by `pokervod_db.embedded.start` when ``BACKUP_WAL=true``; a no-op when the server
    already archives into the right place.
    """
    from pokervod_db import embedded
    from pokervod_db.replicas import give_to_server

    target = archive_dir(settings)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create the WAL archive {target}: {exc.strerror}") from exc
    give_to_server(target)
    wanted = wanted_settings(settings)
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        # archive_timeout is reported in seconds without its unit.
        have = {name: _current(conn, name) for name in wanted}
        have_timeout = have["archive_timeout"]
        if have_timeout is not None and have_timeout.isdigit():
            have["archive_timeout"] = f"{have_timeout}s"
        changed = {k: v for k, v in wanted.items() if have.get(k) != v}
        if not changed:
            return
        for name, value in changed.items():
            conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(
                    sql.Identifier(*name.split(".")), sql.Literal(value)
                )
            )
        needs_restart = "archive_mode" in changed or "archive_library" in changed
        if not needs_restart:
            conn.execute("SELECT pg_reload_conf()")
            return
    log.info("restarting the embedded server to start WAL archiving into %s", target)
    try:
        embedded._pg_ctl(
            ["-w", "-m", "fast", "-l", str(data_dir / "log"), "restart"],
            pgdata=data_dir,
            user=server.system_user,
            timeout=120,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        raise DatabaseUnavailableError(
            f"the embedded server in {data_dir} did not restart with WAL archiving; "
            f"see {data_dir / 'log'}"
        ) from exc
    server.ensure_postgres_running()
