"""The local server's life: ``up`` (start, migrate, optionally load the sample, show) and ``down``."""

from __future__ import annotations

from typing import Annotated

import typer

from pokervod_db import embedded
from pokervod_db.database import async_session_factory, create_engine, transaction
from pokervod_db.errors import PokervodDBError, translated
from pokervod_db.settings import Settings, load_settings

from .dispatch import run, run_migration, started_settings
from .inspect import show_overview
from .render import say

app = typer.Typer()


def _load_sample(settings: Settings) -> None:
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
            say(
                f"sample loaded: {summary.projects} projects, {summary.video_files} video "
                f"files, {summary.hand_clips} hand clips, {summary.nas_files} NAS files"
            )
        else:
            say("sample already present")

    run(_load)


@app.command()
def up(
    sample: Annotated[
        bool, typer.Option("--sample", help="Also load the small sample catalog.")
    ] = False,
) -> None:
    """Bring the database to the newest revision (starting the embedded server if needed)."""
    settings = started_settings()
    outcome = run_migration(settings, "upgrade", "head")
    if outcome.applied:
        say(f"applied {', '.join(outcome.applied)}")
    if sample:
        _load_sample(settings)
    show_overview(settings)


@app.command()
def down() -> None:
    """Stop the embedded PostgreSQL server (its data stays)."""
    settings = load_settings()
    if not settings.uses_embedded:
        raise PokervodDBError("DATABASE_URL is set: there is no embedded server to stop")
    embedded.stop(settings)
    say(f"stopped the embedded server in {settings.embedded_data_dir}")
