"""Alembic's conventions in ``pokervod-db``: relative and special revisions, stamp, merge,
numbered revisions, and ``--json`` (one JSON object) on every migration command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pokervod_db import migrate
from pokervod_db.errors import MigrationError
from pokervod_db.settings import Settings

VERSIONS = Path(migrate.__file__).parent / "migrations" / "versions"
HISTORY = [info.revision for info in migrate.history()]
HEAD, PREVIOUS = HISTORY[-1], HISTORY[-2]
NEXT_NUMBER = max(int(rev.split("_")[0]) for rev in HISTORY) + 1


def _cli(*args: str, settings: Settings, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATABASE_URL"] = settings.libpq_url()
    return subprocess.run(
        [str(Path(sys.executable).parent / "pokervod-db"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """stdout must be exactly one JSON object."""
    value = json.loads(result.stdout)
    assert isinstance(value, dict), result.stdout
    return value


def _has_table(settings: Settings, name: str) -> bool:
    with psycopg.connect(settings.libpq_url()) as conn:
        row = conn.execute("SELECT to_regclass(%s)", (f"pokervod.{name}",)).fetchone()
    return row is not None and row[0] is not None


def test_downgrade_minus_one_and_upgrade_plus_one_step_like_alembic(db_settings, tmp_path):
    down = _cli("downgrade", "-1", settings=db_settings, cwd=tmp_path)
    assert (down.returncode, down.stdout.strip()) == (0, f"downgraded {HEAD} → {PREVIOUS}")
    down2 = _cli("downgrade", "-1", "--json", settings=db_settings, cwd=tmp_path)
    report = _json(down2)
    assert report["success"] is True
    assert (report["from_version"], report["version"]) == (PREVIOUS, HISTORY[-3])
    up = _cli("upgrade", "+1", "--json", settings=db_settings, cwd=tmp_path)
    assert _json(up)["applied"] == [PREVIOUS]
    assert migrate.current(db_settings) == PREVIOUS


def test_downgrade_base_then_upgrade_heads(db_settings, tmp_path):
    base = _cli("downgrade", "base", settings=db_settings, cwd=tmp_path)
    assert base.returncode == 0, base.stderr
    assert migrate.current(db_settings) is None
    assert not _has_table(db_settings, "projects")
    heads = _cli("upgrade", "heads", "--json", settings=db_settings, cwd=tmp_path)
    assert _json(heads)["applied"] == HISTORY
    assert migrate.current(db_settings) == HEAD


def test_reporting_commands_print_one_json_object(db_settings, tmp_path):
    up = _json(_cli("up", "--json", settings=db_settings, cwd=tmp_path))
    assert set(up) == {"migration", "sample", "status", "health", "stats"}
    assert up["migration"]["applied"] == []  # type: ignore[index]
    current = _json(_cli("current", "--json", settings=db_settings, cwd=tmp_path))
    assert current == {"current": HEAD, "head": HEAD, "at_head": True}
    history = _json(_cli("history", "--json", settings=db_settings, cwd=tmp_path))
    assert [r["revision"] for r in history["revisions"]] == HISTORY  # type: ignore[attr-defined]
    check = _cli("check", "--json", settings=db_settings, cwd=tmp_path)
    assert (check.returncode, _json(check)) == (0, {"matches": True, "differences": []})
    upgrade = _json(_cli("upgrade", "--json", settings=db_settings, cwd=tmp_path))
    assert (upgrade["success"], upgrade["applied"], upgrade["version"]) == (True, [], HEAD)


def test_check_json_lists_differences_and_exits_1(db_settings, tmp_path):
    with psycopg.connect(db_settings.libpq_url(), autocommit=True) as conn:
        conn.execute("ALTER TABLE pokervod.players ADD COLUMN nickname text")
    check = _cli("check", "--json", settings=db_settings, cwd=tmp_path)
    assert check.returncode == 1
    report = _json(check)
    assert report["matches"] is False
    assert report["differences"] == ["column pokervod.players.nickname is not in the models"]


def test_failed_downgrade_reports_in_json_and_one_failed_line_and_changes_nothing(
    db_settings, tmp_path
):
    result = _cli("downgrade", "no_such_rev", "--json", settings=db_settings, cwd=tmp_path)
    assert result.returncode == 1
    report = _json(result)
    assert report["success"] is False and "no_such_rev" in str(report["error"])
    assert result.stderr.startswith("FAILED: ") and "Traceback" not in result.stderr
    assert migrate.current(db_settings) == HEAD


def test_stamp_records_a_revision_without_running_any_script(db_settings, tmp_path):
    stamped = _cli("stamp", PREVIOUS, "--json", settings=db_settings, cwd=tmp_path)
    assert _json(stamped) == {"from_revision": HEAD, "to_revision": PREVIOUS}
    assert migrate.current(db_settings) == PREVIOUS
    assert _has_table(db_settings, "agent_events")  # nothing was downgraded
    back = _cli("stamp", "head", settings=db_settings, cwd=tmp_path)
    assert (back.returncode, back.stdout.strip()) == (0, f"stamped {PREVIOUS} → {HEAD}")


# --- numbering and merge (these write into the package's versions directory) -----------------


@pytest.fixture
def no_stray_revisions() -> Iterator[None]:
    before = set(VERSIONS.glob("*.py"))
    try:
        yield
    finally:
        for path in set(VERSIONS.glob("*.py")) - before:
            path.unlink()
            for pyc in (VERSIONS / "__pycache__").glob(path.stem + ".*"):
                pyc.unlink()
        assert set(VERSIONS.glob("*.py")) == before


def test_next_revision_id_is_the_next_number_with_a_slug_that_fits_version_num():
    assert migrate.next_revision_id("Add player nicknames!") == (
        f"{NEXT_NUMBER:03d}_add_player_nicknames"
    )
    long = migrate.next_revision_id("a very long description " * 5)
    assert len(long) <= migrate.VERSION_NUM_MAX
    assert re.fullmatch(rf"{NEXT_NUMBER:03d}_[a-z0-9_]+[a-z0-9]", long)
    with pytest.raises(MigrationError, match="no letters or digits"):
        migrate.next_revision_id("!!!")


def test_revision_is_numbered_and_merge_joins_two_heads(db_settings, tmp_path, no_stray_revisions):
    created = _json(
        _cli("revision", "-m", "first branch", "--json", settings=db_settings, cwd=tmp_path)
    )
    first = f"{NEXT_NUMBER:03d}_first_branch"
    assert created["revision"] == first
    assert Path(str(created["path"])) == VERSIONS / f"{first}.py"
    # A second head, as when two branches each add a revision on the same parent.
    second = f"{NEXT_NUMBER + 1:03d}_second_branch"
    (VERSIONS / f"{second}.py").write_text(
        f'"""second branch."""\n\nrevision = "{second}"\ndown_revision = "{HEAD}"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n"
    )
    merged = _json(
        _cli("merge", "-m", "join branches", "--json", settings=db_settings, cwd=tmp_path)
    )
    assert merged["revision"] == f"{NEXT_NUMBER + 2:03d}_join_branches"
    assert sorted(merged["merged"]) == [first, second]  # type: ignore[call-overload]
    assert migrate.head_revision() == merged["revision"]
    up = _cli("upgrade", "heads", settings=db_settings, cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    assert migrate.current(db_settings) == merged["revision"]
