"""Running the application with uvicorn (what `pokervod-db serve` calls)."""

from __future__ import annotations

import uvicorn

from pokervod_db.settings import Settings
from pokervod_db.web.app import create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def run(settings: Settings, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve until interrupted. Binds to 127.0.0.1 unless ``host`` says otherwise."""
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        server_header=False,
        proxy_headers=False,
        access_log=False,
    )
    uvicorn.Server(config).run()
