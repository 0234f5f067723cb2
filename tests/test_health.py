"""Health: the report, unreachable servers, health-change events, and the status/health CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pokervod_db import migrate
from pokervod_db.agent import DatabaseAgent
from pokervod_db.events import EventType, read_events
from pokervod_db.settings import Settings
from tests.conftest import _conninfo, run_coroutine

CLI = str(Path(sys.executable).parent / "pokervod-db")


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)


async def test_healthy_database_reports_every_check(db_settings: Settings) -> None:
    async with DatabaseAgent(db_settings) as agent:
        report = await agent.health()
        assert await agent.health_check() is True
    assert report.healthy and report.reachable and report.error is None
    assert report.role == "primary"
    assert report.server_version and report.server_version[0].isdigit()
    assert report.latency_ms is not None and report.latency_ms > 0
    assert report.at_head and report.current_revision == migrate.head_revision()
    assert report.drift == [] and report.pending == []
    assert report.connections is not None and report.max_connections is not None
    assert 1 <= report.connections <= report.max_connections
    assert report.pool is not None and report.pool.size == db_settings.pool_size
    assert [c.name for c in report.checks] == [
        "reachable",
        "migrations",
        "drift",
        "connections",
        "pool",
        "slow queries",
        "backup",
        "replicas",
        "replication slots",
        "archiver",
        "indexes",
    ]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["healthy"] is True and data["pool"]["in_use"] == report.pool.in_use


async def test_unmigrated_database_is_unhealthy_with_what_to_do(
    empty_db_settings: Settings,
) -> None:
    async with DatabaseAgent(empty_db_settings) as agent:
        report = await agent.health()
    assert report.reachable and not report.healthy
    assert report.failed == ["migrations"]
    assert report.pending == [r.revision for r in migrate.history()]
    (migrations,) = [c for c in report.checks if c.name == "migrations"]
    assert "pokervod-db upgrade" in migrations.detail


async def test_drift_makes_the_database_unhealthy(db_settings: Settings) -> None:
    with psycopg.connect(_conninfo(db_settings.url()), autocommit=True) as conn:
        conn.execute("DROP INDEX pokervod.ix_video_files_title_gin")
    async with DatabaseAgent(db_settings) as agent:
        report = await agent.health()
    assert not report.healthy and report.failed == ["drift"]
    assert any("ix_video_files_title_gin" in line for line in report.drift)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://pokervod:s3cret@127.0.0.1:1/pokervod",  # refused at once
        "postgresql://pokervod:s3cret@10.255.255.1:5432/pokervod",  # no answer: the timeout
    ],
    ids=["refused", "blackhole"],
)
async def test_unreachable_server_is_unhealthy_within_seconds(url: str) -> None:
    settings = Settings(_env_file=None, DATABASE_URL=url, DB_CONNECT_TIMEOUT=1.5)
    async with DatabaseAgent(settings) as agent:
        # The guard only catches a hang; the report must come by itself.
        report = await asyncio.wait_for(agent.health(), 20)
        assert await asyncio.wait_for(agent.health_check(), 20) is False
    assert not report.healthy and not report.reachable
    assert report.failed == ["reachable"]
    assert report.error is not None and "cannot connect to" in report.error
    assert "s3cret" not in json.dumps(report.to_dict())
    assert "\n" not in report.error


async def test_embedded_server_that_cannot_start_is_reported_unhealthy() -> None:
    settings = Settings(_env_file=None, EMBEDDED_DATA_DIR="/proc/pokervod/pgdata")
    agent = DatabaseAgent(settings)
    report = await agent.health()  # reported, not raised
    await agent.close()
    assert not report.healthy and not report.reachable
    assert report.failed == ["reachable"] and "EMBEDDED_DATA_DIR" in (report.error or "")


async def test_health_changes_emit_events(db_settings: Settings) -> None:
    async with DatabaseAgent(db_settings) as agent:
        assert (await agent.health()).healthy
        assert agent.bus.history(EventType.DB_HEALTH_CHANGED) == []  # first look: no change
        # Below 003 (no agent_events table), whatever revisions come after it.
        await agent.run_migration("downgrade", "002_add_indexes")
        assert not (await agent.health()).healthy
        assert not (await agent.health()).healthy  # no change, no event
        await agent.run_migration("upgrade")
        assert (await agent.health()).healthy
        changes = agent.bus.history(EventType.DB_HEALTH_CHANGED)
    assert [(e.payload["healthy"], e.payload["previous"]) for e in changes] == [
        (False, True),
        (True, False),
    ]
    assert changes[0].payload["failed_checks"] == ["migrations"]
    stored = [e for e in await read_events(db_settings) if e.type == EventType.DB_HEALTH_CHANGED]
    # The first change happened below revision 003 (no table); the recovery is stored.
    assert [e.event_id for e in stored] == [changes[1].event_id]


def test_cli_health_exits_0_when_healthy_and_prints_json(cli_env: dict[str, str]) -> None:
    text_run = _cli(cli_env, "health")
    assert text_run.returncode == 0, text_run.stderr
    lines = text_run.stdout.strip().splitlines()
    assert lines[0].startswith("OK") and "reachable" in lines[0]
    assert lines[-1] == "healthy"
    json_run = _cli(cli_env, "health", "--json")
    assert json_run.returncode == 0
    data = json.loads(json_run.stdout)
    assert data["healthy"] is True and data["at_head"] is True
    assert {"latency_ms", "server_version", "role", "pool", "connections", "checks"} <= set(data)


def test_cli_health_exits_1_when_the_server_is_unreachable(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/x", "DB_CONNECT_TIMEOUT": "2"}
    run = _cli(env, "health")
    assert run.returncode == 1
    assert run.stdout.startswith("FAIL  reachable")
    assert "UNHEALTHY" in run.stdout and "Traceback" not in run.stderr


def test_cli_status_text_and_json(cli_env: dict[str, str]) -> None:
    run = _cli(cli_env, "status")
    assert run.returncode == 0, run.stderr
    assert f"revision: {migrate.head_revision()} (at head)" in run.stdout
    data = json.loads(_cli(cli_env, "status", "--json").stdout)
    assert data == {
        "database": data["database"],
        "current": migrate.head_revision(),
        "head": migrate.head_revision(),
        "pending": [],
        "at_head": True,
        "drift": [],
        "drift_checked": True,
        "note": None,
    }
    assert "postgresql://" in data["database"]


def test_cli_up_migrates_then_shows_status_health_and_stats(
    empty_db_settings: Settings, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": empty_db_settings.libpq_url()}
    env["BACKUP_DIR"] = str(tmp_path / "backups")
    run = _cli(env, "up", "--sample")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert f"revision: {migrate.head_revision()} (at head)" in out
    assert "drift:    none" in out
    assert "OK    reachable" in out and "\nhealthy\n" in out
    assert "hand_clips" in out and "cache hit ratio" in out
    (event,) = run_coroutine(read_events(empty_db_settings))
    assert event.type == EventType.DB_MIGRATION_COMPLETED and event.payload["success"] is True
