"""Checks an archive before anything touches a database.

A restore or verify first proves, without a connection, that the file exists, is a pg_dump
archive (by its bytes, then by ``pg_restore --list``), matches its manifest's size and sha256 (a
truncated or altered file does not), holds schema ``pokervod`` and nothing outside it, holds
nothing but table data and the objects our own migrations create (no foreign function, trigger,
event trigger, publication, database setting, …: `data_only_problem`), and is at a revision
this code knows. Any failure is one `BackupError` line and nothing has changed.
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
# pg_restore prints names unquoted, so a name with a space is ambiguous: every entry we accept must
# split into exactly the number of words its kind has, or it is refused (`"pokervod evil"`).
_TOC_LINE = re.compile(r"^(?P<id>\d+); (\d+) (\d+) (?P<tail>.*)$")

# Every entry kind pg_dump writes (longest first so "TABLE DATA" is not read as "TABLE").
_KNOWN_DESCS = sorted(
    [
        "ACCESS METHOD",
        "ACL",
        "AGGREGATE",
        "ATTRDEF",
        "BLOB",
        "BLOB METADATA",
        "BLOBS",
        "CAST",
        "CHECK CONSTRAINT",
        "COLLATION",
        "COMMENT",
        "CONSTRAINT",
        "CONVERSION",
        "DATABASE",
        "DATABASE PROPERTIES",
        "DEFAULT",
        "DEFAULT ACL",
        "DOMAIN",
        "ENCODING",
        "EVENT TRIGGER",
        "EXTENSION",
        "FK CONSTRAINT",
        "FOREIGN DATA WRAPPER",
        "FOREIGN SERVER",
        "FOREIGN TABLE",
        "FUNCTION",
        "INDEX",
        "INDEX ATTACH",
        "LARGE OBJECT",
        "MATERIALIZED VIEW",
        "MATERIALIZED VIEW DATA",
        "OPERATOR",
        "OPERATOR CLASS",
        "OPERATOR FAMILY",
        "POLICY",
        "PROCEDURE",
        "PROCEDURAL LANGUAGE",
        "PUBLICATION",
        "PUBLICATION TABLE",
        "PUBLICATION TABLES IN SCHEMA",
        "ROW SECURITY",
        "RULE",
        "SCHEMA",
        "SEARCHPATH",
        "SECURITY LABEL",
        "SEQUENCE",
        "SEQUENCE OWNED BY",
        "SEQUENCE SET",
        "SERVER",
        "STATISTICS",
        "STATISTICS DATA",
        "STDSTRINGS",
        "SUBSCRIPTION",
        "SUBSCRIPTION TABLE",
        "TABLE",
        "TABLE ATTACH",
        "TABLE DATA",
        "TEXT SEARCH CONFIGURATION",
        "TEXT SEARCH DICTIONARY",
        "TEXT SEARCH PARSER",
        "TEXT SEARCH TEMPLATE",
        "TRANSFORM",
        "TRIGGER",
        "TYPE",
        "USER MAPPING",
        "VIEW",
    ],
    key=len,
    reverse=True,
)

# Entries describing objects our migrations create: never executed (the restore builds the schema
# from the migrations), accepted so that a normal backup restores. Words after the kind:
# schema, name, owner (3) or schema, table, name, owner (4).
_SCHEMA_OBJECT_WORDS = {
    "TABLE": 3,
    "SEQUENCE": 3,
    "SEQUENCE OWNED BY": 3,
    "INDEX": 3,
    "DEFAULT": 4,
    "CONSTRAINT": 4,
    "FK CONSTRAINT": 4,
    "STATISTICS DATA": 3,
}
# The functions and triggers our migrations create: 001's `set_updated_at`, and the tag-link
# triggers of 005_tag_link_created_at ((table, trigger) pairs), the version triggers of
# 007_catalog_versions.
_OUR_FUNCTIONS = {
    "set_updated_at()",
    "hand_clip_tags_copy_clip()",
    "hand_clips_to_tag_links()",
    "tag_clip_counts_apply()",
    "catalog_versions_touch(uuid[])",
    "catalog_versions_projects()",
    "catalog_versions_seasons()",
    "catalog_versions_events()",
    "catalog_versions_episodes()",
    "catalog_versions_truncate()",
}
_OUR_TRIGGER = re.compile(r"^trg_(?P<table>[a-z_]+)_updated_at$")
_OUR_OTHER_TRIGGERS = {
    ("hand_clip_tags", "hand_clip_tags_copy_clip"),
    ("hand_clips", "hand_clips_to_tag_links"),
    ("hand_clip_tags", "tag_clip_counts_insert"),
    ("hand_clip_tags", "tag_clip_counts_delete"),
    ("hand_clip_tags", "tag_clip_counts_update"),
    ("projects", "catalog_versions_insert"),
    ("projects", "catalog_versions_update"),
    *(
        (table, f"catalog_versions_{event}")
        for table in ("seasons", "events", "episodes")
        for event in ("insert", "update", "delete", "truncate")
    ),
}


@dataclass(frozen=True)
class TocEntry:
    """One line of ``pg_restore --list``: its dump id, kind and the words that follow."""

    dump_id: int
    desc: str
    words: tuple[str, ...]
    line: str

    @property
    def schema(self) -> str:
        return self.words[0] if self.words else "-"

    def describe(self) -> str:
        shown = " ".join(self.words[:-1] if len(self.words) > 2 else self.words)  # less the owner
        return f"{self.desc} {shown}".strip()


@dataclass
class TocInfo:
    """What ``pg_restore --list`` says about an archive."""

    entries: list[TocEntry] = field(default_factory=list)
    header: dict[str, str] = field(default_factory=dict)

    @property
    def schemas(self) -> set[str]:
        named = {e.words[1] for e in self.entries if e.desc == "SCHEMA" and len(e.words) > 1}
        return named | {e.schema for e in self.entries if e.schema != "-"}

    @property
    def has_schema(self) -> bool:
        return any(e.desc == "SCHEMA" and e.words[:2] == ("-", SCHEMA) for e in self.entries)

    @property
    def data_tables(self) -> list[str]:
        return [e.words[1] for e in self.entries if e.desc == "TABLE DATA" and len(e.words) > 1]

    def data_entries(self) -> list[TocEntry]:
        """The entries a restore loads: rows of tables and values of sequences."""
        return [e for e in self.entries if e.desc in ("TABLE DATA", "SEQUENCE SET")]


def _parse_entry(line: str) -> TocEntry | None:
    match = _TOC_LINE.match(line)
    if match is None:
        return None
    tail = match["tail"]
    for desc in _KNOWN_DESCS:
        if tail == desc or tail.startswith(desc + " "):
            words = tuple(tail[len(desc) + 1 :].split(" ")) if tail != desc else ()
            return TocEntry(int(match["id"]), desc, words, line)
    desc = tail.split(" ", 1)[0]
    return TocEntry(int(match["id"]), desc, tuple(tail.split(" ")[1:]), line)


def known_tables() -> set[str]:
    """The tables whose rows a restore loads: those of the models, plus Alembic's version table."""
    from pokervod_db.models import Base

    return {t.name for t in Base.metadata.tables.values() if t.schema == SCHEMA} | {
        "alembic_version"
    }


def data_only_problem(toc: TocInfo) -> str | None:
    """Why the archive holds more than table data and our own objects, or None if it does not.

    Anything that could carry code or reach beyond schema ``pokervod`` (functions other than
    ours, triggers, rules, policies, event triggers, publications, roles, database settings,
    grants on other objects, other schemas, names that cannot be read exactly) is refused.
    """
    tables = known_tables()
    for e in toc.entries:
        w = e.words
        if e.desc == "SCHEMA":
            ok = w[:2] == ("-", SCHEMA) and len(w) == 3
        elif e.desc == "ACL":  # grants on our own schema or tables: never applied
            ok = (len(w) == 4 and w[:3] == ("-", "SCHEMA", SCHEMA)) or (
                len(w) == 4 and w[0] == SCHEMA and w[1] in ("TABLE", "SEQUENCE")
            )
        elif e.desc == "COMMENT":
            ok = len(w) >= 3 and w[0] == SCHEMA and w[1] in ("TABLE", "COLUMN", "INDEX")
        elif e.desc in _SCHEMA_OBJECT_WORDS:
            ok = len(w) == _SCHEMA_OBJECT_WORDS[e.desc] and w[0] == SCHEMA
        elif e.desc == "TABLE DATA":
            ok = len(w) == 3 and w[0] == SCHEMA and w[1] in tables
        elif e.desc == "SEQUENCE SET":
            ok = (
                len(w) == 3
                and w[0] == SCHEMA
                and re.fullmatch(r"[a-z_][a-z0-9_]*", w[1]) is not None
            )
        elif e.desc == "FUNCTION":
            ok = len(w) == 3 and w[0] == SCHEMA and w[1] in _OUR_FUNCTIONS
        elif e.desc == "TRIGGER":
            trigger = _OUR_TRIGGER.match(w[2]) if len(w) == 4 else None
            ok = (
                len(w) == 4
                and w[0] == SCHEMA
                and (
                    (trigger is not None and w[1] in tables and trigger["table"] == w[1])
                    or (w[1], w[2]) in _OUR_OTHER_TRIGGERS
                )
            )
        else:
            ok = False
        if not ok:
            return e.describe()
    return None


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
        entry = _parse_entry(line)
        if entry is not None:
            info.entries.append(entry)
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
    if any(e.desc.startswith(("BLOB", "LARGE OBJECT")) for e in toc.entries):
        raise BackupError(
            f"{path} contains large objects; only archives of schema {SCHEMA} are restored"
        )
    extra = data_only_problem(toc)
    if extra is not None:
        raise BackupError(
            f"{path} holds {extra}, which is not table data nor an object of our migrations; "
            "it is refused (a restore loads only the rows of pokervod's tables)"
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
