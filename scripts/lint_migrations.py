"""Lint the SQL our migrations run with squawk (``make lint``): render it offline, then check it.

Offline rendering (``alembic upgrade --sql``) never connects, so this needs no database; the
URL below only picks the PostgreSQL dialect. Each revision is rendered on its own, as it will
run against a database at its parent, so that squawk sees which tables already exist: an index
built without CONCURRENTLY on an existing table is flagged, one on a table created in the same
revision is not. The initial schema (001 + 002) is the one exception, rendered as one unit:
002 only indexes tables that 001 created, and both run in the first deploy's single transaction.
Rules we exclude, and why, are in ``.squawk.toml``.

Usage: ``python scripts/lint_migrations.py [--keep DIR]``; exits with squawk's status.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from alembic import command

from pokervod_db import migrate
from pokervod_db.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
INITIAL = ("001_initial_schema", "002_add_indexes")
DUMMY_URL = "postgresql://lint@localhost/lint"  # offline: selects the dialect, never dialled


def render(start: str | None, end: str) -> str:
    """The SQL that ``alembic upgrade start:end`` would run (``base`` when start is None)."""
    buffer = io.StringIO()
    settings = Settings(_env_file=None, DATABASE_URL=DUMMY_URL)  # type: ignore[call-arg]
    cfg = migrate.alembic_config(settings, stdout=buffer)
    cfg.output_buffer = buffer
    command.upgrade(cfg, f"{start or 'base'}:{end}", sql=True)
    return buffer.getvalue()


def units() -> list[tuple[str, str | None, str]]:
    """(file name, start, end) of each unit to lint, oldest first."""
    revisions = migrate.history()
    assert tuple(r.revision for r in revisions[:2]) == INITIAL, "the initial revisions moved"
    result: list[tuple[str, str | None, str]] = [("001-002_initial.sql", None, INITIAL[1])]
    for info in revisions[2:]:
        result.append((f"{info.revision}.sql", info.down_revision, info.revision))
    return result


def squawk_binary() -> str:
    scripts = Path(sysconfig.get_path("scripts"))
    candidate = scripts / "squawk"
    return str(candidate) if candidate.exists() else (shutil.which("squawk") or "squawk")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write the rendered SQL here and keep it")
    args = parser.parse_args()
    out = args.keep or Path(tempfile.mkdtemp(prefix="pokervod-squawk-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        files = []
        for name, start, end in units():
            path = out / name
            path.write_text(render(start, end))
            files.append(str(path))
        cmd = [squawk_binary(), "--config", str(ROOT / ".squawk.toml"), "--reporter", "gcc"]
        result = subprocess.run([*cmd, *files], check=False)
        if result.returncode == 0:
            sys.stdout.write(f"squawk: {len(files)} migration units clean\n")
        return result.returncode
    finally:
        if args.keep is None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
