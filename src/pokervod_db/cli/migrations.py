"""Schema migrations: upgrade, downgrade, current, history, revision, check."""

from __future__ import annotations

from typing import Annotated

import typer

from pokervod_db import migrate
from pokervod_db.settings import load_settings

from .dispatch import run_migration
from .render import say

app = typer.Typer()


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    backup_first: Annotated[
        bool,
        typer.Option(
            "--backup-first", help="Back up first (tagged pre-upgrade-REV); no backup, no run."
        ),
    ] = False,
) -> None:
    """Upgrade the database to REVISION (default: head)."""
    outcome = run_migration(load_settings(), "upgrade", revision, backup_first=backup_first)
    if outcome.applied:
        say(
            f"upgraded {outcome.from_revision or 'base'} → {outcome.to_revision}: "
            f"{', '.join(outcome.applied)}"
        )
    else:
        say(f"already at {outcome.to_revision}")


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision (default: one step).")] = "-1",
) -> None:
    """Downgrade the database to REVISION (default: one step back)."""
    outcome = run_migration(load_settings(), "downgrade", revision)
    say(f"downgraded {outcome.from_revision} → {outcome.to_revision or 'base'}")


@app.command()
def current() -> None:
    """Print the database's current revision."""
    revision = migrate.current(load_settings())
    head = migrate.head_revision()
    say(f"{revision or '(empty)'}{' (head)' if revision == head else ''}")


@app.command()
def history() -> None:
    """List the migration revisions, oldest first."""
    head = migrate.head_revision()
    for info in migrate.history():
        marker = " (head)" if info.revision == head else ""
        say(f"{info.down_revision or '<base>'} -> {info.revision}{marker}: {info.doc}")


@app.command()
def revision(
    message: Annotated[str, typer.Option("-m", "--message", help="What the revision does.")],
    autogenerate: Annotated[
        bool, typer.Option("--autogenerate", help="Compare models and database.")
    ] = False,
) -> None:
    """Create a new migration script."""
    path = migrate.new_revision(load_settings(), message, autogenerate=autogenerate)
    say(f"created {path}")


@app.command()
def check() -> None:
    """Exit 1 and list the differences when the database and the models differ."""
    differences = migrate.drift(load_settings())
    if not differences:
        say("no differences: the database matches the models")
        return
    for line in differences:
        say(f"- {line}")
    raise typer.Exit(1)
