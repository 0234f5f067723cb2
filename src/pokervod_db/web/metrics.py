"""Prometheus metrics of `pokervod-db serve`, all named ``pokervod_db_…`` in base units.

Two sources: live figures of this process (the pool, operation durations and errors from
`pokervod_db.instrumentation`) and the collector's `Snapshot` of database-side figures, which a
scrape only reads. Each application has its own registry, so several apps (and tests) coexist.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError

from pokervod_db import instrumentation
from pokervod_db.errors import translate
from pokervod_db.health import pool_status
from pokervod_db.monitoring import query_stats
from pokervod_db.web.service import ServeState

# Operations span sub-millisecond lookups to multi-second ingests.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def _gauge(name: str, doc: str, value: float | None, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    if value is not None:
        family.add_metric(list(labels.values()), value)
    return family


def error_kind(error: BaseException) -> str:
    """The `PokervodDBError` class an error is or translates to (a driver error becomes the
    class `translate` gives it); other exceptions (a caller's ValueError) keep their class."""
    if isinstance(error, SQLAlchemyError | OSError | TimeoutError):
        return type(translate(error)).__name__
    return type(error).__name__


class SnapshotCollector(Collector):
    """Yields the pool's live figures and the last collected snapshot on each scrape."""

    def __init__(self, state: ServeState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        yield from self._pool()
        yield from self._process_queries()
        yield from self._snapshot()

    def _pool(self) -> Iterator[Metric]:
        if not self.state.agent_ready:
            return
        status = pool_status(self.state.agent.engine)
        if status is None:
            return
        yield _gauge("pokervod_db_pool_size", "Connections the pool keeps open.", status.size)
        yield _gauge("pokervod_db_pool_in_use", "Pool connections checked out.", status.in_use)
        yield _gauge("pokervod_db_pool_idle", "Pool connections idle in the pool.", status.idle)
        yield _gauge(
            "pokervod_db_pool_overflow", "Connections open beyond the pool size.", status.overflow
        )
        yield _gauge(
            "pokervod_db_pool_max_overflow",
            "Connections allowed beyond the pool size.",
            status.max_overflow,
        )

    def _process_queries(self) -> Iterator[Metric]:
        if not self.state.agent_ready:
            return
        stats = query_stats(self.state.agent.engine)
        if stats is None:
            return
        slow = CounterMetricFamily(
            "pokervod_db_slow_queries",
            "Statements of this process at or above DB_SLOW_QUERY_MS since start.",
        )
        slow.add_metric([], stats.slow_queries)
        yield slow
        yield _gauge(
            "pokervod_db_slow_query_threshold_seconds",
            "DB_SLOW_QUERY_MS in seconds.",
            stats.threshold_ms / 1000.0,
        )

    def _snapshot(self) -> Iterator[Metric]:
        snap = self.state.snapshot
        health = snap.health
        yield _gauge(
            "pokervod_db_collect_timestamp_seconds",
            "When the database-side figures were last collected (Unix time).",
            snap.collected_at.timestamp() if snap.collected_at else None,
        )
        yield _gauge(
            "pokervod_db_collect_duration_seconds",
            "How long the last collection took.",
            snap.duration_s if snap.collected_at else None,
        )
        if health is None:
            return
        yield _gauge(
            "pokervod_db_up", "1 when the database answered the last check.", int(health.reachable)
        )
        yield _gauge(
            "pokervod_db_ready",
            "1 when the database is reachable, at head and without drift.",
            int(health.healthy),
        )
        yield _gauge(
            "pokervod_db_roundtrip_seconds",
            "Round trip of SELECT 1 in the last check.",
            health.latency_ms / 1000.0 if health.latency_ms is not None else None,
        )
        if health.at_head is not None:
            yield _gauge(
                "pokervod_db_migration_at_head",
                "1 when the database is at the head revision of this code.",
                int(health.at_head),
            )
            yield _gauge(
                "pokervod_db_migrations_pending", "Revisions not yet applied.", len(health.pending)
            )
            yield _gauge(
                "pokervod_db_schema_drift_differences",
                "Differences between the database and the models (checked at head).",
                len(health.drift),
            )
        yield _gauge(
            "pokervod_db_connections", "Client connections of the server.", health.connections
        )
        yield _gauge(
            "pokervod_db_max_connections", "The server's max_connections.", health.max_connections
        )
        yield _gauge(
            "pokervod_db_slow_statements",
            "Statements in pg_stat_statements with a mean at or above DB_SLOW_QUERY_MS.",
            health.slow_statements,
        )
        yield from self._backups()
        if snap.replicas:
            lag = GaugeMetricFamily(
                "pokervod_db_replica_lag_seconds",
                "Replication lag of each replica.",
                labels=["replica"],
            )
            for replica in snap.replicas:
                if replica.lag_s is not None:
                    lag.add_metric([replica.name], replica.lag_s)
            yield lag
        if snap.stats is not None:
            yield from self._tables()
        if snap.events_by_type:
            events = GaugeMetricFamily(
                "pokervod_db_events_stored", "Events in the event log by type.", labels=["type"]
            )
            for kind, count in sorted(snap.events_by_type.items()):
                events.add_metric([kind], count)
            yield events

    def _backups(self) -> Iterator[Metric]:
        snap = self.state.snapshot
        health = snap.health
        assert health is not None
        age = health.newest_verified_backup_age_s
        yield _gauge(
            "pokervod_db_backup_newest_verified_age_seconds",
            "Age of the newest verified backup in BACKUP_DIR (absent when there is none).",
            age,
        )
        if snap.backups_error is None:
            counts = {"verified": 0, "unverified": 0, "failed_verification": 0, "incomplete": 0}
            for b in snap.backups:
                if not b.complete:
                    counts["incomplete"] += 1
                elif b.verified_ok is None:
                    counts["unverified"] += 1
                else:
                    counts["verified" if b.verified_ok else "failed_verification"] += 1
            family = GaugeMetricFamily(
                "pokervod_db_backups", "Backups in BACKUP_DIR by state.", labels=["state"]
            )
            for state, count in counts.items():
                family.add_metric([state], count)
            yield family
        for op, run in sorted(snap.last_runs.items()):
            yield _gauge(
                f"pokervod_db_last_{op}_success",
                f"1 when the last {op} succeeded, 0 when it failed (from the event log).",
                int(run.ok),
            )
            yield _gauge(
                f"pokervod_db_last_{op}_timestamp_seconds",
                f"When the last {op} finished (Unix time).",
                run.at.timestamp(),
            )
            yield _gauge(
                f"pokervod_db_last_{op}_duration_seconds",
                f"Duration of the last successful {op}.",
                run.duration_s,
            )

    def _tables(self) -> Iterator[Metric]:
        stats = self.state.snapshot.stats
        assert stats is not None
        yield _gauge(
            "pokervod_db_database_bytes", "Size of the whole database.", stats.database_bytes
        )
        ratio = GaugeMetricFamily(
            "pokervod_db_cache_hit_ratio",
            "Share of block reads served from shared buffers.",
            labels=["scope"],
        )
        for scope, value in (
            ("database", stats.cache_hit_ratio),
            ("schema", stats.table_cache_hit_ratio),
        ):
            if value is not None:
                ratio.add_metric([scope], value)
        yield ratio
        columns: list[tuple[str, str, str]] = [
            ("pokervod_db_table_rows", "Estimated rows per table.", "row_estimate"),
            ("pokervod_db_table_bytes", "Heap size (with TOAST) per table.", "table_bytes"),
            ("pokervod_db_table_index_bytes", "Size of the indexes per table.", "index_bytes"),
            ("pokervod_db_table_dead_tuples", "Dead tuples waiting for vacuum.", "dead_tuples"),
            ("pokervod_db_table_live_tuples", "Live tuples per table.", "live_tuples"),
        ]
        for name, doc, attr in columns:
            family = GaugeMetricFamily(name, doc, labels=["table"])
            for table in stats.tables.values():
                family.add_metric([table.name], float(getattr(table, attr)))
            yield family


def build_registry(state: ServeState) -> CollectorRegistry:
    """A registry with the snapshot collector and the process counters, wired to ``state``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(state))
    durations = Histogram(
        "pokervod_db_operation_duration_seconds",
        "Duration of the queries and ingest operations run in this process.",
        ["operation"],
        buckets=DURATION_BUCKETS,
        registry=registry,
    )
    slow = Counter(
        "pokervod_db_slow_operations",
        "Operations at or above DB_SLOW_QUERY_MS.",
        ["operation"],
        registry=registry,
    )
    errors = Counter(
        "pokervod_db_errors",
        "Errors raised by the queries and ingest operations, by PokervodDBError class.",
        ["kind"],
        registry=registry,
    )
    checkouts = Counter(
        "pokervod_db_pool_checkouts", "Connections handed out by the pool.", registry=registry
    )
    exhausted = Counter(
        "pokervod_db_pool_exhausted_checkouts",
        "Checkouts that took the last free connection (the next caller waits, up to "
        "DB_POOL_TIMEOUT).",
        registry=registry,
    )

    def observe(operation: str, seconds: float, error: BaseException | None) -> None:
        durations.labels(operation).observe(seconds)
        if seconds * 1000.0 >= state.configured.slow_query_ms:
            slow.labels(operation).inc()
        if error is not None and isinstance(error, Exception):
            errors.labels(error_kind(error)).inc()

    def on_checkout(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        checkouts.inc()
        status = pool_status(state.agent.engine)
        if status is not None and status.in_use >= status.size + status.max_overflow:
            exhausted.inc()

    removers: list[Any] = []

    def start(serving: ServeState) -> None:
        removers.append(instrumentation.add_observer(observe))
        engine = serving.agent.engine.sync_engine
        event.listen(engine, "checkout", on_checkout)
        removers.append(lambda: event.remove(engine, "checkout", on_checkout))

    def stop() -> None:
        while removers:
            removers.pop()()

    state.on_start(start, stop)
    return registry
