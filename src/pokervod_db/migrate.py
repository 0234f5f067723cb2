"""Migration operations: upgrade, downgrade, current, history, revision and drift check.

Plain functions whose first argument is the settings, as Alembic's own command module does; the
CLI and the agent call them. They run Alembic with the migration scripts shipped inside this
package (``pokervod_db:migrations``), so they work from any directory.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy import Connection, DefaultClause, TextClause, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

from pokervod_db import embedded
from pokervod_db.database import maintenance_connection
from pokervod_db.errors import (
    DatabaseUnavailableError,
    IntegrityViolationError,
    MigrationError,
    PokervodDBError,
    translate,
)
from pokervod_db.models import Base
from pokervod_db.models.base import STORAGE_PARAMETERS
from pokervod_db.settings import SCHEMA, Settings

SCRIPT_LOCATION = "pokervod_db:migrations"
VERSION_TABLE = "alembic_version"


def alembic_config(settings: Settings | None = None, *, stdout: Any = None) -> Config:
    """An Alembic `Config` that needs no ini file; the settings travel in ``attributes``."""
    # quiet: Alembic's own "Generating … done" chatter; callers report what happened themselves.
    opts = argparse.Namespace(quiet=True, x=None)
    cfg = Config(stdout=stdout, cmd_opts=opts) if stdout is not None else Config(cmd_opts=opts)
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    # Revision ids carry their slug (005_<slug>, see next_revision_id): the file is the id.
    cfg.set_main_option("file_template", "%%(rev)s")
    if settings is not None:
        cfg.attributes["settings"] = settings
    return cfg


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    if type_ == "schema":
        return name == SCHEMA
    return True


def configure_context(ctx: Any, connection: Connection, **extra: Any) -> None:
    """Configure an Alembic environment context the same way for migrations and drift checks."""
    ctx.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_schemas=True,
        include_name=_include_name,
        version_table_schema=SCHEMA,
        compare_type=True,
        compare_server_default=True,
        **extra,
    )


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    heads = script_directory().get_heads()
    if len(heads) != 1:
        raise MigrationError(f"the migration scripts have {len(heads)} heads ({heads}); merge them")
    return heads[0]


@dataclass
class RevisionInfo:
    revision: str
    down_revision: str | None
    doc: str


def history() -> list[RevisionInfo]:
    """All revisions, oldest first."""
    revs = list(script_directory().walk_revisions())
    revs.reverse()
    return [
        RevisionInfo(
            revision=r.revision,
            down_revision=r.down_revision if isinstance(r.down_revision, str) else None,
            doc=r.doc or "",
        )
        for r in revs
    ]


def current(settings: Settings) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with maintenance_connection(embedded.start(settings)) as conn:
        return current_on(conn)


def current_on(conn: Connection) -> str | None:
    ctx = MigrationContext.configure(conn, opts={"version_table_schema": SCHEMA})
    heads = ctx.get_current_heads()
    return heads[0] if heads else None


def pending_revisions(current_rev: str | None) -> list[str]:
    """Revisions between ``current_rev`` and head, in the order they would be applied."""
    script = script_directory()
    target = head_revision()
    if current_rev == target:
        return []
    try:
        revs = list(script.iterate_revisions(target, current_rev or "base"))
    except (CommandError, RevisionError) as exc:
        raise MigrationError(f"unknown revision {current_rev!r}: {exc}") from exc
    revs.reverse()
    return [r.revision for r in revs]


MIGRATION_REPORT = "pokervod_migration_report"
"""Key of the `MigrationReport` that env.py leaves in ``config.attributes``."""


@dataclass
class MigrationReport:
    """What env.py saw and did while it held the lock (filled in by env.py)."""

    from_revision: str | None = None
    to_revision: str | None = None
    applied: list[str] = field(default_factory=list)


def _run_command(fn: Any, settings: Settings, *args: Any, **kwargs: Any) -> MigrationReport:
    cfg = alembic_config(settings)
    try:
        fn(cfg, *args, **kwargs)
    except CommandError as exc:
        raise MigrationError(f"migration failed: {exc}") from exc
    except PokervodDBError as exc:
        # A statement of a migration failed (the maintenance connection translated it): its
        # transaction rolled back, so say that nothing changed. Our own errors (lock held,
        # server unreachable, bad settings) pass as they are.
        statement_failed = type(exc) is PokervodDBError or isinstance(exc, IntegrityViolationError)
        if statement_failed and isinstance(exc.__cause__, DBAPIError):
            raise MigrationError(
                f"migration failed, nothing was changed: {exc}", reason=exc.reason
            ) from exc
        raise
    except DBAPIError as exc:
        error = translate(exc)
        if isinstance(error, DatabaseUnavailableError):
            raise error from exc
        raise MigrationError(
            f"migration failed, nothing was changed: {error}", reason=error.reason
        ) from exc
    report = cfg.attributes.get(MIGRATION_REPORT)
    if not isinstance(report, MigrationReport):
        raise MigrationError("the migration environment reported nothing; is env.py ours?")
    return report


@dataclass
class MigrationOutcome:
    """What an upgrade or downgrade did (read under the lock: a concurrent runner's work is
    not reported as this call's)."""

    direction: str
    from_revision: str | None
    to_revision: str | None
    applied: list[str] = field(default_factory=list)
    """Revisions whose scripts ran, in the order they ran (empty when there was nothing to do)."""


def upgrade(settings: Settings, revision: str = "head") -> MigrationOutcome:
    """Upgrade to ``revision`` under the maintenance lock; a no-op when already there."""
    settings = embedded.start(settings)
    report = _run_command(command.upgrade, settings, revision)
    return MigrationOutcome("upgrade", report.from_revision, report.to_revision, report.applied)


def downgrade(settings: Settings, revision: str = "-1") -> MigrationOutcome:
    """Downgrade to ``revision`` (one step by default) under the maintenance lock."""
    settings = embedded.start(settings)
    if current(settings) is None:
        raise MigrationError("the database is empty (no revision); nothing to downgrade")
    report = _run_command(command.downgrade, settings, revision)
    return MigrationOutcome("downgrade", report.from_revision, report.to_revision, report.applied)


def new_revision(settings: Settings, message: str, *, autogenerate: bool = False) -> Path:
    """Write a new migration script (compared with the database when ``autogenerate``),
    numbered like the others: ``005_<slug>``."""
    if autogenerate:
        settings = embedded.start(settings)
    rev_id = next_revision_id(message)
    try:
        script = command.revision(
            alembic_config(settings), message=message, autogenerate=autogenerate, rev_id=rev_id
        )
    except CommandError as exc:
        raise MigrationError(f"cannot create the revision: {exc}") from exc
    except DBAPIError as exc:
        raise translate(exc) from exc
    if script is None or isinstance(script, list):
        raise MigrationError("alembic created no single revision")
    return Path(script.path)


VERSION_NUM_MAX = 32
"""Length of ``alembic_version.version_num`` (Alembic's varchar(32)): a longer id cannot be stored."""


def next_revision_id(message: str) -> str:
    """``NNN_<slug>``: the next free number after the highest numbered revision, and the
    message in lower case with ``_`` for anything else, cut to fit ``version_num``."""
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")
    if not slug:
        raise MigrationError(
            f"the revision message {message!r} has no letters or digits; say what it does"
        )
    numbers = [
        int(m.group(1))
        for rev in script_directory().walk_revisions()
        if (m := re.match(r"(\d+)_", rev.revision))
    ]
    prefix = f"{max(numbers, default=0) + 1:03d}_"
    return prefix + slug[: VERSION_NUM_MAX - len(prefix)].rstrip("_")


@dataclass
class StampOutcome:
    """What a stamp did: the version table now says ``to_revision``; no script ran."""

    from_revision: str | None
    to_revision: str | None


def stamp(settings: Settings, revision: str) -> StampOutcome:
    """Record ``revision`` as the database's revision without running any script (under the
    maintenance lock), for a database whose schema was made or repaired by hand."""
    settings = embedded.start(settings)
    report = _run_command(command.stamp, settings, revision)
    with maintenance_connection(settings) as conn:
        now = current_on(conn)
    return StampOutcome(report.from_revision, now)


@dataclass
class MergeOutcome:
    """The merge revision written: its id, file and the heads it joins."""

    revision: str
    path: Path
    merged: list[str]


def merge(settings: Settings, message: str, revisions: list[str] | None = None) -> MergeOutcome:
    """Write a revision that joins ``revisions`` (default: all heads) into one head."""
    targets = revisions or ["heads"]
    if targets == ["heads"] and len(script_directory().get_heads()) < 2:
        raise MigrationError("there is a single head; nothing to merge")
    rev_id = next_revision_id(message)
    try:
        script = command.merge(alembic_config(settings), targets, message=message, rev_id=rev_id)
    except CommandError as exc:
        raise MigrationError(f"cannot merge {' '.join(targets)}: {exc}") from exc
    if script is None:
        raise MigrationError("alembic wrote no merge revision")
    down = script.down_revision
    merged = list(down) if isinstance(down, tuple | list) else [str(down)]
    return MergeOutcome(script.revision, Path(script.path), merged)


def drift(settings: Settings) -> list[str]:
    """Differences between the database and the models, one readable line each (empty = none)."""
    with maintenance_connection(embedded.start(settings)) as conn:
        return drift_on(conn)


def drift_on(conn: Connection) -> list[str]:
    ctx = MigrationContext.configure(
        conn,
        opts={
            "target_metadata": Base.metadata,
            "include_schemas": True,
            "include_name": _include_name,
            "version_table_schema": SCHEMA,
            "compare_type": True,
            "compare_server_default": True,
        },
    )
    with contextlib.redirect_stderr(io.StringIO()):
        diffs = compare_metadata(ctx, Base.metadata)
    lines = [describe_diff(d) for d in diffs]
    lines.extend(_trigger_drift(conn))
    lines.extend(_storage_drift(conn))
    return lines


def _storage_drift(conn: Connection) -> list[str]:
    """Alembic does not compare storage parameters: compare ``pg_class.reloptions`` with the
    ones the models record in ``Table.info`` (same on SQLAlchemy 2.0 and 2.1)."""
    rows = conn.execute(
        text(
            "SELECT c.relname, coalesce(c.reloptions, '{}') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')"
        ),
        {"schema": SCHEMA},
    ).all()
    actual = {name: dict(opt.split("=", 1) for opt in opts) for name, opts in rows}
    lines = []
    for table in Base.metadata.tables.values():
        if table.name not in actual:
            continue  # a missing table is reported by Alembic's comparison
        expected = {k: str(v) for k, v in table.info.get(STORAGE_PARAMETERS, {}).items()}
        have = actual[table.name]
        for key in sorted(expected.keys() | have.keys()):
            if expected.get(key) != have.get(key):
                lines.append(
                    f"table {table.fullname}: storage parameter {key} is "
                    f"{have.get(key, 'unset')} in the database, "
                    f"{expected.get(key, 'unset')} in the models"
                )
    return lines


def _trigger_drift(conn: Connection) -> list[str]:
    """Alembic does not compare triggers: check that every table keeps updated_at fresh."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relkind = 'r' AND NOT EXISTS ("
            "  SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'trg_' || c.relname || '_updated_at')"
        ),
        {"schema": SCHEMA},
    ).scalars()
    expected = {t.name for t in Base.metadata.tables.values() if "updated_at" in t.c}
    return [
        f"missing trigger: {SCHEMA}.{name} does not maintain updated_at"
        for name in rows
        if name in expected
    ]


def describe_diff(diff: Any) -> str:  # noqa: C901 (one branch per kind of Alembic difference, read as a table)
    """One human line for an entry of Alembic's ``compare_metadata`` output."""
    if isinstance(diff, list):  # modify_* entries come grouped per column
        return "; ".join(describe_diff(d) for d in diff)
    kind = diff[0]
    if kind == "add_table":
        return f"table {diff[1].fullname} is in the models but not in the database"
    if kind == "remove_table":
        return f"table {diff[1].fullname} is in the database but not in the models"
    if kind == "add_column":
        return f"column {diff[1] + '.' if diff[1] else ''}{diff[2]}.{diff[3].name} is missing in the database"
    if kind == "remove_column":
        return f"column {diff[1] + '.' if diff[1] else ''}{diff[2]}.{diff[3].name} is not in the models"
    if kind == "add_index":
        return f"index {diff[1].name} is missing in the database"
    if kind == "remove_index":
        return f"index {diff[1].name} is in the database but not in the models"
    if kind == "add_constraint":
        return f"constraint {diff[1].name} is missing in the database"
    if kind == "remove_constraint":
        return f"constraint {diff[1].name} is in the database but not in the models"
    if kind == "add_fk":
        return f"foreign key {diff[1].name} is missing in the database"
    if kind == "remove_fk":
        return f"foreign key {diff[1].name} is in the database but not in the models"
    if kind.startswith("modify_"):
        _, schema, table, column, _info, old, new = diff
        what = {"modify_default": "server default"}.get(kind, kind.removeprefix("modify_"))
        return (
            f"column {schema}.{table}.{column}: {what} is {_show(old)} in the database, "
            f"{_show(new)} in the models"
        )
    return repr(diff)


_PG_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _show(value: Any) -> str:
    """A column property as SQL people read it: a type, a default expression, a flag."""
    if value is None:
        return "none"
    if isinstance(value, DefaultClause):
        arg = value.arg
        return str(arg.text if isinstance(arg, TextClause) else arg)
    if isinstance(value, TypeEngine):
        return str(value.compile(dialect=_PG_DIALECT))
    return str(value)
