"""The agents: `BaseAgent` (events, correlation, errors) and `DatabaseAgent`, block G.

The agent is how the orchestrator and the other blocks drive and watch the database. It holds no
logic of its own: migrations are `pokervod_db.migrate`, status and health `pokervod_db.health`,
statistics `pokervod_db.stats`, backups `pokervod_db.backup`. What it adds is the event for each operation, stored durably
(other processes receive it with `pokervod_db.events.listen`) and published on its in-process bus
after the commit, never before.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from sqlalchemy import event as sa_event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from pokervod_db import backup, embedded, migrate
from pokervod_db.backup import BackupResult, ProgressFn, RestoreResult, VerifyResult
from pokervod_db.database import Database
from pokervod_db.errors import (
    DatabaseUnavailableError,
    PokervodDBError,
    SQLState,
    sqlstate,
    translate,
)
from pokervod_db.events import Event, EventBus, EventType, error_payload, store_event
from pokervod_db.health import Check, HealthReport, MigrationStatus, check_health, migration_status
from pokervod_db.monitoring import TopStatements, top_statements
from pokervod_db.settings import Settings
from pokervod_db.stats import DatabaseStats, TableStats, database_stats, table_stats

log = logging.getLogger(__name__)

_correlation_id: ContextVar[uuid.UUID | None] = ContextVar("pokervod_correlation_id", default=None)
_PENDING = "pokervod_pending_events"
_HOOKED = "pokervod_event_hooks"


def current_correlation_id() -> uuid.UUID | None:
    """The correlation id of the current task (set by `BaseAgent.correlation`)."""
    return _correlation_id.get()


class BaseAgent:
    """What every block's agent has: a block id, an event bus, correlation ids, error reports.

    Subclasses that can store events durably override `_store`; `emit` then stores each event
    in its own transaction (or in the caller's, with ``session=``) before publishing it.
    """

    block_id: ClassVar[str] = "base"

    def __init__(self, *, bus: EventBus | None = None) -> None:
        self.bus = bus if bus is not None else EventBus()
        self._publishing: set[asyncio.Task[None]] = set()

    async def initialize(self) -> None:
        """Acquire what the agent needs (idempotent)."""

    async def close(self) -> None:
        """Wait for pending publications and release resources."""
        await self.drain()

    async def __aenter__(self) -> Self:
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def health_check(self) -> bool:
        """True when the agent can do its work."""
        return True

    @property
    def correlation_id(self) -> uuid.UUID | None:
        return _correlation_id.get()

    @contextmanager
    def correlation(self, correlation_id: uuid.UUID | None = None) -> Iterator[uuid.UUID]:
        """Tag every event emitted in the block (in this task) with one correlation id."""
        cid = correlation_id or uuid.uuid4()
        token = _correlation_id.set(cid)
        try:
            yield cid
        finally:
            _correlation_id.reset(token)

    def make_event(
        self,
        event_type: str,
        payload: Mapping[str, Any] | None = None,
        *,
        parent: Event | uuid.UUID | None = None,
    ) -> Event:
        parent_id = parent.event_id if isinstance(parent, Event) else parent
        correlation = _correlation_id.get()
        if correlation is None and isinstance(parent, Event):
            correlation = parent.correlation_id
        return Event(
            type=event_type,
            payload=payload or {},
            source_block=self.block_id,
            correlation_id=correlation,
            parent_event_id=parent_id,
        )

    async def emit(
        self,
        event_type: str,
        payload: Mapping[str, Any] | None = None,
        *,
        session: AsyncSession | None = None,
        parent: Event | uuid.UUID | None = None,
        durable: bool = True,
    ) -> Event:
        """Store (when ``durable``), notify other processes, and publish on the bus.

        With ``session``, the event is stored in that session's transaction and published on the
        bus only after it commits (dropped if it rolls back). Otherwise it is stored in a
        transaction of its own; if that fails (database down, table missing) the event is still
        published in-process and the failure is logged. Returns the event (``id`` set if stored).
        """
        event = self.make_event(event_type, payload, parent=parent)
        if session is not None:
            stored = await store_event(session, event)
            self._publish_after_commit(session, stored)
            return stored
        if durable:
            event = await self._store(event)
        await self.bus.emit(event)
        return event

    async def _store(self, event: Event) -> Event:
        return event

    async def on_error(
        self,
        error: BaseException,
        *,
        operation: str,
        payload: Mapping[str, Any] | None = None,
        durable: bool = True,
    ) -> Event:
        """Report an unexpected failure of ``operation`` as a ``system.error`` event."""
        log.error("%s failed: %s", operation, error, exc_info=error)
        return await self.emit(
            EventType.SYSTEM_ERROR,
            error_payload(error, operation=operation, **(payload or {})),
            durable=durable,
        )

    async def drain(self) -> None:
        """Wait until events queued for publication after a commit have been published."""
        while self._publishing:
            await asyncio.gather(*list(self._publishing), return_exceptions=True)

    # After-commit publication (advanced-alchemy's pattern: queue in session.info, run after commit).

    def _publish_after_commit(self, session: AsyncSession, event: Event) -> None:
        sync = session.sync_session
        sync.info.setdefault(_PENDING, []).append((self, event))
        if not sync.info.get(_HOOKED):
            sa_event.listen(sync, "after_commit", _after_commit)
            sa_event.listen(sync, "after_rollback", _after_rollback)
            sync.info[_HOOKED] = True

    def _spawn_publish(self, event: Event) -> None:
        task = asyncio.get_running_loop().create_task(self.bus.emit(event))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)


def _after_commit(session: Session) -> None:
    # Runs inside AsyncSession.commit on the event loop's thread: schedule, don't await.
    for agent, event in session.info.pop(_PENDING, []):
        agent._spawn_publish(event)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


@dataclass
class MigrationResult:
    """What `DatabaseAgent.run_migration` did; ``success`` False comes with ``error``."""

    direction: str
    success: bool
    from_version: str | None
    version: str | None
    applied: list[str] = field(default_factory=list)
    error: str | None = None
    duration_ms: float = 0.0
    backup: str | None = None  # the archive taken first (``backup_first=True``)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def event_payload(self) -> dict[str, Any]:
        """The ``db.migration.completed`` payload: the PRD's ``version, direction, success`` and
        ``from_version, applied`` (plus ``error`` on failure)."""
        payload: dict[str, Any] = {
            "version": self.version,
            "direction": self.direction,
            "success": self.success,
            "from_version": self.from_version,
            "applied": self.applied,
        }
        if self.error is not None:
            payload["error"] = self.error
        if self.backup is not None:
            payload["backup"] = self.backup
        return payload


class DatabaseAgent(BaseAgent):
    """Block G's agent: migrations, status, health and statistics, each reported as an event.

    ``async with DatabaseAgent(settings) as agent:`` starts the embedded server when no
    ``DATABASE_URL`` is set and builds its own `Database`; `close` disposes of it. A service
    that already has a `Database` passes it (``DatabaseAgent(settings, database=db)``), so the
    service holds one pool; the agent then leaves disposing of it to its owner.
    """

    block_id: ClassVar[str] = "G"

    def __init__(
        self, settings: Settings, *, bus: EventBus | None = None, database: Database | None = None
    ) -> None:
        super().__init__(bus=bus)
        self._configured = settings
        self._settings: Settings | None = None
        self._database = database
        self._owns_database = database is None
        self._last_healthy: bool | None = None

    async def initialize(self) -> None:
        if self._settings is not None and self._database is not None:
            return
        settings = await asyncio.to_thread(embedded.start, self._configured)
        if self._database is None:
            self._database = Database.from_settings(settings, application_name="pokervod-db agent")
        self._settings = settings

    async def close(self) -> None:
        await super().close()
        if self._owns_database and self._database is not None:
            await self._database.dispose()
            self._database = None

    @property
    def database(self) -> Database:
        """The engine and sessions the agent uses (its own, or the one it was given)."""
        if self._database is None:
            raise RuntimeError("DatabaseAgent is not initialized; await agent.initialize()")
        return self._database

    @property
    def settings(self) -> Settings:
        """The settings in use (pointing at the embedded server once initialized)."""
        return self._settings or self._configured

    @property
    def engine(self) -> AsyncEngine:
        return self.database.engine

    @property
    def session_factory(self) -> async_sessionmaker[AsyncSession]:
        return self.database.session_factory

    async def _reset_pool(self) -> None:
        # Cached statement plans and type caches of pooled connections may refer to tables a
        # migration or restore replaced; disposing empties the pool (the engine stays usable).
        if self._database is not None:
            await self._database.engine.dispose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work; events emitted with ``session=`` are published once it committed."""
        await self.initialize()
        async with self.session_factory() as session, session.begin():
            yield session
        await self.drain()

    async def _store(self, event: Event) -> Event:
        try:
            await self.initialize()
            async with (
                asyncio.timeout(self.settings.connect_timeout + 2),
                self.session_factory() as session,
                session.begin(),
            ):
                return await store_event(session, event)
        except (SQLAlchemyError, OSError, TimeoutError, PokervodDBError) as exc:
            if sqlstate(exc) == SQLState.UNDEFINED_TABLE:
                # Expected below revision 003 (a fresh database, a downgrade): nothing to store in.
                log.info("event %s not stored: the database has no agent_events table", event.type)
            else:
                reason = str(translate(exc)) if isinstance(exc, SQLAlchemyError) else str(exc)
                log.warning(
                    "event %s published in this process only, not stored: %s",
                    event.type,
                    reason or type(exc).__name__,
                )
            return event

    # --- operations: migrations, status, health, statistics -----------------------------------

    async def run_migration(
        self, direction: str = "upgrade", target: str | None = None, *, backup_first: bool = False
    ) -> MigrationResult:
        """Upgrade (to head by default) or downgrade (one step by default) and report it.

        The maintenance lock (taken by the migration environment) keeps two runners from
        overlapping. An expected failure (lock held, server down, a failing migration) returns
        ``success=False`` with the error and leaves the revision unchanged; either way a
        ``db.migration.completed`` event is emitted. With ``backup_first``, a backup tagged
        ``pre-<direction>-<revision>`` is taken when there is something to migrate; if it fails,
        the migration does not run.
        """
        if direction not in ("upgrade", "downgrade"):
            raise ValueError(f"direction must be 'upgrade' or 'downgrade', not {direction!r}")
        await self.initialize()
        started = time.perf_counter()
        settings = self.settings
        taken: str | None = None
        if backup_first:
            try:
                taken = await self._backup_before_migration(direction, target)
            except PokervodDBError as exc:
                failed = await self._failed(
                    direction, f"backup before the {direction} failed: {exc}"
                )
                failed.duration_ms = round((time.perf_counter() - started) * 1000.0, 1)
                await self.emit(EventType.DB_MIGRATION_COMPLETED, failed.event_payload())
                return failed
        unreachable = False
        try:
            if direction == "upgrade":
                outcome = await asyncio.to_thread(migrate.upgrade, settings, target or "head")
            else:
                outcome = await asyncio.to_thread(migrate.downgrade, settings, target or "-1")
            result = MigrationResult(
                direction=direction,
                success=True,
                from_version=outcome.from_revision,
                version=outcome.to_revision,
                applied=outcome.applied,
            )
        except PokervodDBError as exc:
            # Unreachable: reading the revision or storing the event would each wait for the
            # connect timeout again (15 s instead of 5 before the one-line failure).
            unreachable = isinstance(exc, DatabaseUnavailableError)
            result = await self._failed(direction, str(exc), read_version=not unreachable)
        except Exception as exc:
            failed = await self._failed(direction, str(exc))
            await self.emit(EventType.DB_MIGRATION_COMPLETED, failed.event_payload())
            await self.on_error(exc, operation=f"migration {direction}")
            raise
        finally:
            await self._reset_pool()
        result.duration_ms = round((time.perf_counter() - started) * 1000.0, 1)
        result.backup = taken
        if result.success:
            log.info("migration %s: %s -> %s", direction, result.from_version, result.version)
        else:
            log.warning("migration %s failed: %s", direction, result.error)
        await self.emit(
            EventType.DB_MIGRATION_COMPLETED, result.event_payload(), durable=not unreachable
        )
        return result

    async def _backup_before_migration(self, direction: str, target: str | None) -> str | None:
        """Back up when the migration has work to do; the archive's path, or None if skipped."""
        current = await asyncio.to_thread(migrate.current, self.settings)
        if current is None:
            return None  # an empty database: nothing to lose
        if direction == "upgrade" and (target or "head") == "head":
            if not await asyncio.to_thread(migrate.pending_revisions, current):
                return None
        result = await self.backup_database(tag=f"pre-{direction}-{current}")
        return str(result.file)

    async def _failed(
        self, direction: str, error: str, *, read_version: bool = True
    ) -> MigrationResult:
        """A failed run: the revision is unchanged, so it is both the start and the end."""
        version = None
        if read_version:
            try:
                version = await asyncio.to_thread(migrate.current, self.settings)
            except PokervodDBError:
                version = None
        return MigrationResult(direction, False, version, version, error=error)

    async def get_migration_status(self) -> MigrationStatus:
        """Current and head revision, pending revisions, at head or not, drift from the models."""
        await self.initialize()
        return await asyncio.to_thread(migration_status, self.settings)

    async def health(self) -> HealthReport:
        """The detailed health report; a change healthy ↔ unhealthy emits ``db.health.changed``."""
        try:
            await self.initialize()
        except PokervodDBError as exc:
            report = HealthReport(
                healthy=False,
                database=self.settings.masked_url(),
                reachable=False,
                checks=[Check("reachable", False, str(exc))],
                error=str(exc),
            )
        else:
            report = await check_health(self.settings, self.engine)
        previous, self._last_healthy = self._last_healthy, report.healthy
        if previous is not None and previous != report.healthy:
            await self.emit(
                EventType.DB_HEALTH_CHANGED,
                {
                    "healthy": report.healthy,
                    "previous": previous,
                    "failed_checks": report.failed,
                    "error": report.error,
                },
                # An unreachable server cannot store the event; don't wait for it to try.
                durable=report.reachable,
            )
        return report

    async def health_check(self) -> bool:
        """True when the database is reachable, at head and without drift."""
        return (await self.health()).healthy

    async def get_table_stats(self, *, exact: bool = False) -> dict[str, TableStats]:
        """`TableStats` for every table of the schema (``exact`` adds ``count(*)``)."""
        await self.initialize()
        async with self.engine.connect() as conn:
            return await table_stats(conn, exact=exact)

    async def get_database_stats(self, *, exact: bool = False, top: int = 10) -> DatabaseStats:
        """Table statistics plus index usage, cache hit ratios and the top statements."""
        await self.initialize()
        async with self.engine.connect() as conn:
            statements: TopStatements = await top_statements(conn, limit=top)
            return await database_stats(conn, exact=exact, top_statements=statements)

    # --- backup and restore (pokervod_db.backup) ----------------------------------------------

    async def backup_database(
        self,
        *,
        tag: str | None = None,
        fmt: str = "custom",
        compression: str | None = None,
        jobs: int = 1,
        upload: bool = True,
        progress: ProgressFn | None = None,
    ) -> BackupResult:
        """Back up schema ``pokervod`` and emit ``db.backup.completed``.

        A failure emits ``system.error`` (no archive is left) and raises the `PokervodDBError`.
        """
        await self.initialize()
        try:
            result = await asyncio.to_thread(
                backup.create_backup,
                self.settings,
                fmt=fmt,
                compression=compression,
                jobs=jobs,
                tag=tag,
                upload=upload,
                progress=progress,
            )
        except PokervodDBError as exc:
            await self._report_failure(exc, operation="backup")
            raise
        await self.emit(EventType.DB_BACKUP_COMPLETED, result.event_payload())
        return result

    async def restore_database(
        self,
        backup_file: str | Path,
        *,
        safety_backup: bool = True,
        progress: ProgressFn | None = None,
    ) -> RestoreResult:
        """Replace schema ``pokervod`` with the archive (atomically) and emit
        ``db.restore.completed``; a failure emits ``system.error`` and raises."""
        await self.initialize()
        try:
            result = await asyncio.to_thread(
                backup.restore_backup,
                self.settings,
                archive=Path(backup_file),
                safety_backup=safety_backup,
                progress=progress,
            )
        except PokervodDBError as exc:
            await self._report_failure(exc, operation="restore", payload={"file": str(backup_file)})
            raise
        finally:
            await self._reset_pool()
        await self.emit(EventType.DB_RESTORE_COMPLETED, result.event_payload())
        return result

    async def verify_backup(
        self, backup_file: str | Path, *, progress: ProgressFn | None = None
    ) -> VerifyResult:
        """Restore the archive into a scratch database and compare it with its manifest.

        A failed verification emits ``system.error`` (a backup that does not restore is an
        incident) and raises.
        """
        await self.initialize()
        try:
            return await asyncio.to_thread(
                backup.verify_backup, self.settings, Path(backup_file), progress=progress
            )
        except PokervodDBError as exc:
            await self._report_failure(
                exc, operation="backup verify", payload={"file": str(backup_file)}
            )
            raise

    async def _report_failure(
        self, error: PokervodDBError, *, operation: str, payload: Mapping[str, Any] | None = None
    ) -> None:
        # An expected failure: one line in the log and the event, no traceback.
        log.warning("%s failed: %s", operation, error)
        await self.emit(
            EventType.SYSTEM_ERROR, error_payload(error, operation=operation, **(payload or {}))
        )
