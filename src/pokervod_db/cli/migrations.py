"""Schema migrations: upgrade, downgrade, current, history, revision, stamp, merge, check.

Revisions are given as with ``alembic``: an id (or a unique prefix), ``head``/``heads``,
``base``, or relative (``-1``, ``+2``, ``head-1``). ``-1`` looks like an option to Click, so the
commands taking a revision accept unknown options as arguments (``ignore_unknown_options``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from pokervod_db import migrate
from pokervod_db.errors import PokervodDBError
from pokervod_db.settings import load_settings

from .dispatch import migration_result
from .options import JsonOption
from .render import print_json, say

app = typer.Typer()

# `downgrade -1`: Click would read "-1" as an unknown option and stop.
REVISION_ARGS = {"ignore_unknown_options": True}


def _report(result: Any, as_json: bool, line: str) -> None:
    """Print the result (one JSON object with ``--json``); a failure ends in FAILED, exit 1."""
    if as_json:
        print_json(result.to_dict())
    if not result.success:
        raise PokervodDBError(result.error or f"the {result.direction} failed")
    if not as_json:
        say(line)


@app.command(context_settings=REVISION_ARGS)
def upgrade(
    revision: Annotated[
        str, typer.Argument(help="Target: head (default), heads, an id, +N, …")
    ] = "head",
    backup_first: Annotated[
        bool,
        typer.Option(
            "--backup-first", help="Back up first (tagged pre-upgrade-REV); no backup, no run."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Upgrade the database to REVISION (default: head)."""
    result = migration_result(
        load_settings(), "upgrade", revision, backup_first=backup_first, quiet=as_json
    )
    if result.applied:
        line = f"upgraded {result.from_version or 'base'} → {result.version}: " + ", ".join(
            result.applied
        )
    else:
        line = f"already at {result.version}"
    _report(result, as_json, line)


@app.command(context_settings=REVISION_ARGS)
def downgrade(
    revision: Annotated[
        str, typer.Argument(help="Target: -1 (default), -N, base, an id, …")
    ] = "-1",
    as_json: JsonOption = False,
) -> None:
    """Downgrade the database to REVISION (default: one step back)."""
    result = migration_result(load_settings(), "downgrade", revision, quiet=as_json)
    _report(result, as_json, f"downgraded {result.from_version} → {result.version or 'base'}")


@app.command()
def current(as_json: JsonOption = False) -> None:
    """Print the database's current revision."""
    revision = migrate.current(load_settings())
    head = migrate.head_revision()
    if as_json:
        print_json({"current": revision, "head": head, "at_head": revision == head})
        return
    say(f"{revision or '(empty)'}{' (head)' if revision == head else ''}")


@app.command()
def history(as_json: JsonOption = False) -> None:
    """List the migration revisions, oldest first."""
    head = migrate.head_revision()
    revisions = migrate.history()
    if as_json:
        print_json({"head": head, "revisions": [asdict(info) for info in revisions]})
        return
    for info in revisions:
        marker = " (head)" if info.revision == head else ""
        say(f"{info.down_revision or '<base>'} -> {info.revision}{marker}: {info.doc}")


@app.command()
def revision(
    message: Annotated[str, typer.Option("-m", "--message", help="What the revision does.")],
    autogenerate: Annotated[
        bool, typer.Option("--autogenerate", help="Compare models and database.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a new migration script, numbered after the last one (005_<slug>)."""
    path = migrate.new_revision(load_settings(), message, autogenerate=autogenerate)
    if as_json:
        print_json({"revision": path.stem, "path": str(path)})
        return
    say(f"created {path}")


@app.command(context_settings=REVISION_ARGS)
def stamp(
    revision: Annotated[str, typer.Argument(help="The revision to record (head, base, an id).")],
    as_json: JsonOption = False,
) -> None:
    """Record REVISION as the database's revision without running any migration."""
    outcome = migrate.stamp(load_settings(), revision)
    if as_json:
        print_json(asdict(outcome))
        return
    say(f"stamped {outcome.from_revision or 'base'} → {outcome.to_revision or 'base'}")


@app.command()
def merge(
    revisions: Annotated[
        list[str] | None, typer.Argument(help="Revisions to join (default: all heads).")
    ] = None,
    message: Annotated[str, typer.Option("-m", "--message", help="What the merge joins.")] = (
        "merge heads"
    ),
    as_json: JsonOption = False,
) -> None:
    """Write a revision that joins several heads into one."""
    outcome = migrate.merge(load_settings(), message, revisions)
    if as_json:
        print_json({**asdict(outcome), "path": str(outcome.path)})
        return
    say(f"created {outcome.path} joining {', '.join(outcome.merged)}")


@app.command()
def check(as_json: JsonOption = False) -> None:
    """Exit 1 and list the differences when the database and the models differ."""
    differences = migrate.drift(load_settings())
    if as_json:
        print_json({"matches": not differences, "differences": differences})
    elif not differences:
        say("no differences: the database matches the models")
    else:
        for line in differences:
            say(f"- {line}")
    if differences:
        raise typer.Exit(1)
