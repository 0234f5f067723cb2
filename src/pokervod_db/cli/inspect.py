"""Looking at a running database: status, health, stats and the event stream."""

from __future__ import annotations

from typing import Annotated

import typer

from pokervod_db.agent import DatabaseAgent
from pokervod_db.events import Event, listen, read_events
from pokervod_db.health import HealthReport, MigrationStatus
from pokervod_db.settings import Settings, load_settings
from pokervod_db.stats import DatabaseStats

from .dispatch import run, with_agent
from .options import JsonOption
from .render import note, print_health, print_json, print_json_line, print_stats, print_status

app = typer.Typer()


def collect_overview(settings: Settings) -> tuple[MigrationStatus, HealthReport, DatabaseStats]:
    """Status, health and statistics, as ``up`` reports them after migrating."""

    async def _collect(agent: DatabaseAgent) -> tuple[MigrationStatus, HealthReport, DatabaseStats]:
        return (
            await agent.get_migration_status(),
            await agent.health(),
            await agent.get_database_stats(top=5),
        )

    return with_agent(_collect, settings)


def show_overview(settings: Settings) -> None:
    """What ``up`` shows after migrating: status, health and statistics."""
    status_, report, stats_ = collect_overview(settings)
    print_status(status_)
    print_health(report)
    print_stats(stats_)


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Show the migration status: current and head revision, pending revisions, drift."""
    result = with_agent(lambda agent: agent.get_migration_status())
    if as_json:
        print_json(result.to_dict())
    else:
        print_status(result)


@app.command()
def health(as_json: JsonOption = False) -> None:
    """Check the database; exit 0 when healthy, 1 when not (one line per check)."""
    report = with_agent(lambda agent: agent.health())
    if as_json:
        print_json(report.to_dict())
    else:
        print_health(report)
    raise typer.Exit(0 if report.healthy else 1)


@app.command()
def stats(
    as_json: JsonOption = False,
    exact: Annotated[
        bool, typer.Option("--exact", help="Count rows with count(*) (slower).")
    ] = False,
    top: Annotated[int, typer.Option("--top", min=0, help="How many top statements to show.")] = 5,
) -> None:
    """Table sizes, rows, scans, vacuum state, index usage and cache hit ratio."""
    result = with_agent(lambda agent: agent.get_database_stats(exact=exact, top=top))
    if as_json:
        print_json(result.to_dict())
    else:
        print_stats(result)


@app.command()
def events(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    since: Annotated[
        int | None,
        typer.Option("--since", min=0, help="Replay the events stored after this id first."),
    ] = None,
    types: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="Only this type (repeat).")
    ] = None,
) -> None:
    """Print stored events as JSON lines; with --follow, also those other processes emit."""
    settings = load_settings()
    if not follow:
        stored: list[Event] = run(lambda: read_events(settings, since_id=since or 0, types=types))
        for event in stored:
            print_json_line(event.to_dict())
        return

    def _ready(last_id: int) -> None:
        note(f"following events on {settings.masked_url()} after id {last_id} (Ctrl-C stops)")

    async def _follow() -> None:
        async for event in listen(settings, since_id=since, types=types, on_connected=_ready):
            print_json_line(event.to_dict())

    try:
        run(_follow)
    except KeyboardInterrupt:
        return
