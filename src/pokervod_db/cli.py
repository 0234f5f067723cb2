"""The ``pokervod-db`` command: one subcommand per operation, dispatch and printing only.

Expected failures (bad settings, unreachable server, lock held, failed migration) print one
``FAILED: …`` line on stderr and exit 1; nothing else is printed for them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pokervod_db import embedded, migrate
from pokervod_db.agent import DatabaseAgent, MigrationResult
from pokervod_db.database import (
    async_session_factory,
    create_engine,
    transaction,
)
from pokervod_db.errors import PokervodDBError, translated
from pokervod_db.events import Event, listen, read_events, to_json
from pokervod_db.health import HealthReport, MigrationStatus
from pokervod_db.settings import Settings
from pokervod_db.stats import DatabaseStats, human_bytes

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
    outcome = _migrate(settings, "upgrade", "head")
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
    _show_overview(settings)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Upgrade the database to REVISION (default: head)."""
    outcome = _migrate(_settings(), "upgrade", revision)
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
    outcome = _migrate(_settings(), "downgrade", revision)
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


# --- agent: status, health, stats, events ---------------------------------------------------


def _quiet_agent_log() -> None:
    # The CLI prints the agent's results itself; its log lines would repeat them on stderr.
    logging.getLogger("pokervod_db.agent").setLevel(logging.ERROR)


def _with_agent(fn: Callable[[DatabaseAgent], Coroutine[Any, Any, T]]) -> T:
    settings = _settings()
    _quiet_agent_log()

    async def _go() -> T:
        async with DatabaseAgent(settings) as agent:
            return await fn(agent)

    return _run(_go)


def _migrate(settings: Settings, direction: str, target: str) -> migrate.MigrationOutcome:
    """Migrate through the agent, so other processes receive ``db.migration.completed``."""
    _quiet_agent_log()

    async def _go() -> MigrationResult:
        async with DatabaseAgent(settings) as agent:
            return await agent.run_migration(direction, target)

    result = _run(_go)
    if not result.success:
        raise PokervodDBError(result.error or f"the {direction} failed")
    return migrate.MigrationOutcome(direction, result.from_version, result.version, result.applied)


def _print_status(status: MigrationStatus) -> None:
    console.print(f"database: {status.database}", markup=False, highlight=False)
    state = "at head" if status.at_head else f"head is {status.head}"
    console.print(f"revision: {status.current or '(empty)'} ({state})", highlight=False)
    if status.pending:
        console.print(
            f"pending:  {', '.join(status.pending)} (run `pokervod-db upgrade`)",
            markup=False,
            highlight=False,
        )
    if status.note:
        console.print(f"note:     {status.note}", markup=False, highlight=False)
    if status.drift_checked:
        if status.drift:
            console.print(f"drift:    {len(status.drift)} differences from the models:")
            for line in status.drift:
                console.print(f"  - {line}", markup=False, highlight=False)
        else:
            console.print("drift:    none (the database matches the models)")


def _print_health(report: HealthReport) -> None:
    for check in report.checks:
        mark = "OK" if check.ok else ("FAIL" if check.critical else "WARN")
        style = "green" if check.ok else ("red" if check.critical else "yellow")
        console.print(
            f"[{style}]{mark:<5}[/{style}] {check.name:<13} {escape(check.detail)}",
            highlight=False,
            soft_wrap=True,
        )
    if report.healthy:
        console.print("[green]healthy[/green]")
    else:
        failed = ", ".join(report.failed) or "reachable"
        console.print(f"[red]UNHEALTHY[/red] (failed: {failed})")


def _when(*values: datetime | None) -> str:
    known = [v for v in values if v is not None]
    return max(known).strftime("%Y-%m-%d") if known else "never"


def _print_stats(stats: DatabaseStats) -> None:
    exact = any(t.exact_rows is not None for t in stats.tables.values())
    table = Table(
        title=f"{stats.database}: {human_bytes(stats.database_bytes)}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("table", no_wrap=True)
    table.add_column("rows" if exact else "rows~", justify="right")
    table.add_column("total", justify="right", no_wrap=True)
    table.add_column("indexes", justify="right", no_wrap=True)
    table.add_column("seq/idx", justify="right")
    table.add_column("dead", justify="right")
    table.add_column("vacuum/analyze", no_wrap=True)
    for t in stats.tables.values():
        rows = t.exact_rows if t.exact_rows is not None else t.row_estimate
        table.add_row(
            t.name,
            f"{rows:,}",
            human_bytes(t.total_bytes),
            human_bytes(t.index_bytes),
            f"{t.seq_scans:,}/{t.idx_scans:,}",
            f"{t.dead_tuples:,}",
            _when(t.last_vacuum, t.last_autovacuum, t.last_analyze, t.last_autoanalyze),
        )
    console.print(table)

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value * 100:.1f} %"

    console.print(
        f"cache hit ratio: {pct(stats.cache_hit_ratio)} (database), "
        f"{pct(stats.table_cache_hit_ratio)} (schema tables and indexes)",
        highlight=False,
    )
    unused = stats.indexes.unused
    plain = [i for i in unused if not (i.unique or i.primary)]
    console.print(
        f"indexes never scanned: {len(unused)} ({len(plain)} not enforcing a unique rule)",
        highlight=False,
    )
    for dup in stats.indexes.duplicates:
        console.print(
            f"duplicate indexes on {dup.table} ({', '.join(dup.columns)}): "
            f"{', '.join(dup.indexes)}",
            markup=False,
            highlight=False,
        )
    top = stats.top_statements
    if top is not None and top.available and top.statements:
        statements = Table(title="top statements", box=box.SIMPLE_HEAD, pad_edge=False)
        statements.add_column("total ms", justify="right", no_wrap=True)
        statements.add_column("calls", justify="right", no_wrap=True)
        statements.add_column("mean ms", justify="right", no_wrap=True)
        statements.add_column("statement", no_wrap=True, overflow="ellipsis", max_width=52)
        for st in top.statements:
            statements.add_row(
                f"{st.total_ms:,.1f}", f"{st.calls:,}", f"{st.mean_ms:,.2f}", escape(st.query)
            )
        console.print(statements)
    elif top is not None and top.note:
        console.print(f"top statements: {top.note}", markup=False, highlight=False, soft_wrap=True)


def _show_overview(settings: Settings) -> None:
    """What `up` shows after migrating: status, health and statistics."""

    async def _collect() -> tuple[MigrationStatus, HealthReport, DatabaseStats]:
        async with DatabaseAgent(settings) as agent:
            return (
                await agent.get_migration_status(),
                await agent.health(),
                await agent.get_database_stats(top=5),
            )

    status_, report, stats_ = _run(_collect)
    _print_status(status_)
    _print_health(report)
    _print_stats(stats_)


_JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object (fields in the README).")


@app.command()
def status(as_json: bool = _JSON_OPTION) -> None:
    """Show the migration status: current and head revision, pending revisions, drift."""
    result = _with_agent(lambda agent: agent.get_migration_status())
    if as_json:
        print_json(result.to_dict())
    else:
        _print_status(result)


@app.command()
def health(as_json: bool = _JSON_OPTION) -> None:
    """Check the database; exit 0 when healthy, 1 when not (one line per check)."""
    report = _with_agent(lambda agent: agent.health())
    if as_json:
        print_json(report.to_dict())
    else:
        _print_health(report)
    raise typer.Exit(0 if report.healthy else 1)


@app.command()
def stats(
    as_json: bool = _JSON_OPTION,
    exact: bool = typer.Option(False, "--exact", help="Count rows with count(*) (slower)."),
    top: int = typer.Option(5, "--top", min=0, help="How many top statements to show."),
) -> None:
    """Table sizes, rows, scans, vacuum state, index usage and cache hit ratio."""
    result = _with_agent(lambda agent: agent.get_database_stats(exact=exact, top=top))
    if as_json:
        print_json(result.to_dict())
    else:
        _print_stats(result)


@app.command()
def events(
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events."),
    since: int | None = typer.Option(
        None, "--since", min=0, help="Replay the events stored after this id first."
    ),
    types: list[str] | None = typer.Option(None, "--type", "-t", help="Only this type (repeat)."),
) -> None:
    """Print stored events as JSON lines; with --follow, also those other processes emit."""
    settings = _settings()

    def _line(event: Event) -> None:
        sys.stdout.write(to_json(event.to_dict()) + "\n")
        sys.stdout.flush()

    if not follow:
        for event in _run(lambda: read_events(settings, since_id=since or 0, types=types)):
            _line(event)
        return

    def _ready(last_id: int) -> None:
        err_console.print(
            f"following events on {settings.masked_url()} after id {last_id} (Ctrl-C stops)",
            markup=False,
            highlight=False,
        )

    async def _follow() -> None:
        async for event in listen(settings, since_id=since, types=types, on_connected=_ready):
            _line(event)

    try:
        _run(_follow)
    except KeyboardInterrupt:
        return


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
