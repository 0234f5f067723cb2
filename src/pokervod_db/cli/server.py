"""The local server's life: ``up`` (start, migrate, optionally load the sample, show) and ``down``."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from pokervod_db import embedded
from pokervod_db.database import async_session_factory, create_engine, transaction
from pokervod_db.errors import PokervodDBError, translated
from pokervod_db.settings import Settings, load_settings

from .dispatch import migration_result, run, started_settings
from .inspect import collect_overview, show_overview
from .options import JsonOption
from .render import print_json, say

if TYPE_CHECKING:
    from pokervod_db.sample import SampleSummary

app = typer.Typer()


def _load_sample(settings: Settings) -> SampleSummary:
    from pokervod_db.sample import load_sample

    async def _load() -> SampleSummary:
        engine = create_engine(settings)
        try:
            with translated():
                async with transaction(async_session_factory(engine)) as session:
                    return await load_sample(session)
        finally:
            await engine.dispose()

    return run(_load)


def _say_sample(summary: SampleSummary) -> None:
    if summary.loaded:
        say(
            f"sample loaded: {summary.projects} projects, {summary.video_files} video "
            f"files, {summary.hand_clips} hand clips, {summary.nas_files} NAS files"
        )
    else:
        say("sample already present")


@app.command()
def up(
    sample: Annotated[
        bool, typer.Option("--sample", help="Also load the small sample catalog.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Bring the database to the newest revision (starting the embedded server if needed)."""
    settings = started_settings()
    result = migration_result(settings, "upgrade", "head", quiet=as_json)
    if not result.success:
        if as_json:
            print_json({"migration": result.to_dict()})
        raise PokervodDBError(result.error or "the upgrade failed")
    if result.applied and not as_json:
        say(f"applied {', '.join(result.applied)}")
    summary = _load_sample(settings) if sample else None
    if as_json:
        status_, report, stats_ = collect_overview(settings)
        print_json(
            {
                "migration": result.to_dict(),
                "sample": asdict(summary) if summary is not None else None,
                "status": status_.to_dict(),
                "health": report.to_dict(),
                "stats": stats_.to_dict(),
            }
        )
        return
    if summary is not None:
        _say_sample(summary)
    show_overview(settings)


@app.command()
def down() -> None:
    """Stop the embedded PostgreSQL server (its data stays)."""
    settings = load_settings()
    if not settings.uses_embedded:
        raise PokervodDBError("DATABASE_URL is set: there is no embedded server to stop")
    embedded.stop(settings)
    say(f"stopped the embedded server in {settings.embedded_data_dir}")
