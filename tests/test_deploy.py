"""deploy/: the Prometheus alert rules and the Grafana dashboard use only metrics serve exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pokervod_db.health import Check, HealthReport
from pokervod_db.settings import Settings
from pokervod_db.web import create_app
from pokervod_db.web.service import LastRun, ReplicaLag, Snapshot

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "pokervod-db.json"
_NAME = re.compile(r"\bpokervod_db_[a-z_]+")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def _referenced(text: str) -> set[str]:
    names = set()
    for name in _NAME.findall(text):
        for suffix in _SUFFIXES:
            name = name.removesuffix(suffix)
        names.add(name)
    return names


def test_alert_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (.ci/run installs Debian's prometheus package)")
    result = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_rules_cover_backups_migrations_connections_dead_tuples_and_replica_lag() -> None:
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    exprs = " ".join(str(r["expr"]) for r in rules)
    for needle in (
        "pokervod_db_backup_newest_verified_age_seconds",
        "pokervod_db_migration_at_head",
        "pokervod_db_schema_drift_differences",
        "pokervod_db_connections / pokervod_db_max_connections > 0.8",
        "pokervod_db_table_dead_tuples",
        "pokervod_db_replica_lag_seconds",
    ):
        assert needle in exprs, needle
    assert all(r["annotations"]["summary"] for r in rules)


async def test_every_metric_in_the_rules_and_the_dashboard_is_exported(
    db_settings: Settings,
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "pokervod-db"
    assert all(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    app = create_app(db_settings)
    state = app.state.serve
    await state.start()
    try:
        # A snapshot with every optional part present: backups, last runs and a replica.
        report = HealthReport(
            healthy=True,
            database="db",
            reachable=True,
            latency_ms=1.0,
            at_head=True,
            connections=3,
            max_connections=100,
            slow_statements=0,
            checks=[Check("reachable", True, "ok")],
            newest_verified_backup_age_s=10.0,
        )
        stats = await state.stats(5).get()
        now = datetime.now(UTC)
        state.snapshot = Snapshot(
            health=report,
            stats=stats,
            events_by_type={"db.backup.completed": 1},
            last_runs={
                "backup": LastRun("backup", True, now, 1.0, "f"),
                "restore": LastRun("restore", False, now, None, "e"),
            },
            replicas=[ReplicaLag("r1", 0.5)],
            collected_at=now,
        )
        exported = {
            f.name
            for f in text_string_to_metric_families(generate_latest(app.state.registry).decode())
        }
    finally:
        await state.stop()
    referenced = _referenced(ALERTS.read_text()) | _referenced(DASHBOARD.read_text())
    assert referenced - exported == set()
