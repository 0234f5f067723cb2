"""docs/cli.md's JSON contract is what the commands emit: the table is parsed and each command
run with ``--json`` against a private database; documented and emitted keys must be equal."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "cli.md"
CLI = str(Path(sys.executable).with_name("pokervod-db"))
NEEDS_A_BUCKET = ("--remote", "fetch")
# Run in this order: the backup's file feeds verify and restore; events come last, after the
# backup and restore have stored theirs.
ORDER = ("status", "health", "stats", "backup --json", "backup verify", "backup list",
         "backup prune", "restore", "events")  # fmt: skip


def _contract() -> dict[str, dict[str, set[str]]]:
    section = DOC.read_text().split("\n## JSON contract\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \| (.+) \|$", section, re.MULTILINE)
    contract: dict[str, dict[str, set[str]]] = defaultdict(dict)
    for command, path, keys in rows:
        contract[command][path] = set(re.findall(r"`([^`]+)`", keys))
    return dict(contract)


def _objects(data: Any, path: str) -> list[Any]:
    """The objects at ``path``: ``.`` itself, ``a.b`` nested, ``a[]`` list items, ``a{}`` map values."""
    found = [data]
    if path == ".":
        return found
    for part in path.split("."):
        step: list[Any] = []
        for obj in found:
            if part.endswith("[]"):
                step.extend(obj[part[:-2]])
            elif part.endswith("{}"):
                step.extend(obj[part[:-2]].values())
            else:
                step.append(obj[part])
        found = step
    return found


def test_the_contract_table_is_found_and_covers_every_json_command() -> None:
    contract = _contract()
    assert {"status --json", "health --json", "stats --json", "events"} <= set(contract)
    runnable = [c for c in contract if not any(word in c for word in NEEDS_A_BUCKET)]
    assert len(runnable) == len(contract) - 2  # only list --remote and fetch need a bucket
    assert all(_rank(c) < len(ORDER) for c in runnable), runnable


def _rank(command: str) -> int:
    return next((i for i, prefix in enumerate(ORDER) if command.startswith(prefix)), len(ORDER))


@pytest.mark.slow
def test_documented_json_keys_are_the_keys_the_commands_emit(cli_env: dict[str, str]) -> None:
    contract = _contract()
    runnable = sorted(
        (c for c in contract if not any(word in c for word in NEEDS_A_BUCKET)), key=_rank
    )
    archive = ""
    checked: list[str] = []
    for command in runnable:
        argv = [a.replace("FILE", archive) for a in shlex.split(command)]
        run = subprocess.run(
            [CLI, *argv],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        assert run.returncode in (0, 1) and run.stdout, (command, run.stderr)
        data = json.loads(run.stdout.splitlines()[0])
        if command == "backup --json":
            archive = data["file"]
        for path, documented in contract[command].items():
            objects = _objects(data, path)
            assert objects, f"{command}: nothing at {path} to compare"
            for obj in objects:
                assert set(obj) == documented, (
                    f"{command} {path}: emitted but not documented {set(obj) - documented}, "
                    f"documented but not emitted {documented - set(obj)}"
                )
            checked.append(f"{command} {path}")
    assert len(checked) == sum(len(contract[c]) for c in runnable)
