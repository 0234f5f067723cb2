"""Helpers for the `pokervod-db serve` tests: a real uvicorn server on a free port of 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import httpx
import uvicorn

from pokervod_db.database import async_session_factory, create_engine, transaction
from pokervod_db.sample import load_sample
from pokervod_db.settings import Settings


async def load_sample_into(settings: Settings) -> None:
    """The sample catalog, committed (what `pokervod-db up --sample` loads)."""
    engine = create_engine(settings)
    try:
        async with transaction(async_session_factory(engine)) as session:
            await load_sample(session)
    finally:
        await engine.dispose()


class ThreadServer:
    """uvicorn serving ``app`` in a thread, on a socket bound to 127.0.0.1 port 0."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()

    def get(self, path: str, timeout: float = 30.0) -> httpx.Response:
        return httpx.get(self.url + path, timeout=timeout)
