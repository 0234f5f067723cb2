"""Verifying a backup by restoring it: the only proof that an archive really restores.

The archive is loaded into a scratch database (``pokervod_verify_…``, dropped afterwards) through
exactly the path a real restore takes, then every table's row count and content checksum is
compared with the manifest. The outcome is written into the manifest (``verification``), so
`backup list` and the health report can tell verified backups from unproven ones.

A verify does not take the maintenance lock: it never touches schema ``pokervod`` of the live
database, and a long verify should not hold migrations back.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from pokervod_db import embedded
from pokervod_db.backup.archive import Verification, write_manifest
from pokervod_db.backup.checks import ArchiveCheck, check_source_version, inspect_archive
from pokervod_db.backup.connection import maintenance_connection, server_info
from pokervod_db.backup.content import ContentSummary, quote_ident, summarize
from pokervod_db.backup.load import load_archive
from pokervod_db.backup.progress import Progress, ProgressFn, report
from pokervod_db.backup.tools import check_versions, find_tools
from pokervod_db.errors import BackupError, PokervodDBError
from pokervod_db.settings import Settings

SCRATCH_PREFIX = "pokervod_verify_"


@dataclass
class VerifyResult:
    file: Path
    ok: bool
    duration_s: float
    verified_at: datetime
    revision: str | None
    row_counts: dict[str, int]
    mismatches: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "ok": self.ok,
            "duration_s": round(self.duration_s, 3),
            "verified_at": self.verified_at.isoformat(),
            "revision": self.revision,
            "row_counts": self.row_counts,
            "mismatches": self.mismatches,
        }


def verify_backup(
    settings: Settings,
    archive: Path,
    *,
    progress: ProgressFn | None = None,
    record: bool = True,
) -> VerifyResult:
    """Restore ``archive`` into a scratch database and compare it with its manifest.

    Returns the result when every count and checksum matches; raises `BackupError` otherwise
    (after recording the failure in the manifest).
    """
    t0 = time.monotonic()
    tools = find_tools(settings)
    check = inspect_archive(tools, archive)
    settings = embedded.start(settings)
    with maintenance_connection(settings, application_name="pokervod-db verify") as admin:
        admin = admin.execution_options(isolation_level="AUTOCOMMIT")
        info = server_info(admin)
        check_versions(tools, info.version_num)
        check_source_version(check, info.version_num)
        drop_abandoned_scratch_databases(admin)
        scratch = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
        _create_database(admin, scratch)
        try:
            summary, error = _load_and_measure(settings, check, scratch, info.version_num, progress)
        finally:
            _drop_database(admin, scratch, force=info.version_num >= 130000)
    mismatches = [error] if error else compare(check, summary)
    duration = time.monotonic() - t0
    verified_at = datetime.now(UTC)
    ok = not mismatches
    if record:
        check.manifest.verification = Verification(
            verified_at=verified_at,
            ok=ok,
            detail="all row counts and checksums match" if ok else "; ".join(mismatches)[:2000],
            duration_s=round(duration, 3),
            server_version=info.version,
        )
        try:
            write_manifest(check.path, check.manifest)
        except OSError as exc:
            raise BackupError(
                f"the verification of {check.path.name} ({'ok' if ok else 'failed'}) could not be "
                f"recorded in its manifest: {exc.strerror or exc}; the manifest is unchanged"
            ) from exc
    if not ok:
        raise BackupError(f"verification of {check.path.name} failed: {'; '.join(mismatches[:3])}")
    report(progress, Progress("verified"))
    return VerifyResult(
        file=check.path,
        ok=True,
        duration_s=duration,
        verified_at=verified_at,
        revision=summary.revision if summary else None,
        row_counts=summary.row_counts if summary else {},
    )


def _load_and_measure(
    settings: Settings,
    check: ArchiveCheck,
    scratch: str,
    server_version_num: int,
    progress: ProgressFn | None,
) -> tuple[ContentSummary | None, str | None]:
    scratch_settings = settings.with_url(settings.url().set(database=scratch))
    # Our own connection stays open for the whole verify: a scratch database with no connection
    # is one whose verify died, and the next verify drops it.
    with maintenance_connection(scratch_settings, application_name="pokervod-db verify") as conn:
        try:
            load_archive(
                settings,
                find_tools(settings),
                check,
                server_version_num=server_version_num,
                database=scratch,
                phase="verify",
                progress=progress,
            )
        except BackupError as exc:
            return None, str(exc)
        report(progress, Progress("verify: checksums"))
        with_checksums = check.manifest.checksum_method != "none"
        summary = summarize(conn, checksums=with_checksums)
        conn.rollback()
    return summary, None


def compare(check: ArchiveCheck, summary: ContentSummary | None) -> list[str]:
    """Human lines for every difference between the restored content and the manifest."""
    if summary is None:
        return ["nothing was restored"]
    manifest = check.manifest
    problems: list[str] = []
    for table in sorted(set(manifest.row_counts) | set(summary.row_counts)):
        want, got = manifest.row_counts.get(table), summary.row_counts.get(table)
        if want != got:
            problems.append(f"table {table}: {got} rows restored, manifest says {want}")
        elif manifest.checksums and manifest.checksums.get(table) != summary.checksums.get(table):
            problems.append(f"table {table}: content checksum differs from the manifest")
    for name, want_n in sorted(manifest.objects.items()):
        got_n = summary.objects.get(name)
        if got_n != want_n:
            problems.append(f"{got_n} {name} restored, manifest says {want_n}")
    if summary.revision != manifest.revision:
        problems.append(f"revision {summary.revision} restored, manifest says {manifest.revision}")
    return problems


def _create_database(admin: Connection, name: str) -> None:
    try:
        admin.execute(text(f"CREATE DATABASE {quote_ident(name)} TEMPLATE template0"))
    except DBAPIError as exc:
        raise BackupError(
            f"cannot create the scratch database {name} for the verification: "
            f"{str(exc.orig).splitlines()[0]} (the database user needs CREATEDB)"
        ) from exc


def _drop_database(admin: Connection, name: str, *, force: bool) -> None:
    suffix = " WITH (FORCE)" if force else ""
    try:
        admin.execute(text(f"DROP DATABASE IF EXISTS {quote_ident(name)}{suffix}"))
    except DBAPIError as exc:
        raise PokervodDBError(
            f"the scratch database {name} could not be dropped: {str(exc.orig).splitlines()[0]}; "
            "the next verify drops it"
        ) from exc


def drop_abandoned_scratch_databases(admin: Connection) -> list[str]:
    """Drop scratch databases of verifies that died (no session is connected to them)."""
    names = admin.execute(
        text(
            "SELECT d.datname FROM pg_database d WHERE d.datname LIKE :p AND NOT EXISTS "
            "(SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)"
        ),
        {"p": SCRATCH_PREFIX.replace("_", r"\_") + "%"},
    ).scalars()
    dropped = []
    for name in list(names):
        try:
            # Without FORCE: a verify that connected a moment ago makes this fail, and we skip.
            admin.execute(text(f"DROP DATABASE IF EXISTS {quote_ident(str(name))}"))
        except DBAPIError:
            continue
        dropped.append(str(name))
    return dropped
