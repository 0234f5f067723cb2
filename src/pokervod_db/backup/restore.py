"""Restoring a backup over the live schema: checked first, atomic, with a safety backup.

Order: check the archive without a connection (`checks`), take the maintenance lock, take a
safety backup of the current data, then load the archive in one transaction that renames the old
schema aside (`load`). After the commit the old schema is dropped in a separate, short
transaction with a lock timeout: dropping it inside the restore transaction would make the
commit wait for every reader still holding a table of the old schema, and while it waited every
new reader would queue behind it. If a long reader makes the drop time out, the old schema stays
(named ``pokervod_old_…``, invisible to the application) and the next restore drops it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from pokervod_db import embedded, events
from pokervod_db.backup.archive import ensure_backup_dir
from pokervod_db.backup.checks import ArchiveCheck, check_source_version, inspect_archive
from pokervod_db.backup.connection import locked_connection, server_info
from pokervod_db.backup.content import quote_ident, quote_literal, schema_exists, summarize
from pokervod_db.backup.create import BackupResult, backup_locked
from pokervod_db.backup.load import load_archive
from pokervod_db.backup.progress import Progress, ProgressFn, report
from pokervod_db.backup.tools import check_versions, find_tools
from pokervod_db.errors import BackupError
from pokervod_db.settings import SCHEMA, Settings

log = logging.getLogger("pokervod_db.backup")

OLD_SCHEMA_PREFIX = f"{SCHEMA}_old_"


@dataclass
class RestoreResult:
    """A finished restore: what is in the database now and what was kept aside."""

    file: Path
    revision: str | None
    head_revision: str
    row_counts: dict[str, int]
    duration_s: float
    safety_backup: BackupResult | None
    old_schema: str | None
    old_schema_dropped: bool
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def upgrade_needed(self) -> bool:
        return self.revision != self.head_revision

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "revision": self.revision,
            "head_revision": self.head_revision,
            "upgrade_needed": self.upgrade_needed,
            "row_counts": self.row_counts,
            "duration_s": round(self.duration_s, 3),
            "safety_backup": str(self.safety_backup.file) if self.safety_backup else None,
            "old_schema": self.old_schema,
            "old_schema_dropped": self.old_schema_dropped,
            "phases": self.phases,
        }

    def event_payload(self) -> dict[str, Any]:
        """The ``db.restore.completed`` payload: what the database holds now, and where the
        data it replaced went (``safety_backup``)."""
        return {
            "file": str(self.file),
            "revision": self.revision,
            "row_counts": self.row_counts,
            "duration_s": round(self.duration_s, 3),
            "upgrade_needed": self.upgrade_needed,
            "safety_backup": str(self.safety_backup.file) if self.safety_backup else None,
        }


def check_archive(settings: Settings, archive: Path) -> ArchiveCheck:
    """Every check of `restore_backup` that needs no database (used by the CLI before asking)."""
    return inspect_archive(find_tools(settings), archive)


def restore_backup(
    settings: Settings,
    *,
    archive: Path,
    safety_backup: bool = True,
    progress: ProgressFn | None = None,
) -> RestoreResult:
    """Replace schema ``pokervod`` with the archive's content, or change nothing at all."""
    from pokervod_db import migrate

    t0 = time.monotonic()
    tools = find_tools(settings)
    check = inspect_archive(tools, archive)
    settings = embedded.start(settings)
    backup_dir = ensure_backup_dir(settings.backup_dir) if safety_backup else None
    with locked_connection(settings, purpose="the restore") as conn:
        info = server_info(conn)
        check_versions(tools, info.version_num)
        check_source_version(check, info.version_num)
        drop_old_schemas(conn, settings)
        exists = schema_exists(conn)
        last_event = _last_event_id(conn) if exists else 0
        conn.commit()
        safety: BackupResult | None = None
        if safety_backup and exists:
            assert backup_dir is not None

            def safety_progress(p: Progress) -> None:
                report(progress, Progress(f"safety backup: {p.phase}", *_numbers(p)))

            safety = backup_locked(
                settings,
                conn,
                tools=tools,
                backup_dir=backup_dir,
                compression=settings.backup_compression,
                tag="pre-restore",
                progress=safety_progress,
            )
        old = None
        if exists:
            old = f"{OLD_SCHEMA_PREFIX}{datetime.now(UTC):%Y%m%d_%H%M%S}_{os.getpid()}"
        phases = load_archive(
            settings,
            tools,
            check,
            server_version_num=info.version_num,
            move_existing_to=old,
            phase="restore",
            progress=progress,
            extra_sql=_keep_event_ids_sql(check, last_event),
        )
        report(progress, Progress("restore: committed"))
        if "agent_events" in check.manifest.row_counts:
            events.keep_event_ids_after(conn, last_event)  # the documented contract of events
            conn.commit()
        dropped = _drop_schema(conn, old, settings) if old is not None else False
        summary = summarize(conn, checksums=False)
        conn.commit()
    if summary.row_counts != check.manifest.row_counts:  # checked before COMMIT; belt and braces
        raise BackupError(
            "the restore committed but the row counts differ from the manifest: "
            f"{summary.row_counts} != {check.manifest.row_counts}"
        )
    return RestoreResult(
        file=check.path,
        revision=summary.revision,
        head_revision=migrate.head_revision(),
        row_counts=summary.row_counts,
        duration_s=time.monotonic() - t0,
        safety_backup=safety,
        old_schema=old,
        old_schema_dropped=dropped,
        phases=phases,
    )


def _last_event_id(conn: Connection) -> int:
    """The last event id drawn before the restore (0 below revision 003, without the table)."""
    try:
        with conn.begin_nested():
            return events.last_event_id(conn)
    except DBAPIError:
        return 0


def _keep_event_ids_sql(check: ArchiveCheck, last_event: int) -> str:
    """Inside the restore transaction: new event ids continue above those listeners have seen.

    The restore brings back the backup's identity sequence; without this, events emitted right
    after the commit would reuse ids that listeners already passed (see `events`).
    """
    if "agent_events" not in check.manifest.row_counts:
        return ""
    table = f"{quote_ident(SCHEMA)}.agent_events"
    sequence = f"pg_get_serial_sequence({quote_literal(table)}, 'id')"
    return (
        f"SELECT setval({sequence}, greatest({int(last_event)}, "
        f"coalesce(pg_sequence_last_value({sequence}::regclass), 0), "
        f"(SELECT coalesce(max(id), 0) FROM {table}), 1));\n"
    )


def _numbers(p: Progress) -> tuple[int, int, int, int | None]:
    return p.tables_done, p.tables_total, p.bytes_done, p.bytes_total


def drop_old_schemas(conn: Connection, settings: Settings) -> list[str]:
    """Drop schemas left aside by earlier restores (those whose drop timed out or was killed)."""
    names = conn.execute(
        text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p ORDER BY nspname"),
        {"p": OLD_SCHEMA_PREFIX.replace("_", r"\_") + "%"},
    ).scalars()
    leftovers = [str(n) for n in names]
    conn.commit()
    return [name for name in leftovers if _drop_schema(conn, name, settings)]


def _drop_schema(conn: Connection, name: str, settings: Settings) -> bool:
    """``DROP SCHEMA … CASCADE`` waiting at most ``DB_LOCK_TIMEOUT_MS`` for readers; False if not."""
    try:
        if conn.in_transaction():
            conn.commit()
        conn.execute(text(f"SET LOCAL lock_timeout = {max(1, settings.statement_lock_timeout_ms)}"))
        conn.execute(text(f"DROP SCHEMA IF EXISTS {quote_ident(name)} CASCADE"))
        conn.commit()
    except DBAPIError as exc:
        conn.rollback()
        log.warning("schema %s kept (a reader still uses it): %s", name, exc.orig)
        return False
    return True
