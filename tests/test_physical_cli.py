"""The command line of replicas and physical backup/restore, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from pokervod_db import embedded
from pokervod_db.settings import Settings
from tests.server_support import private_server

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent / "pokervod-db"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Settings, dict[str, str]]]:
    with private_server("cli", BACKUP_WAL=True) as (configured, _started, _base):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "BACKUP_"))}
        env.update(
            EMBEDDED_DATA_DIR=str(configured.embedded_data_dir),
            BACKUP_DIR=str(configured.backup_dir),
            BACKUP_WAL="true",
        )
        yield configured, env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _codes(configured: Settings) -> list[str]:
    with psycopg.connect(embedded.start(configured).libpq_url()) as conn:
        return [r[0] for r in conn.execute("SELECT code FROM pokervod.projects ORDER BY 1")]


def test_backup_physical_then_restore_to_a_time_from_the_command_line(
    server: tuple[Settings, dict[str, str]],
) -> None:
    configured, env = server
    taken = _cli(env, "backup", "--physical", "--json")
    assert taken.returncode == 0, taken.stderr
    report = json.loads(taken.stdout)
    for key in ("path", "verified", "size_bytes", "duration_s", "start_lsn", "start_time"):
        assert key in report
    assert report["verified"] is True

    with psycopg.connect(embedded.start(configured).libpq_url(), autocommit=True) as conn:
        conn.execute("INSERT INTO pokervod.projects (code, name) VALUES ('CLIBEFORE', 'x')")
        time.sleep(1.1)
        target = datetime.now(UTC)
        time.sleep(1.1)
        conn.execute("INSERT INTO pokervod.projects (code, name) VALUES ('CLIAFTER', 'x')")

    listed = json.loads(_cli(env, "backup", "list", "--json").stdout)
    assert listed["physical"][0]["name"] == Path(report["path"]).name
    assert listed["recoverable_window"]["earliest"] is not None

    restored = _cli(env, "restore", "--physical", "--to-time", target.isoformat(), "--yes")
    assert restored.returncode == 0, restored.stderr
    assert "the old data directory is in" in restored.stdout
    codes = _codes(configured)
    assert "CLIBEFORE" in codes and "CLIAFTER" not in codes


def test_restore_physical_without_yes_and_without_a_terminal_refuses(
    server: tuple[Settings, dict[str, str]],
) -> None:
    _, env = server
    result = _cli(env, "restore", "--physical")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "FAILED: restore --physical stops the server and replaces its data directory; there is "
        "no terminal to ask for confirmation, so pass --yes"
    ]


def test_restore_physical_of_an_external_server_prints_the_steps_and_one_failed_line(
    server: tuple[Settings, dict[str, str]],
) -> None:
    _, env = server
    external = {**env, "DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:1/x"}
    result = _cli(external, "restore", "--physical", "--yes")
    assert result.returncode == 1
    assert "pg_combinebackup" in result.stdout and "recovery.signal" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("FAILED: restore --physical rebuilds only")
    assert "hunter2" not in result.stdout + result.stderr


def test_restore_physical_with_a_bad_time_fails_in_one_line(
    server: tuple[Settings, dict[str, str]],
) -> None:
    _, env = server
    result = _cli(env, "restore", "--physical", "--to-time", "yesterday-ish", "--yes")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "FAILED: --to-time 'yesterday-ish' is not a time; use ISO 8601, e.g. 2026-11-29T07:30:00Z"
    ]


def test_replica_create_start_json_list_and_stop(
    server: tuple[Settings, dict[str, str]],
) -> None:
    configured, env = server
    directory = configured.embedded_data_dir.parent / "clireplica"
    assert _cli(env, "replica", "create", str(directory)).returncode == 0
    started = _cli(env, "replica", "start", str(directory), "--json")
    try:
        assert started.returncode == 0, started.stderr
        url = json.loads(started.stdout)["url"]
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        listed = json.loads(_cli(env, "replica", "list", "--json").stdout)
        assert [r["active"] for r in listed["replicas"]] == [True]
    finally:
        assert _cli(env, "replica", "stop", str(directory)).returncode == 0
