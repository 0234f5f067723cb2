"""The backup commands as an operator or cron runs them: JSON output, refusals, scripts."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pokervod_db.settings import Settings
from tests.backup.support import ENTITY_AND_LINK_TABLES, all_rows, change_data

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("pokervod-db"))


def _run(env: dict[str, str], *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


def test_backup_verify_list_restore_through_the_scripts(
    cli_env: dict[str, str], db_settings: Settings
) -> None:
    env = cli_env | {"POKERVOD_DB": CLI, "VERIFY": "1"}
    made = _run(env, "bash", str(ROOT / "scripts" / "backup.sh"))
    assert made.returncode == 0, made.stderr
    backup_json, verify_json, prune_json = (json.loads(line) for line in made.stdout.splitlines())
    assert {"file", "size_bytes", "sha256", "revision", "duration_s"} <= set(backup_json)
    assert verify_json["ok"] is True and prune_json["deleted"] == []
    assert made.stderr == ""  # quiet without a terminal

    listed = _run(cli_env, CLI, "backup", "list", "--json")
    backups = json.loads(listed.stdout)["backups"]
    assert [b["file"] for b in backups] == [backup_json["file"]] and backups[0]["verified"]

    before = all_rows(db_settings, ENTITY_AND_LINK_TABLES)
    change_data(db_settings)
    refused = _run(cli_env, CLI, "restore", backup_json["file"])
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("FAILED: ") and "--yes" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    restored = _run(
        env, "bash", str(ROOT / "scripts" / "restore.sh"), backup_json["file"], "--yes", "--json"
    )
    assert restored.returncode == 0, restored.stderr
    result = json.loads(restored.stdout)
    assert result["revision"] == backup_json["revision"] and result["safety_backup"]
    assert all_rows(db_settings, ENTITY_AND_LINK_TABLES) == before


def test_restore_of_a_bad_file_prints_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    junk = tmp_path / "junk.dump"
    junk.write_bytes(b"PGDMP" + os.urandom(5000))
    done = _run(cli_env, CLI, "restore", str(junk), "--yes")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "FAILED:" in done.stderr and "Traceback" not in done.stderr


def test_restore_asks_on_a_terminal_and_no_changes_nothing(
    cli_env: dict[str, str], db_settings: Settings
) -> None:
    made = json.loads(_run(cli_env, CLI, "backup", "--json").stdout)
    change_data(db_settings)
    before = all_rows(db_settings, ENTITY_AND_LINK_TABLES)
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [CLI, "restore", made["file"]],
            env=cli_env,
            stdin=follower,
            stdout=follower,
            stderr=follower,
        )
        output = b""
        deadline = time.monotonic() + 60  # bounded: a missing prompt fails, never hangs
        while b"?" not in output:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([leader], [], [], max(0.0, remaining))
            assert ready, f"no confirmation prompt within 60 s; got {output!r}"
            output += os.read(leader, 4096)
        os.write(leader, b"n\n")
        assert proc.wait(timeout=60) == 1
    finally:
        os.close(leader)
        os.close(follower)
    assert b"Replace schema pokervod" in output
    assert all_rows(db_settings, ENTITY_AND_LINK_TABLES) == before
