"""Streaming replicas: ``replica create|start|stop|promote|list`` (see docs/replicas-and-pitr.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pokervod_db import replicas
from pokervod_db.settings import load_settings

from .options import JsonOption
from .render import human_bytes, print_json, say

app = typer.Typer(help="Streaming replicas of the primary: create, start, stop, promote, list.")

DirArgument = Annotated[
    Path, typer.Argument(help="The replica's data directory.", show_default=False)
]


@app.command("create")
def create(directory: DirArgument, as_json: JsonOption = False) -> None:
    """Make DIRECTORY a streaming standby of the primary (pg_basebackup -R with a slot)."""
    info = replicas.create_replica(load_settings(), directory)
    if as_json:
        print_json(info.to_dict())
        return
    say(
        f"replica created in {info.directory} (slot {info.slot}); start it with "
        f"`pokervod-db replica start {info.directory}`"
    )


@app.command("start")
def start(directory: DirArgument, as_json: JsonOption = False) -> None:
    """Start the replica in DIRECTORY and print its URL (for DATABASE_REPLICA_URLS)."""
    url = replicas.start_replica(directory)
    if as_json:
        print_json({"url": url})
        return
    say(url)


@app.command("stop")
def stop(directory: DirArgument, as_json: JsonOption = False) -> None:
    """Stop the replica in DIRECTORY (its slot keeps the WAL it still needs)."""
    stopped = replicas.stop_replica(directory)
    if as_json:
        print_json({"stopped": stopped})
        return
    say("stopped" if stopped else "it was not running")


@app.command("promote")
def promote(directory: DirArgument, as_json: JsonOption = False) -> None:
    """Promote the replica in DIRECTORY to a primary that takes writes."""
    url = replicas.promote_replica(directory)
    if as_json:
        print_json({"url": url, "promoted": True})
        return
    say(f"promoted: {url} now takes writes; point DATABASE_URL at it and drop its old slot")


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """The primary's replication slots, their standbys and lag."""
    slots = replicas.list_replicas(load_settings())
    if as_json:
        print_json({"replicas": [s.to_dict() for s in slots]})
        return
    if not slots:
        say("no replication slots on the primary")
    for s in slots:
        lag = f"{s.replay_lag_s:.1f} s" if s.replay_lag_s is not None else "-"
        kept = human_bytes(s.retained_bytes) if s.retained_bytes is not None else "-"
        flag = "  HOLDS WAL" if s.holds_wal else ""
        say(
            f"{s.slot}: {'active' if s.active else 'inactive'} {s.state or ''} replay lag {lag}, "
            f"WAL kept {kept}{flag}"
        )
