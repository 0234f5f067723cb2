"""The ``pokervod-db`` command: one subcommand per operation, dispatch and printing only.

Expected failures (bad settings, unreachable server, lock held, failed migration) print one
``FAILED: …`` line on stderr and exit 1; nothing else is printed for them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from pokervod_db import embedded, migrate
from pokervod_db.database import (
    async_session_factory,
    check_connection,
    create_engine,
    transaction,
)
from pokervod_db.errors import PokervodDBError, translated
from pokervod_db.settings import Settings

app = typer.Typer(
    help="pokervod-db: the database layer of the pokervod archive.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# soft_wrap: a long line (a path, an error) stays one line when the output is not a terminal.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if where not in message:
            message = f"{where}: {message}"
        raise PokervodDBError(f"invalid settings: {message}") from exc


def _run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(coro_fn())


def _started() -> Settings:
    return embedded.start(_settings())


# --- migrations -----------------------------------------------------------------------------


@app.command()
def up(
    sample: bool = typer.Option(False, "--sample", help="Also load the small sample catalog."),
) -> None:
    """Bring the database to the newest revision (starting the embedded server if needed)."""
    settings = _started()
    outcome = migrate.upgrade(settings)
    if outcome.applied:
        console.print(f"applied {', '.join(outcome.applied)}")
    if sample:
        from pokervod_db.sample import load_sample

        async def _load() -> None:
            engine = create_engine(settings)
            try:
                with translated():
                    async with transaction(async_session_factory(engine)) as session:
                        summary = await load_sample(session)
            finally:
                await engine.dispose()
            if summary.loaded:
                console.print(
                    f"sample loaded: {summary.projects} projects, {summary.video_files} video "
                    f"files, {summary.hand_clips} hand clips, {summary.nas_files} NAS files"
                )
            else:
                console.print("sample already present")

        _run(_load)
    _show_tables(settings)


def _show_tables(settings: Settings) -> None:
    from pokervod_db.stats import exact_row_counts

    async def _counts() -> dict[str, int]:
        engine = create_engine(settings)
        try:
            await check_connection(engine, wait_s=settings.connect_timeout + 5)
            async with engine.connect() as conn:
                return await exact_row_counts(conn)
        finally:
            await engine.dispose()

    counts = _run(_counts)
    revision = migrate.current(settings)
    head = migrate.head_revision()
    state = "at head" if revision == head else f"head is {head}"
    console.print(f"database: {settings.masked_url()}")
    console.print(f"revision: {revision or '(empty)'} ({state})")
    table = Table("table", "rows")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Upgrade the database to REVISION (default: head)."""
    outcome = migrate.upgrade(_settings(), revision)
    if outcome.applied:
        console.print(
            f"upgraded {outcome.from_revision or 'base'} → {outcome.to_revision}: "
            f"{', '.join(outcome.applied)}"
        )
    else:
        console.print(f"already at {outcome.to_revision}")


@app.command()
def downgrade(
    revision: str = typer.Argument("-1", help="Target revision (default: one step)."),
) -> None:
    """Downgrade the database to REVISION (default: one step back)."""
    outcome = migrate.downgrade(_settings(), revision)
    console.print(f"downgraded {outcome.from_revision} → {outcome.to_revision or 'base'}")


@app.command()
def current() -> None:
    """Print the database's current revision."""
    revision = migrate.current(_settings())
    head = migrate.head_revision()
    console.print(f"{revision or '(empty)'}{' (head)' if revision == head else ''}")


@app.command()
def history() -> None:
    """List the migration revisions, oldest first."""
    head = migrate.head_revision()
    for info in migrate.history():
        marker = " (head)" if info.revision == head else ""
        console.print(f"{info.down_revision or '<base>'} -> {info.revision}{marker}: {info.doc}")


@app.command()
def revision(
    message: str = typer.Option(..., "-m", "--message", help="What the revision does."),
    autogenerate: bool = typer.Option(False, "--autogenerate", help="Compare models and database."),
) -> None:
    """Create a new migration script."""
    path = migrate.new_revision(_settings(), message, autogenerate=autogenerate)
    console.print(f"created {path}")


@app.command()
def check() -> None:
    """Exit 1 and list the differences when the database and the models differ."""
    differences = migrate.drift(_settings())
    if not differences:
        console.print("no differences: the database matches the models")
        return
    for line in differences:
        console.print(f"- {line}", markup=False)
    raise typer.Exit(1)


@app.command()
def down() -> None:
    """Stop the embedded PostgreSQL server (its data stays)."""
    settings = _settings()
    if not settings.uses_embedded:
        raise PokervodDBError("DATABASE_URL is set: there is no embedded server to stop")
    embedded.stop(settings)
    console.print(f"stopped the embedded server in {settings.embedded_data_dir}")


def print_json(value: Any) -> None:
    """One JSON object on stdout (for `--json` options)."""
    sys.stdout.write(json.dumps(value, default=str) + "\n")


def main() -> None:
    """Console entry point: run the app, turning expected failures into one line and exit 1."""
    try:
        app()
    except PokervodDBError as exc:
        err_console.print(f"FAILED: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("FAILED: interrupted", highlight=False)
        sys.exit(130)
