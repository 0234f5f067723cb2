"""``serve``: probes, Prometheus metrics, the JSON API and the status page over HTTP.

The web application lives in `pokervod_db.web` (extra ``serve``); this module only starts it.
See docs/serve.md.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pokervod_db.errors import PokervodDBError

from .dispatch import started_settings
from .render import note, say

app = typer.Typer()


@app.command()
def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free port).")] = 8080,
) -> None:
    """Serve probes, Prometheus metrics, the JSON API and a status page (read-only)."""
    try:
        from pokervod_db.web.server import is_loopback, run
    except ImportError as exc:
        raise PokervodDBError(
            f"pokervod-db serve needs the serve extra ({exc.name} is missing): "
            "pip install 'pokervod-db[serve]'"
        ) from exc
    settings = started_settings()

    def listening(url: str) -> None:
        say(f"serving {settings.masked_url()} on {url} (Ctrl-C stops)")
        if not is_loopback(host):
            note(f"note: listening on {host}: anyone who can reach it can read the status page")

    try:
        run(settings, host=host, port=port, on_listening=listening)
    except KeyboardInterrupt:
        return  # Ctrl-C is how a foreground server ends: uvicorn has shut down cleanly
