"""What `pokervod-db serve` knows about the database, and how often it asks.

Probes and the JSON API share single-flight caches (a storm of probes runs one check, not a
thousand); the figures of ``/metrics`` and the status page come from a `Snapshot` that a
background task refreshes every ``collect_interval_s``, so a scrape never queries the database.
Everything here reads: the agent is used only for its read operations, and the health report
comes from `check_health` directly (the agent's `health` would store an event on a change).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from pokervod_db.agent import DatabaseAgent
from pokervod_db.backup import BackupInfo, list_backups
from pokervod_db.errors import PokervodDBError, sqlstate
from pokervod_db.events import Event, EventType, read_events
from pokervod_db.health import HealthReport, MigrationStatus, check_health
from pokervod_db.settings import SCHEMA, Settings
from pokervod_db.stats import DatabaseStats

log = logging.getLogger(__name__)

T = TypeVar("T")

PAGE_TOP_STATEMENTS = 10
"""Statements the status page shows (``/api/stats`` defaults to the CLI's 5)."""
NEWEST_EVENTS = 15


class SingleFlight(Generic[T]):
    """The last value of ``fetch`` while younger than ``max_age_s``; concurrent callers of a stale
    value share one run of ``fetch`` (shielded, so a caller giving up does not cancel it)."""

    def __init__(self, fetch: Callable[[], Awaitable[T]], max_age_s: float) -> None:
        self._fetch = fetch
        self.max_age_s = max_age_s
        self._value: T | None = None
        self._at = float("-inf")
        self._task: asyncio.Task[T] | None = None

    @property
    def value(self) -> T | None:
        return self._value

    async def _run(self) -> T:
        try:
            value = await self._fetch()
            self._value, self._at = value, time.monotonic()
            return value
        finally:
            self._task = None

    async def get(self, max_age_s: float | None = None) -> T:
        age = time.monotonic() - self._at
        if self._value is not None and age < (self.max_age_s if max_age_s is None else max_age_s):
            return self._value
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        return await asyncio.shield(self._task)

    async def cancel(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


@dataclass
class LastRun:
    """The newest backup or restore the event log knows of (success or failure)."""

    operation: str
    ok: bool
    at: datetime
    duration_s: float | None
    detail: str


@dataclass
class ReplicaLag:
    name: str
    lag_s: float | None


@dataclass
class Snapshot:
    """One collection of the database-side figures (what ``/metrics`` and ``/`` show)."""

    health: HealthReport | None = None
    stats: DatabaseStats | None = None
    backups: list[BackupInfo] = field(default_factory=list)
    backups_error: str | None = None
    events_by_type: dict[str, int] = field(default_factory=dict)
    newest_events: list[Event] = field(default_factory=list)
    last_runs: dict[str, LastRun] = field(default_factory=dict)
    replicas: list[ReplicaLag] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    collected_at: datetime | None = None
    duration_s: float = 0.0


def replica_lags(report: dict[str, Any]) -> list[ReplicaLag]:
    """Lag per replica from a health report's ``replicas`` list, when the report has one.

    Accepts the names the replica support may use (``name``/``url``/``database`` for the label,
    ``lag_s``/``lag_seconds``/``replay_lag_s`` for seconds); an entry without a lag is kept with
    None (reported as not measurable, never as 0).
    """
    entries = report.get("replicas")
    if not isinstance(entries, list):
        return []
    lags: list[ReplicaLag] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        name = next(
            (str(entry[k]) for k in ("name", "url", "database") if entry.get(k)), f"#{index}"
        )
        lag: float | None = None
        for key in ("lag_s", "lag_seconds", "replay_lag_s"):
            value = entry.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                lag = float(value)
                break
        lags.append(ReplicaLag(name=name, lag_s=lag))
    return lags


_EVENTS_BY_TYPE = text(f"SELECT type, count(*) FROM {SCHEMA}.agent_events GROUP BY type")
_MAX_EVENT_ID = text(f"SELECT coalesce(max(id), 0) FROM {SCHEMA}.agent_events")
# The newest completion or failure of each operation: failures are system.error events whose
# payload names the operation (see DatabaseAgent._report_failure).
_LAST_RUNS = text(
    f"""
    SELECT DISTINCT ON (op) op, type, payload, created_at
    FROM (
        SELECT id, type, payload, created_at,
               CASE WHEN type = :backup_done THEN 'backup'
                    WHEN type = :restore_done THEN 'restore'
                    ELSE payload->>'operation' END AS op
        FROM {SCHEMA}.agent_events
        WHERE type IN (:backup_done, :restore_done)
           OR (type = :error AND payload->>'operation' IN ('backup', 'restore'))
    ) AS runs
    ORDER BY op, id DESC
    """
)
_UNDEFINED_TABLE = "42P01"


class ServeState:
    """The database connection, caches and collector of one web application."""

    def __init__(
        self, settings: Settings, *, collect_interval_s: float = 5.0, ready_cache_s: float = 1.0
    ) -> None:
        self.configured = settings
        self.collect_interval_s = collect_interval_s
        self.agent = DatabaseAgent(settings)
        self.health = SingleFlight(self._health, ready_cache_s)
        self.status = SingleFlight(self.agent.get_migration_status, ready_cache_s)
        self._stats: dict[int, SingleFlight[DatabaseStats]] = {}
        self.snapshot = Snapshot()
        self.collected = asyncio.Event()
        self._collector: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._started = False
        self._on_start: list[Callable[[ServeState], None]] = []
        self._on_stop: list[Callable[[], None]] = []
        # Each /api/events call opens a connection of its own (read_events): two at a time.
        self._event_readers = asyncio.Semaphore(2)

    @property
    def settings(self) -> Settings:
        """The settings in use (pointing at the embedded server once started)."""
        return self.agent.settings

    @property
    def agent_ready(self) -> bool:
        """True once the engine exists (the pool can be read)."""
        return self._started

    def on_start(self, hook: Callable[[ServeState], None], stop: Callable[[], None]) -> None:
        """Run ``hook`` once the engine exists, ``stop`` at shutdown (metrics wiring)."""
        self._on_start.append(hook)
        self._on_stop.append(stop)

    async def start(self) -> None:
        """Build the engine and start the collector (idempotent; also run lazily on the first
        request, because a mounted application does not get its own lifespan)."""
        if self._started:
            return
        async with self._start_lock:
            if self._started:
                return
            await self.agent.initialize()
            for hook in self._on_start:
                hook(self)
            self._collector = asyncio.create_task(self._collect_forever())
            self._started = True

    async def stop(self) -> None:
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(BaseException):
                await self._collector
            self._collector = None
        await self.health.cancel()
        await self.status.cancel()
        for cache in self._stats.values():
            await cache.cancel()
        for stop in self._on_stop:
            stop()
        await self.agent.close()
        self._started = False

    # --- the operations behind the endpoints -----------------------------------------------

    async def _health(self) -> HealthReport:
        return await check_health(self.settings, self.agent.engine)

    def stats(self, top: int) -> SingleFlight[DatabaseStats]:
        """Statistics with ``top`` statements, cached for one collection interval."""
        cache = self._stats.get(top)
        if cache is None:
            cache = self._stats[top] = SingleFlight(
                lambda: self.agent.get_database_stats(top=top), self.collect_interval_s
            )
        return cache

    async def migration_status(self) -> MigrationStatus:
        return await self.status.get()

    async def events(self, since_id: int, types: list[str] | None, limit: int) -> list[Event]:
        async with self._event_readers:
            found = await read_events(self.settings, since_id=since_id, types=types, wait_s=2.0)
        return found[:limit]

    # --- the collector ------------------------------------------------------------------------

    async def _collect_forever(self) -> None:
        while True:
            try:
                await self.collect()
            except asyncio.CancelledError:
                raise
            except Exception:  # the collector must outlive any surprise; the page says it failed
                log.exception("collecting the database figures failed")
            self.collected.set()
            await asyncio.sleep(self.collect_interval_s)

    async def collect(self) -> Snapshot:
        """Gather every figure once; what fails is named in ``errors`` and left empty."""
        started = time.perf_counter()
        snap = Snapshot()
        bound = self.settings.connect_timeout + 2
        try:
            async with asyncio.timeout(bound + 1):
                snap.health = await self.health.get(self.collect_interval_s / 2)
        except TimeoutError:
            snap.errors.append(f"health: no answer within {bound + 1:.0f} s")
        try:
            snap.backups = await asyncio.to_thread(list_backups, self.settings)
        except (OSError, PokervodDBError) as exc:
            snap.backups_error = f"cannot list {self.settings.backup_dir}: {exc}"
        if snap.health is not None:
            snap.replicas = replica_lags(snap.health.to_dict())
        if snap.health is not None and snap.health.reachable:
            try:
                async with asyncio.timeout(bound + 10):
                    snap.stats = await self.stats(PAGE_TOP_STATEMENTS).get(
                        self.collect_interval_s / 2
                    )
                    await self._collect_events(snap)
            except (SQLAlchemyError, OSError, TimeoutError, PokervodDBError) as exc:
                snap.errors.append(f"statistics: {exc or type(exc).__name__}")
        snap.collected_at = datetime.now(UTC)
        snap.duration_s = time.perf_counter() - started
        self.snapshot = snap
        return snap

    async def _collect_events(self, snap: Snapshot) -> None:
        params = {
            "backup_done": str(EventType.DB_BACKUP_COMPLETED),
            "restore_done": str(EventType.DB_RESTORE_COMPLETED),
            "error": str(EventType.SYSTEM_ERROR),
        }
        try:
            async with self.agent.engine.connect() as conn:
                by_type = (await conn.execute(_EVENTS_BY_TYPE)).all()
                newest_id = int((await conn.execute(_MAX_EVENT_ID)).scalar_one())
                runs = (await conn.execute(_LAST_RUNS, params)).all()
                await conn.rollback()
        except SQLAlchemyError as exc:
            if sqlstate(exc) == _UNDEFINED_TABLE:
                return  # below revision 003: no event log yet
            raise
        snap.events_by_type = {str(t): int(n) for t, n in by_type}
        for op, kind, payload, at in runs:
            ok = kind != str(EventType.SYSTEM_ERROR)
            duration = payload.get("duration_s") if isinstance(payload, dict) else None
            detail = str(payload.get("file") or "") if ok else str(payload.get("error") or "failed")
            snap.last_runs[str(op)] = LastRun(
                operation=str(op),
                ok=ok,
                at=at,
                duration_s=float(duration) if isinstance(duration, int | float) else None,
                detail=detail,
            )
        if newest_id:
            recent = await read_events(
                self.settings, since_id=max(0, newest_id - NEWEST_EVENTS), wait_s=2.0
            )
            snap.newest_events = list(reversed(recent[-NEWEST_EVENTS:]))
