"""The ASGI application of `pokervod-db serve`: probes, metrics, JSON API and the status page.

`create_app(settings)` builds it without touching the database; the engine and the collector
start with the application's lifespan, or on the first request when the app is mounted inside
another service (Starlette does not run a mounted app's lifespan). Only GET routes exist: nothing
can be changed over HTTP. Every body passes `Redactor`, a last guard that the database password
never leaves the process even if some message quoted it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import quote

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pokervod_db.errors import PokervodDBError
from pokervod_db.events import to_json
from pokervod_db.settings import Settings
from pokervod_db.web.metrics import build_registry
from pokervod_db.web.page import render_page
from pokervod_db.web.service import ServeState

MAX_EVENTS = 1000
"""Events one ``/api/events`` answer holds at most; continue with ``since`` = the last id."""
MAX_TOP = 50

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page inlines its CSS and SVG; nothing else may load or frame it.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


class BadRequest(ValueError):
    """A query parameter is wrong: answered 400 with one line."""


class Redactor:
    """Replaces the database password (as given and URL-encoded) wherever it would appear."""

    def __init__(self) -> None:
        self.secrets: list[str] = []

    def learn(self, settings: Settings) -> None:
        """Learn the passwords of ``DATABASE_URL`` and of every ``DATABASE_REPLICA_URLS`` entry."""
        urls = [settings.url()] if settings.database_url is not None else []
        urls += settings.replica_url_list()
        found: set[str] = set()
        for url in urls:
            if url.password:
                password = str(url.password)
                found |= {password, quote(password, safe=""), quote(password)}
        self.secrets = sorted((s for s in found if s), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def create_app(  # noqa: C901 (the routes are closures over one database; new on the serve branch)
    settings: Settings,
    *,
    collect_interval_s: float = 5.0,
    ready_cache_s: float = 1.0,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """The ASGI app for ``settings`` (no I/O until it starts or gets its first request).

    ``allowed_hosts`` limits the ``Host`` header (`serve` passes `LOOPBACK_HOSTS` when it listens
    on loopback: a web page cannot then read the status through DNS rebinding).
    """
    state = ServeState(settings, collect_interval_s=collect_interval_s, ready_cache_s=ready_cache_s)
    registry = build_registry(state)
    redact = Redactor()
    redact.learn(settings)

    def respond(body: str, status: int = 200, media_type: str = "application/json") -> Response:
        return Response(redact(body), status_code=status, media_type=media_type, headers=_HEADERS)

    def as_json(data: Any, status: int = 200) -> Response:
        return respond(to_json(data), status)

    async def started() -> ServeState:
        await state.start()
        redact.learn(state.settings)  # the embedded server's URL is known only now
        return state

    async def livez(request: Request) -> Response:
        return as_json({"alive": True})

    async def readyz(request: Request) -> Response:
        bound = settings.connect_timeout + 1.5
        began = time.perf_counter()
        try:
            async with asyncio.timeout(bound):
                await started()
                report = await state.health.get()
        except TimeoutError:
            waited = time.perf_counter() - began
            return as_json(
                {
                    "ready": False,
                    "failed": ["reachable"],
                    "error": f"no answer from the database within {waited:.1f} s",
                },
                503,
            )
        body = {
            "ready": report.healthy,
            "failed": report.failed,
            "checks": [c.to_dict() for c in report.checks if c.critical],
            "checked_at": report.checked_at.isoformat(),
        }
        return as_json(body, 200 if report.healthy else 503)

    async def metrics(request: Request) -> Response:
        with contextlib.suppress(PokervodDBError):
            await started()  # a scrape must answer even when the engine cannot start
        return Response(
            redact(generate_latest(registry).decode()),
            media_type=CONTENT_TYPE_LATEST,
            headers=_HEADERS,
        )

    async def api_health(request: Request) -> Response:
        await started()
        return as_json((await state.health.get()).to_dict())

    async def api_status(request: Request) -> Response:
        await started()
        return as_json((await state.migration_status()).to_dict())

    async def api_stats(request: Request) -> Response:
        top = _int_param(request, "top", default=5, low=0, high=MAX_TOP)
        await started()
        return as_json((await state.stats(top).get()).to_dict())

    async def api_events(request: Request) -> Response:
        since = _int_param(request, "since", default=0, low=0, high=2**63 - 1)
        limit = _int_param(request, "limit", default=MAX_EVENTS, low=1, high=MAX_EVENTS)
        types = request.query_params.getlist("type") or None
        if types and any(not t or len(t) > 100 for t in types):
            raise BadRequest("type must be an event type of 1 to 100 characters")
        await started()
        found = await state.events(since, types, limit)
        return as_json([e.to_dict() for e in found])

    async def page(request: Request) -> Response:
        await started()
        if state.snapshot.collected_at is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.connect_timeout + 3):
                    await state.collected.wait()
        return respond(
            render_page(state.snapshot, database=state.settings.masked_url()),
            media_type="text/html; charset=utf-8",
        )

    async def bad_request(request: Request, exc: Exception) -> Response:
        return as_json({"error": str(exc)}, 400)

    async def unavailable(request: Request, exc: Exception) -> Response:
        return as_json({"error": str(exc)}, 503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await started()
        except PokervodDBError:
            pass  # probes report it; the process still serves /livez and /metrics
        try:
            yield
        finally:
            await state.stop()

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/livez", livez),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/api/health", api_health),
            Route("/api/status", api_status),
            Route("/api/stats", api_stats),
            Route("/api/events", api_events),
        ],
        exception_handlers={BadRequest: bad_request, PokervodDBError: unavailable},
        lifespan=lifespan,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))]
        if allowed_hosts
        else None,
    )
    app.state.serve = state
    app.state.registry = registry
    return app


def _int_param(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value: int | None = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}, not {raw[:40]!r}")
    return value
