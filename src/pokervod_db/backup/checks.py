"""Checks an archive before anything touches a database.

A restore or verify first proves, without a connection, that the file exists, is a pg_dump
archive (by its bytes, then by ``pg_restore --list``), matches its manifest's size and sha256 (a
truncated or altered file does not), holds schema ``pokervod`` and nothing outside it, and is at
a revision this code knows. Any failure is one `BackupError` line and nothing has changed.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pokervod_db.backup.archive import (
    ArchiveKind,
    Manifest,
    archive_sha256,
    archive_size,
    detect_kind,
    read_manifest,
)
from pokervod_db.backup.streams import Feeder
from pokervod_db.backup.tools import PgTools, StderrReader, spawn, stop
from pokervod_db.errors import BackupError
from pokervod_db.settings import SCHEMA

# "123; 2615 16429 SCHEMA - pokervod postgres" / "240; 0 16790 TABLE DATA pokervod projects postgres"
_TOC_LINE = re.compile(r"^(\d+); (\d+) (\d+) (?P<desc>[A-Z][A-Z ]*) (?P<schema>\S+) (?P<rest>.*)$")


@dataclass
class TocInfo:
    """What ``pg_restore --list`` says about an archive."""

    entries: list[tuple[str, str, str]] = field(default_factory=list)  # (desc, schema, rest)
    header: dict[str, str] = field(default_factory=dict)

    @property
    def schemas(self) -> set[str]:
        named = {rest.split()[0] for desc, schema, rest in self.entries if desc == "SCHEMA"}
        return named | {s for _, s, _ in self.entries if s != "-"}

    @property
    def has_schema(self) -> bool:
        return any(
            desc == "SCHEMA" and rest.split()[:1] == [SCHEMA] for desc, _, rest in self.entries
        )

    @property
    def data_tables(self) -> list[str]:
        return [rest.split()[0] for desc, _, rest in self.entries if desc == "TABLE DATA"]


def read_toc(tools: PgTools, path: Path, kind: ArchiveKind) -> TocInfo:
    """Run ``pg_restore --list`` on the archive (decompressing a zstd one on the fly)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    argv = [tools.path("pg_restore"), "--list"]
    if kind is ArchiveKind.DIRECTORY:
        argv += ["-Fd", str(path)]
        stdin = None
    else:
        argv += ["-Fc"]
        stdin = subprocess.PIPE
    proc = spawn(argv, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    errors = StderrReader(proc.stderr)
    feeder = Feeder(path, kind, proc.stdin) if proc.stdin is not None else None
    try:
        assert proc.stdout is not None
        out = proc.stdout.read().decode("utf-8", errors="replace")
        rc = proc.wait()
    finally:
        stop(proc)
        if feeder is not None:
            feeder.join()
        errors.join()
    if feeder is not None and feeder.error is not None:
        raise BackupError(f"{path} cannot be read: {_describe(feeder.error)}") from feeder.error
    if rc != 0 or errors.has_errors():
        raise BackupError(f"{path} is not a readable pg_dump archive: {errors.summary()}")
    info = TocInfo()
    for line in out.splitlines():
        if line.startswith(";"):
            key, _, value = line[1:].strip().partition(":")
            if value:
                info.header[key.strip()] = value.strip()
            continue
        match = _TOC_LINE.match(line)
        if match:
            info.entries.append((match["desc"], match["schema"], match["rest"]))
    if not info.entries:
        raise BackupError(f"{path} is a pg_dump archive with no entries: not a backup of {SCHEMA}")
    return info


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass(frozen=True)
class ArchiveCheck:
    """An archive that passed every check, with what was learned on the way."""

    path: Path
    kind: ArchiveKind
    manifest: Manifest
    toc: TocInfo


def inspect_archive(tools: PgTools, archive: Path) -> ArchiveCheck:
    """All checks that need no database; raises `BackupError` with one clear line."""
    path = Path(archive).expanduser()
    if not path.exists():
        raise BackupError(f"backup file {path} does not exist")
    kind = detect_kind(path)
    manifest = read_manifest(path)
    if manifest.kind is not kind:
        raise BackupError(
            f"{path} is a {kind.value} archive but its manifest describes a {manifest.kind.value} "
            "archive; the manifest belongs to another file"
        )
    size = archive_size(path)
    if size != manifest.size_bytes:
        raise BackupError(
            f"{path} has {size:,} bytes but its manifest says {manifest.size_bytes:,}: the file is "
            "truncated or was changed; use another backup"
        )
    digest = archive_sha256(path)
    if digest != manifest.sha256:
        raise BackupError(
            f"{path} does not match its manifest's sha256 (file {digest[:12]}…, manifest "
            f"{manifest.sha256[:12]}…): the file is corrupt or was changed; use another backup"
        )
    toc = read_toc(tools, path, kind)
    if not toc.has_schema:
        found = ", ".join(sorted(toc.schemas)) or "no schema"
        raise BackupError(f"{path} does not contain schema {SCHEMA} (it holds {found})")
    foreign = sorted(toc.schemas - {SCHEMA})
    if foreign:
        raise BackupError(
            f"{path} also contains objects outside schema {SCHEMA} ({', '.join(foreign)}); "
            "only archives made by `pokervod-db backup` are restored"
        )
    if any(desc.startswith(("BLOB", "LARGE OBJECT")) for desc, _, _ in toc.entries):
        raise BackupError(
            f"{path} contains large objects; only archives of schema {SCHEMA} are restored"
        )
    _check_revision(path, manifest.revision)
    return ArchiveCheck(path=path, kind=kind, manifest=manifest, toc=toc)


def _check_revision(path: Path, revision: str | None) -> None:
    from alembic.util.exc import CommandError

    from pokervod_db import migrate

    if revision is None:
        raise BackupError(
            f"{path} has no Alembic revision: it is not a backup of a migrated database"
        )
    try:
        known = migrate.script_directory().get_revision(revision)
    except CommandError as exc:
        known = None
        cause: BaseException | None = exc
    else:
        cause = None
    if known is None:
        raise BackupError(
            f"{path} is at revision {revision}, which this version of pokervod-db does not know; "
            "restore it with the pokervod-db version that made it"
        ) from cause


def check_source_version(check: ArchiveCheck, server_version_num: int) -> None:
    """Refuse an archive from a newer PostgreSQL major than the target server (it would fail)."""
    source, target = check.manifest.server_version_num // 10000, server_version_num // 10000
    if source > target:
        raise BackupError(
            f"{check.path.name} was taken from PostgreSQL {source}; it cannot be restored into "
            f"PostgreSQL {target} (restore into a server of version {source} or newer)"
        )
