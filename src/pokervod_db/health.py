"""Is the database usable? Migration status and the health report of the agent and the CLI.

`migration_status` answers "which revision, what is pending, does it drift from the models";
`check_health` adds reachability, latency, server version and role, connection usage, the pool
and slow queries. An unreachable server is reported (not raised) within ``connect_timeout`` plus
a second or two: the report is what an operator or an orchestrator's probe reads.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from pokervod_db import embedded, migrate
from pokervod_db.database import maintenance_connection
from pokervod_db.errors import DatabaseUnavailableError, MigrationError, PokervodDBError, translate
from pokervod_db.monitoring import query_stats
from pokervod_db.settings import SCHEMA, Settings

CONNECTION_WARN_RATIO = 0.9
"""Server connections in use above this share of ``max_connections`` make a failed check."""


@dataclass
class MigrationStatus:
    """Where the database stands against the migration scripts of this code."""

    database: str
    current: str | None
    head: str
    pending: list[str]
    at_head: bool
    drift: list[str]
    drift_checked: bool
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def migration_status(settings: Settings) -> MigrationStatus:
    """Current and head revision, pending revisions in order, and drift from the models.

    Drift is compared only at head (``drift_checked``): below head the pending migrations are the
    difference. A revision unknown to this code (a newer release migrated the database) is
    reported in ``note`` with nothing pending. Synchronous (Alembic): run it in a thread.
    """
    settings = embedded.start(settings)
    head = migrate.head_revision()
    note: str | None = None
    try:
        with maintenance_connection(settings, application_name="pokervod-db status") as conn:
            current = migrate.current_on(conn)
            try:
                pending = migrate.pending_revisions(current)
            except MigrationError:
                pending = []
                note = (
                    f"revision {current} is not known to this code: a newer release migrated "
                    "this database; upgrade pokervod-db"
                )
            at_head = current == head
            drift = migrate.drift_on(conn) if at_head else []
    except MigrationError:
        raise
    except (PokervodDBError, DBAPIError, OSError) as exc:
        reason = exc.reason if isinstance(exc, PokervodDBError) else translate(exc).reason
        raise DatabaseUnavailableError(
            f"cannot read the migration status of {settings.masked_url()}: {reason}",
            reason=reason,
        ) from exc
    return MigrationStatus(
        database=settings.masked_url(),
        current=current,
        head=head,
        pending=pending,
        at_head=at_head,
        drift=drift,
        drift_checked=at_head,
        note=note,
    )


@dataclass
class Check:
    """One line of the health report. A failed critical check makes the database unhealthy."""

    name: str
    ok: bool
    detail: str
    critical: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PoolStatus:
    """The connection pool of the engine that ran the check (this process only)."""

    size: int
    in_use: int
    idle: int
    overflow: int
    max_overflow: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class HealthReport:
    """The detailed health of one database; ``healthy`` is what `health_check()` returns."""

    healthy: bool
    database: str
    reachable: bool
    latency_ms: float | None = None
    server_version: str | None = None
    role: str | None = None
    current_revision: str | None = None
    head_revision: str | None = None
    at_head: bool | None = None
    pending: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    connections: int | None = None
    max_connections: int | None = None
    pool: PoolStatus | None = None
    slow_queries: int = 0
    slow_statements: int | None = None
    checks: list[Check] = field(default_factory=list)
    error: str | None = None
    newest_verified_backup_age_s: float | None = None
    replicas: list[dict[str, Any]] = field(default_factory=list)
    replication_slots: list[dict[str, Any]] = field(default_factory=list)
    archiver: dict[str, Any] | None = None
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def failed(self) -> list[str]:
        """Names of the failed critical checks."""
        return [c.name for c in self.checks if c.critical and not c.ok]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pool"] = self.pool.to_dict() if self.pool else None
        data["checks"] = [c.to_dict() for c in self.checks]
        data["checked_at"] = self.checked_at.isoformat()
        return data


def pool_status(engine: AsyncEngine) -> PoolStatus | None:
    """In use / idle / overflow of the engine's queue pool (None for pools without counters)."""
    pool: Any = engine.sync_engine.pool
    if not all(hasattr(pool, n) for n in ("size", "checkedin", "checkedout", "overflow")):
        return None
    return PoolStatus(
        size=int(pool.size()),
        in_use=int(pool.checkedout()),
        idle=int(pool.checkedin()),
        overflow=max(0, int(pool.overflow())),
        max_overflow=int(getattr(pool, "_max_overflow", 0)),
    )


_SERVER = text(
    "SELECT current_setting('server_version'), pg_is_in_recovery(), "
    "current_setting('max_connections')::int, "
    "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
)


async def _slow_statements(conn: Any, threshold_ms: float) -> int | None:
    from pokervod_db.monitoring import top_statements

    top = await top_statements(conn, limit=1000)
    if not top.available:
        return None
    return sum(1 for s in top.statements if s.mean_ms >= threshold_ms)


async def check_health(settings: Settings, engine: AsyncEngine) -> HealthReport:
    """Probe the database of ``engine`` (built from ``settings``) and report, never raise for an
    unreachable or unmigrated database."""
    database = settings.masked_url()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(settings.connect_timeout + 2), engine.connect() as conn:
            connected = time.perf_counter()
            await conn.execute(text("SELECT 1"))
            latency_ms = (time.perf_counter() - connected) * 1000.0
            version, in_recovery, max_conn, conn_count = (await conn.execute(_SERVER)).one()
            slow_statements = await _slow_statements(conn, settings.slow_query_ms)
            await conn.rollback()
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        waited = time.perf_counter() - started
        reason = (
            f"no answer within {waited:.1f} s"
            if isinstance(exc, TimeoutError)
            else translate(exc).reason
        )
        error = f"cannot connect to {database}: {reason}"
        return HealthReport(
            healthy=False,
            database=database,
            reachable=False,
            checks=[Check("reachable", False, error)],
            error=error,
        )

    role = "replica" if in_recovery else "primary"
    report = HealthReport(
        healthy=False,
        database=database,
        reachable=True,
        latency_ms=round(latency_ms, 3),
        server_version=str(version),
        role=role,
        connections=int(conn_count),
        max_connections=int(max_conn),
        pool=pool_status(engine),
        slow_statements=slow_statements,
    )
    stats = query_stats(engine)
    report.slow_queries = stats.slow_queries if stats is not None else 0
    checks = report.checks
    checks.append(
        Check(
            "reachable",
            True,
            f"{latency_ms:.1f} ms round trip; PostgreSQL {str(version).split()[0]}, {role}",
        )
    )
    try:
        status = await asyncio.to_thread(migration_status, settings)
    except PokervodDBError as exc:
        checks.append(Check("migrations", False, str(exc)))
        report.error = str(exc)
    else:
        report.current_revision = status.current
        report.head_revision = status.head
        report.at_head = status.at_head
        report.pending = status.pending
        report.drift = status.drift
        if status.at_head:
            checks.append(Check("migrations", True, f"at head {status.head}"))
        elif status.note:
            checks.append(Check("migrations", False, status.note))
        else:
            checks.append(
                Check(
                    "migrations",
                    False,
                    f"at {status.current or '(empty)'}, {len(status.pending)} pending "
                    f"({', '.join(status.pending)}); run `pokervod-db upgrade`",
                )
            )
        if status.drift_checked:
            checks.append(
                Check(
                    "drift",
                    not status.drift,
                    "the database matches the models"
                    if not status.drift
                    else f"{len(status.drift)} differences from the models: {status.drift[0]}"
                    + (" …" if len(status.drift) > 1 else "")
                    + "; see `pokervod-db check`",
                )
            )
    used = int(conn_count)
    checks.append(
        Check(
            "connections",
            used < CONNECTION_WARN_RATIO * int(max_conn),
            f"{used} of {max_conn} server connections in use",
            critical=False,
        )
    )
    if report.pool is not None:
        p = report.pool
        checks.append(
            Check(
                "pool",
                True,
                f"{p.in_use} in use, {p.idle} idle, {p.overflow} overflow "
                f"(size {p.size}, max overflow {p.max_overflow})",
                critical=False,
            )
        )
    server_part = (
        f"; {slow_statements} statements with a mean above it on the server"
        if slow_statements is not None
        else ""
    )
    checks.append(
        Check(
            "slow queries",
            report.slow_queries == 0 and not slow_statements,
            f"{report.slow_queries} in this process at or above {settings.slow_query_ms:g} ms"
            f"{server_part}",
            critical=False,
        )
    )
    checks.append(await _backup_check(settings, report))
    checks.extend(await replication_checks(settings, engine, report))
    checks.append(await _invalid_index_check(settings, engine))
    report.healthy = not report.failed
    return report


async def _backup_check(settings: Settings, report: HealthReport) -> Check:
    """Age of the newest verified backup in ``BACKUP_DIR`` (not critical: the database works)."""
    from pokervod_db.backup import newest_verified_age_s

    try:
        age = await asyncio.to_thread(newest_verified_age_s, settings)
    except OSError as exc:
        return Check("backup", False, f"cannot read {settings.backup_dir}: {exc}", critical=False)
    report.newest_verified_backup_age_s = round(age, 1) if age is not None else None
    limit_h = settings.backup_max_verified_age_h
    if age is None:
        return Check(
            "backup",
            False,
            f"no verified backup in {settings.backup_dir}; run `pokervod-db backup` and "
            "`pokervod-db backup verify FILE`",
            critical=False,
        )
    hours = age / 3600
    return Check(
        "backup",
        hours <= limit_h,
        f"newest verified backup taken {hours:.1f} h ago (limit {limit_h:g} h)",
        critical=False,
    )


# --- replicas, replication slots and the WAL archiver (non-critical) ------------------------

_ARCHIVER = text(
    "SELECT current_setting('archive_mode'), archived_count, last_archived_wal, "
    "last_archived_time, failed_count, last_failed_wal, last_failed_time "
    "FROM pg_stat_archiver"
)


async def replication_checks(
    settings: Settings, engine: AsyncEngine, report: HealthReport
) -> list[Check]:
    """Replicas (lag), the primary's replication slots and its WAL archiver, as checks that do
    not make the database unhealthy: reads fall back to the primary, writes go on."""
    from pokervod_db.replicas import SLOTS_SQL

    checks = [await _replicas_check(settings, report)]
    try:
        async with asyncio.timeout(settings.connect_timeout + 2), engine.connect() as conn:
            in_recovery = (await conn.execute(text("SELECT pg_is_in_recovery()"))).scalar_one()
            slot_rows = [] if in_recovery else list(await conn.execute(text(SLOTS_SQL)))
            archiver = (await conn.execute(_ARCHIVER)).one()
            await conn.rollback()
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else str(translate(exc))
        checks.append(Check("replication", False, f"cannot read: {reason}", critical=False))
        return checks
    if not in_recovery:
        checks.append(_slots_check(slot_rows, report))
    checks.append(_archiver_check(settings, archiver, report))
    return checks


async def _replicas_check(settings: Settings, report: HealthReport) -> Check:
    from pokervod_db.database import create_engine
    from pokervod_db.routing import replica_state

    urls = settings.replica_url_list()
    if not urls:
        return Check("replicas", True, "none configured (DATABASE_REPLICA_URLS)", critical=False)
    engines = [
        create_engine(settings.with_url(u), application_name="pokervod-db health") for u in urls
    ]
    try:
        states = await asyncio.gather(
            *(
                replica_state(
                    e, max_lag_s=settings.replica_max_lag_s, timeout_s=settings.connect_timeout
                )
                for e in engines
            )
        )
    finally:
        for e in engines:
            await e.dispose()
    report.replicas = [
        {"database": s.database, "reachable": s.reachable, "lag_s": s.lag_s, "ok": s.ok}
        for s in states
    ]
    bad = [s for s in states if not s.ok]
    detail = "; ".join(f"{s.database}: {s.detail}" for s in states)
    summary = f"{len(states) - len(bad)} of {len(states)} usable for reads"
    if len(bad) == len(states):
        summary += ", reads go to the primary"
    return Check("replicas", not bad, f"{summary} ({detail})", critical=False)


def _slots_check(rows: list[Any], report: HealthReport) -> Check:
    from pokervod_db.replicas import slot_rows_to_status

    slots = slot_rows_to_status(rows)
    report.replication_slots = [s.to_dict() for s in slots]
    if not slots:
        return Check("replication slots", True, "none", critical=False)
    holding = [s for s in slots if s.holds_wal]
    if not holding:
        return Check(
            "replication slots", True, f"{len(slots)} slots, all streaming", critical=False
        )
    first = holding[0]
    kept = f"{first.retained_bytes / 2**20:,.0f} MiB" if first.retained_bytes is not None else "?"
    why = "inactive" if not first.active else "far behind"
    return Check(
        "replication slots",
        False,
        f"slot {first.slot} is {why} and holds {kept} of WAL on the primary; start its "
        f"replica or drop the slot (SELECT pg_drop_replication_slot('{first.slot}'))",
        critical=False,
    )


def _archiver_check(settings: Settings, row: Any, report: HealthReport) -> Check:
    mode, count, last_wal, last_time, failed, failed_wal, failed_time = row
    report.archiver = {
        "archive_mode": mode,
        "archived_count": int(count),
        "last_archived_wal": last_wal,
        "last_archived_time": last_time.isoformat() if last_time else None,
        "failed_count": int(failed),
        "last_failed_wal": failed_wal,
        "last_failed_time": failed_time.isoformat() if failed_time else None,
    }
    if mode == "off":
        return Check(
            "archiver",
            not settings.backup_wal,
            "WAL archiving is off"
            + ("; BACKUP_WAL=true needs a restart of the server" if settings.backup_wal else ""),
            critical=False,
        )
    failing = failed and (last_time is None or (failed_time and failed_time > last_time))
    if failing:
        return Check(
            "archiver",
            False,
            f"archiving {failed_wal} failed at {failed_time:%Y-%m-%d %H:%M:%S %Z} "
            f"({failed} failures); see the server log",
            critical=False,
        )
    if last_wal is None:
        return Check("archiver", True, "on; nothing archived yet", critical=False)
    age = (datetime.now(UTC) - last_time).total_seconds()
    return Check(
        "archiver",
        True,
        f"last archived {last_wal} {age:.0f} s ago ({count} in all, {failed} failures)",
        critical=False,
    )


_INVALID_INDEXES = text(
    "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :schema AND NOT i.indisvalid ORDER BY 1"
)


async def _invalid_index_check(settings: Settings, engine: AsyncEngine) -> Check:
    """Indexes left INVALID by a failed concurrent build: unused by queries, still written."""
    try:
        async with asyncio.timeout(settings.connect_timeout + 2), engine.connect() as conn:
            rows = (await conn.execute(_INVALID_INDEXES, {"schema": SCHEMA})).scalars().all()
            await conn.rollback()
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        return Check("indexes", False, f"cannot read: {translate(exc)}", critical=False)
    if not rows:
        return Check("indexes", True, "no invalid index", critical=False)
    return Check(
        "indexes",
        False,
        f"{len(rows)} invalid (a failed concurrent build): {', '.join(rows)}; run the upgrade "
        "again (it rebuilds them) or DROP INDEX CONCURRENTLY",
        critical=False,
    )
