"""Migrations on real PostgreSQL: round trips, drift, concurrency, the lock, failure, Alembic's CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pytest_alembic.tests import (  # the built-in tests, run against our fixtures below
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy import Engine

from pokervod_db import migrate
from pokervod_db.database import create_sync_engine
from pokervod_db.errors import MigrationError
from pokervod_db.locking import MAINTENANCE_LOCK_KEY, maintenance_lock
from pokervod_db.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ROOT / "src" / "pokervod_db" / "migrations" / "versions"
REVISIONS = [
    "001_initial_schema",
    "002_add_indexes",
    "003_agent_events",
    "004_query_indexes",
    "005_tag_link_created_at",
    "006_search_rank_indexes",
    "007_catalog_versions",
]
HEAD = REVISIONS[-1]

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]


# --- pytest-alembic wiring: a private empty database per test --------------------------------


@pytest.fixture
def alembic_config():
    return migrate.alembic_config()


@pytest.fixture
def alembic_engine(empty_db_settings: Settings) -> Iterator[Engine]:
    engine = create_sync_engine(empty_db_settings)
    yield engine
    engine.dispose()


# --- helpers ----------------------------------------------------------------------------------


def _sql(settings: Settings, query: str, *params: object) -> list[tuple]:  # type: ignore[type-arg]
    with psycopg.connect(settings.libpq_url(), autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def _tables(settings: Settings) -> set[str]:
    return {
        r[0]
        for r in _sql(settings, "SELECT tablename FROM pg_tables WHERE schemaname = 'pokervod'")
    }


def _indexes(settings: Settings) -> set[str]:
    return {
        r[0]
        for r in _sql(settings, "SELECT indexname FROM pg_indexes WHERE schemaname = 'pokervod'")
    }


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATABASE_URL"] = settings.libpq_url()
    env.update(extra)
    return env


def _cli(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_bin("pokervod-db"), *args],
        env=env,
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


# --- the history --------------------------------------------------------------------------------


def test_history_is_a_single_line_of_the_known_revisions():
    assert [r.revision for r in migrate.history()] == REVISIONS
    assert migrate.head_revision() == HEAD
    assert migrate.script_directory().get_heads() == [HEAD]


def test_pending_revisions_lists_what_an_upgrade_would_apply():
    assert migrate.pending_revisions(None) == REVISIONS
    assert migrate.pending_revisions(REVISIONS[0]) == REVISIONS[1:]
    assert migrate.pending_revisions(HEAD) == []
    with pytest.raises(MigrationError):
        migrate.pending_revisions("no_such_revision")


# --- round trips -------------------------------------------------------------------------------


def test_upgrade_downgrade_base_and_upgrade_again_on_an_empty_database(empty_db_settings):
    first = migrate.upgrade(empty_db_settings)
    assert (first.from_revision, first.to_revision, first.applied) == (None, HEAD, REVISIONS)
    assert migrate.drift(empty_db_settings) == []

    down = migrate.downgrade(empty_db_settings, "base")
    assert (down.from_revision, down.to_revision) == (HEAD, None)
    assert down.applied == list(reversed(REVISIONS))
    assert migrate.current(empty_db_settings) is None
    assert _tables(empty_db_settings) == {"alembic_version"}  # the version table stays, empty
    assert _sql(
        empty_db_settings, "SELECT count(*) FROM pg_proc WHERE proname = 'set_updated_at'"
    ) == [(0,)]

    again = migrate.upgrade(empty_db_settings)
    assert again.applied == REVISIONS
    assert migrate.drift(empty_db_settings) == []


def test_upgrade_at_head_is_a_no_op_that_reports_nothing_applied(db_settings):
    outcome = migrate.upgrade(db_settings)
    assert (outcome.from_revision, outcome.to_revision, outcome.applied) == (HEAD, HEAD, [])


def test_downgrade_minus_one_steps_back_one_revision_at_a_time(db_settings):
    for expected_from, expected_to in zip(
        reversed(REVISIONS), [*reversed(REVISIONS[:-1]), None], strict=True
    ):
        outcome = migrate.downgrade(db_settings)
        assert (outcome.from_revision, outcome.to_revision) == (expected_from, expected_to)
        assert outcome.applied == [expected_from]
        assert migrate.current(db_settings) == expected_to
    with pytest.raises(MigrationError, match="empty"):
        migrate.downgrade(db_settings)


def test_downgrade_to_001_removes_indexes_and_outbox_but_keeps_tables_and_rows(db_settings):
    _sql(
        db_settings, "INSERT INTO pokervod.projects (code, name) VALUES ('WSOP', 'w') RETURNING id"
    )
    migrate.downgrade(db_settings, REVISIONS[0])
    assert "ix_projects_code" not in _indexes(db_settings)
    assert "agent_events" not in _tables(db_settings)
    assert _sql(db_settings, "SELECT code FROM pokervod.projects") == [("WSOP",)]
    migrate.upgrade(db_settings)
    assert migrate.drift(db_settings) == []


def test_upgrade_to_a_named_revision_stops_there(empty_db_settings):
    outcome = migrate.upgrade(empty_db_settings, REVISIONS[0])
    assert outcome.applied == [REVISIONS[0]]
    assert "projects" in _tables(empty_db_settings)
    assert "ix_projects_code" not in _indexes(empty_db_settings)


def test_upgrade_to_an_unknown_revision_fails_in_one_line(empty_db_settings):
    with pytest.raises(MigrationError) as info:
        migrate.upgrade(empty_db_settings, "999_nope")
    assert "999_nope" in str(info.value) and "\n" not in str(info.value)


# --- drift ---------------------------------------------------------------------------------------


def test_no_drift_right_after_upgrade_head(db_settings):
    assert migrate.drift(db_settings) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            "ALTER TABLE pokervod.players ADD COLUMN nickname text",
            "column pokervod.players.nickname is not in the models",
        ),
        ("DROP INDEX pokervod.ix_events_season_number", "index ix_events_season_number is missing"),
        (
            "DROP TRIGGER trg_tags_updated_at ON pokervod.tags",
            "missing trigger: pokervod.tags does not maintain updated_at",
        ),
        (
            "ALTER TABLE pokervod.projects ALTER COLUMN name DROP NOT NULL",
            "column pokervod.projects.name: nullable is True in the database, False in the models",
        ),
        (
            "ALTER TABLE pokervod.seasons ALTER COLUMN status SET DEFAULT 'x'",
            "column pokervod.seasons.status: server default is 'x'::character varying in the "
            "database, 'active' in the models",
        ),
        (
            "CREATE TABLE pokervod.stray (id int)",
            "table pokervod.stray is in the database but not in the models",
        ),
        (
            "ALTER TABLE pokervod.video_files ALTER COLUMN resolution TYPE varchar(40)",
            "column pokervod.video_files.resolution: type is VARCHAR(40) in the database, "
            "VARCHAR(20) in the models",
        ),
        (
            "ALTER TABLE pokervod.nas_files RESET (fillfactor)",
            "table pokervod.nas_files: storage parameter fillfactor is unset in the database, "
            "90 in the models",
        ),
        (
            "ALTER TABLE pokervod.tags SET (fillfactor = 70)",
            "table pokervod.tags: storage parameter fillfactor is 70 in the database, "
            "unset in the models",
        ),
    ],
)
def test_hand_made_change_is_reported_as_one_readable_line(db_settings, change, expected):
    _exec(db_settings, change)
    lines = migrate.drift(db_settings)
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected), lines


def _exec(settings: Settings, statement: str) -> None:
    with psycopg.connect(settings.libpq_url(), autocommit=True) as conn:
        conn.execute(statement)


def test_objects_outside_schema_pokervod_are_not_drift(db_settings):
    _exec(db_settings, "CREATE TABLE public.someone_elses (id int)")
    assert migrate.drift(db_settings) == []


# --- concurrency and the maintenance lock ------------------------------------------------------


def _waiting_migrators(settings: Settings) -> int:
    rows = _sql(
        settings,
        # Waiting runners poll pg_try_advisory_lock between sleeps (no transaction open), so
        # they show as connected migrators, not as lock waits.
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'pokervod-db migrate'",
    )
    return int(rows[0][0])


@pytest.mark.slow
def test_four_processes_upgrading_at_once_apply_each_revision_exactly_once(
    empty_db_settings, pg_server
):
    """Four `pokervod-db upgrade head` start together on an empty database (containers booting).

    The test holds the maintenance lock until all four are queued on it, so they really race.
    """
    env = _env(empty_db_settings)
    holder = create_sync_engine(empty_db_settings, application_name="test barrier")
    try:
        with holder.connect() as conn, maintenance_lock(conn, timeout_s=5, purpose="the test"):
            procs = [
                subprocess.Popen(
                    [_bin("pokervod-db"), "upgrade", "head"],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(4)
            ]
            deadline = time.monotonic() + 60
            while _waiting_migrators(empty_db_settings) < 4:
                assert time.monotonic() < deadline, "the four migrations never queued on the lock"
                assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
                time.sleep(0.1)
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        holder.dispose()

    assert [p.returncode for p in procs] == [0, 0, 0, 0], results
    assert all(err == "" for _, err in results), results
    outs = sorted(out.strip() for out, _ in results)
    applied = [o for o in outs if o.startswith("upgraded")]
    assert applied == [f"upgraded base → {HEAD}: {', '.join(REVISIONS)}"], outs
    assert outs.count(f"already at {HEAD}") == 3, outs
    assert migrate.current(empty_db_settings) == HEAD
    assert _sql(empty_db_settings, "SELECT version_num FROM pokervod.alembic_version") == [(HEAD,)]
    assert migrate.drift(empty_db_settings) == []


def test_migration_behind_a_held_lock_fails_with_one_line_naming_the_holder(empty_db_settings):
    env = _env(empty_db_settings, MIGRATION_LOCK_TIMEOUT_S="1")
    holder = create_sync_engine(empty_db_settings, application_name="nightly-backup")
    try:
        with holder.connect() as conn, maintenance_lock(conn, timeout_s=5, purpose="the test"):
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            result = _cli("upgrade", "head", env=env)
    finally:
        holder.dispose()
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("FAILED: cannot start the migration: nightly-backup (pid ")
    assert f"(pid {pid})" in lines[0] and "waited 1 s" in lines[0]
    # Nothing happened: not even the schema was created.
    assert _sql(
        empty_db_settings, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pokervod'"
    ) == [(0,)]


def test_lock_is_released_after_a_migration_so_the_next_one_runs(db_settings):
    migrate.downgrade(db_settings)
    migrate.upgrade(db_settings)
    rows = _sql(
        db_settings,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
        "AND ((classid::bigint << 32) | objid::bigint) = %s",
        MAINTENANCE_LOCK_KEY,
    )
    assert rows == [(0,)]


# --- a failing migration changes nothing ------------------------------------------------------


def test_failing_migration_leaves_the_previous_revision_and_nothing_half_applied(
    empty_db_settings,
):
    migrate.upgrade(empty_db_settings, REVISIONS[0])
    # A hand-made object with the name of an index that 002 creates midway through.
    _exec(empty_db_settings, "CREATE TABLE pokervod.squatter (x int)")
    _exec(empty_db_settings, "CREATE INDEX ix_hand_clips_notes_gin ON pokervod.squatter (x)")
    before = _indexes(empty_db_settings)

    with pytest.raises(MigrationError) as info:
        migrate.upgrade(empty_db_settings)
    message = str(info.value)
    assert "ix_hand_clips_notes_gin" in message and "already exists" in message
    assert "\n" not in message

    assert migrate.current(empty_db_settings) == REVISIONS[0]
    assert _indexes(empty_db_settings) == before  # 002's earlier indexes were rolled back too
    assert "agent_events" not in _tables(empty_db_settings)

    _exec(empty_db_settings, "DROP TABLE pokervod.squatter")
    assert migrate.upgrade(empty_db_settings).applied == REVISIONS[1:]


def test_failing_migration_from_the_cli_prints_one_failed_line(empty_db_settings):
    migrate.upgrade(empty_db_settings, REVISIONS[0])
    _exec(empty_db_settings, "CREATE TABLE pokervod.agent_events (x int)")
    result = _cli("upgrade", env=_env(empty_db_settings))
    assert result.returncode == 1, result
    assert result.stderr.startswith("FAILED: migration failed")
    assert "agent_events" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert migrate.current(empty_db_settings) == REVISIONS[0]


# --- offline SQL and squawk ---------------------------------------------------------------------


def _offline_sql(*args: str) -> str:
    env = _env_without_db(DATABASE_URL="postgresql://nobody:secret@db.invalid:5432/none")
    result = subprocess.run(
        [_bin("alembic"), *args, "--sql"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _env_without_db(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(extra)
    return env


def test_offline_sql_builds_the_same_schema_as_an_online_upgrade(empty_db_settings):
    sql = _offline_sql("upgrade", "head")  # db.invalid never resolves: offline must not connect
    assert sql.lstrip().startswith("BEGIN;") and sql.rstrip().endswith("COMMIT;")
    assert "CREATE SCHEMA IF NOT EXISTS pokervod" in sql and "SET lock_timeout" in sql
    with psycopg.connect(empty_db_settings.libpq_url(), autocommit=True) as conn:
        conn.cursor().execute(sql.encode(), prepare=False)
    assert migrate.current(empty_db_settings) == HEAD
    assert migrate.drift(empty_db_settings) == []


def test_migration_sql_passes_squawk():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lint_migrations.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "clean" in result.stdout


# --- Alembic's own command line, from the repository root -----------------------------------


def _alembic(*args: str, settings: Settings) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_bin("alembic"), *args],
        env=_env(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_alembic_cli_upgrade_current_history_and_downgrade_from_repository_root(empty_db_settings):
    up = _alembic("upgrade", "head", settings=empty_db_settings)
    assert up.returncode == 0, up.stderr
    assert "Running upgrade 002_add_indexes -> 003_agent_events" in up.stderr

    current = _alembic("current", settings=empty_db_settings)
    assert current.returncode == 0 and current.stdout.strip() == f"{HEAD} (head)"

    history = _alembic("history", settings=empty_db_settings)
    assert history.returncode == 0
    assert f"{REVISIONS[-2]} -> {HEAD} (head)" in history.stdout
    assert "<base> -> 001_initial_schema" in history.stdout

    down = _alembic("downgrade", "-1", settings=empty_db_settings)
    assert down.returncode == 0, down.stderr
    assert migrate.current(empty_db_settings) == REVISIONS[-2]


def test_alembic_cli_with_unreachable_database_prints_one_line_without_password(tmp_path):
    env = _env_without_db(DATABASE_URL="postgresql://u:hunter2secret@127.0.0.1:1/db")
    result = subprocess.run(
        [_bin("alembic"), "current"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "hunter2secret" not in result.stdout + result.stderr
    assert "cannot connect to postgresql://u:***@127.0.0.1:1/db" in result.stdout + result.stderr


@pytest.fixture
def package_copy(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A copy of the package (and alembic.ini) that revision commands may write into.

    The commands run with the copy first on PYTHONPATH, so ``pokervod_db:migrations`` is the
    copy's: a killed run can never leave a second head in src/. Yields the copy's versions
    directory and the environment additions; asserts the real tree was not touched.
    """
    before = set(VERSIONS.glob("*.py"))
    copy = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "pokervod_db",
        copy / "pokervod_db",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / "alembic.ini", tmp_path / "alembic.ini")
    yield copy / "pokervod_db" / "migrations" / "versions", {"PYTHONPATH": str(copy)}
    assert set(VERSIONS.glob("*.py")) == before


def _generated(versions: Path) -> Path:
    shipped = {p.name for p in VERSIONS.glob("*.py")}
    (path,) = [p for p in versions.glob("*.py") if p.name not in shipped]
    return path


def _assert_empty_revision(path: Path) -> None:
    text = path.read_text()
    upgrade = text.split("def upgrade() -> None:")[1].split("def downgrade")[0]
    body = [line.strip() for line in upgrade.splitlines() if line.strip()]
    assert [line for line in body if not line.startswith("#")] == ["pass"], upgrade
    assert f"down_revision: str | Sequence[str] | None = '{HEAD}'" in text


def test_alembic_revision_autogenerate_on_a_database_at_head_is_empty(db_settings, package_copy):
    versions, extra = package_copy
    result = subprocess.run(
        [_bin("alembic"), "revision", "--autogenerate", "-m", "nothing to do"],
        env=_env(db_settings, **extra),
        cwd=versions.parents[3],  # the copy's alembic.ini
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    _assert_empty_revision(_generated(versions))


def test_pokervod_db_revision_autogenerate_on_a_database_at_head_is_empty(
    db_settings, package_copy
):
    versions, extra = package_copy
    result = _cli(
        "revision", "-m", "nothing either", "--autogenerate", env=_env(db_settings, **extra)
    )
    assert result.returncode == 0, result.stderr
    path = _generated(versions)
    assert result.stdout.strip() == f"created {path}"
    assert path.name.endswith("_nothing_either.py")
    _assert_empty_revision(path)
