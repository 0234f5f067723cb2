"""Query monitoring (PRD 12): statement logging switched by settings and slow-query detection.

The PRD's sketch stores the start time on the execution context; we do the same with
``time.perf_counter`` and keep per-engine counters that the health report and tests read.
Statements are logged shortened and without parameter values (they may hold personal data).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

from pokervod_db.settings import Settings

slow_log = logging.getLogger("pokervod_db.slow_query")
query_log = logging.getLogger("pokervod_db.query")

_MAX_STATEMENT_CHARS = 200
_WHITESPACE = re.compile(r"\s+")
_STATS: WeakKeyDictionary[Engine, QueryStats] = WeakKeyDictionary()


def shorten(statement: str, limit: int = _MAX_STATEMENT_CHARS) -> str:
    """One line of at most ``limit`` characters: whitespace folded, the rest cut with '…'."""
    flat = _WHITESPACE.sub(" ", statement).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass
class QueryStats:
    """Counters of one engine since it was created."""

    threshold_ms: float
    queries: int = 0
    slow_queries: int = 0
    slowest_ms: float = 0.0
    recent_slow: list[tuple[float, str]] = field(default_factory=list)

    def record(self, elapsed_ms: float, statement: str) -> None:
        self.queries += 1
        self.slowest_ms = max(self.slowest_ms, elapsed_ms)
        if elapsed_ms >= self.threshold_ms:
            self.slow_queries += 1
            short = shorten(statement)
            self.recent_slow.append((elapsed_ms, short))
            del self.recent_slow[:-20]
            slow_log.warning("slow query (%.1f ms): %s", elapsed_ms, short)


def install_query_monitor(engine: AsyncEngine, settings: Settings) -> QueryStats:
    """Attach timing listeners to ``engine``; the counters are `query_stats(engine)`."""
    stats = QueryStats(threshold_ms=settings.slow_query_ms)
    sync_engine = engine.sync_engine
    _STATS[sync_engine] = stats
    log_all = settings.echo_sql

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        conn.info.setdefault("query_start", []).append(time.perf_counter())

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _after(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        starts = conn.info.get("query_start")
        if not starts:
            return
        elapsed_ms = (time.perf_counter() - starts.pop()) * 1000.0
        stats.record(elapsed_ms, statement)
        if log_all:
            query_log.info("%.1f ms: %s", elapsed_ms, shorten(statement))

    @event.listens_for(sync_engine, "handle_error")
    def _error(context: Any) -> None:
        conn = context.connection
        if conn is not None and conn.info.get("query_start"):
            conn.info["query_start"].pop()

    return stats


def query_stats(engine: AsyncEngine) -> QueryStats | None:
    """The counters installed on ``engine`` by `install_query_monitor`, if any."""
    return _STATS.get(engine.sync_engine)
