"""Online index builds in migrations: writes go on, concurrent runners do not deadlock, a failed
build leaves no invalid index. The revision is test-only: the package's scripts are copied to a
temporary directory with one extra revision, nothing is written into src/."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from alembic import command

import pokervod_db.migrations
from pokervod_db import migrate
from pokervod_db.database import create_sync_engine
from pokervod_db.errors import MigrationError
from pokervod_db.locking import maintenance_lock
from pokervod_db.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TEST_REVISION = "999_test_online_index"
INDEX = "ix_players_test_online"
ROWS = 300_000

_SCRIPT = '''"""999 test-only: an index on a populated table, built and dropped concurrently.

Revision ID: {revision}
Revises: {down}
"""

from pokervod_db.migrations.online import create_index_concurrently, drop_index_concurrently

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_index_concurrently("{index}", "players ({columns})", unique={unique})


def downgrade() -> None:
    drop_index_concurrently("{index}")
'''


def _scripts(
    tmp_path: Path, *, columns: str = "nationality, total_live_earnings", unique: bool = False
) -> Path:
    source = Path(pokervod_db.migrations.__file__).parent
    target = tmp_path / "migrations"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    (target / "versions" / f"{TEST_REVISION}.py").write_text(
        _SCRIPT.format(
            revision=TEST_REVISION,
            down=migrate.head_revision(),
            index=INDEX,
            columns=columns,
            unique=unique,
        )
    )
    return target


def _upgrade(settings: Settings, scripts: Path, target: str = "head") -> None:
    cfg = migrate.alembic_config(settings)
    cfg.set_main_option("script_location", str(scripts))
    command.upgrade(cfg, target)


def _populate(settings: Settings) -> None:
    with psycopg.connect(settings.libpq_url(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pokervod.players (name, nationality, total_live_earnings) "
            "SELECT 'player ' || g, 'n' || (g %% 60), g FROM generate_series(1, %s) g",
            (ROWS,),
        )
        conn.execute("ANALYZE pokervod.players")


def _index_valid(settings: Settings) -> bool | None:
    with psycopg.connect(settings.libpq_url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s",
            (INDEX,),
        ).fetchone()
    return None if row is None else bool(row[0])


def _revision(settings: Settings) -> str:
    with psycopg.connect(settings.libpq_url(), autocommit=True) as conn:
        row = conn.execute("SELECT version_num FROM pokervod.alembic_version").fetchone()
    assert row is not None
    return str(row[0])


class Writer(threading.Thread):
    """Inserts one player per transaction as fast as it can, recording when each commit ended."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.url = settings.libpq_url()
        self.stop = threading.Event()
        self.commits: list[tuple[float, float]] = []

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            n = 0
            while not self.stop.is_set():
                n += 1
                began = time.perf_counter()
                conn.execute(
                    "INSERT INTO pokervod.players (name, nationality) VALUES (%s, 'xx')",
                    (f"writer {n}",),
                )
                self.commits.append((began, time.perf_counter()))


@pytest.mark.slow
def test_writes_to_a_populated_table_continue_while_a_migration_adds_an_index(
    db_settings: Settings, tmp_path: Path
) -> None:
    _populate(db_settings)
    scripts = _scripts(tmp_path)
    writer = Writer(db_settings)
    writer.start()
    time.sleep(0.3)
    started = time.perf_counter()
    _upgrade(db_settings, scripts)
    finished = time.perf_counter()
    time.sleep(0.2)
    writer.stop.set()
    writer.join(10)

    assert _index_valid(db_settings) is True
    assert _revision(db_settings) == TEST_REVISION
    during = [(b, e) for b, e in writer.commits if started <= e <= finished]
    # A plain CREATE INDEX holds a SHARE lock for the whole build: no insert could commit.
    assert len(during) > 0
    stall_ms = max(e - b for b, e in writer.commits if e >= started and b <= finished) * 1000
    sys.stdout.write(
        f"\nonline index on {ROWS:,} rows: migration {finished - started:.2f} s, "
        f"{len(during)} inserts committed during it, longest write stall {stall_ms:.0f} ms\n"
    )


@pytest.mark.slow
def test_runners_waiting_for_the_lock_do_not_deadlock_a_concurrent_index_build(
    db_settings: Settings, tmp_path: Path
) -> None:
    _populate(db_settings)
    scripts = _scripts(tmp_path)
    # Separate processes, as containers would be (Alembic's context is process-global).
    runner = (
        "import sys; from alembic import command; from pokervod_db import migrate; "
        "from pokervod_db.settings import Settings; "
        "cfg = migrate.alembic_config(Settings(_env_file=None, DATABASE_URL=sys.argv[1])); "
        "cfg.set_main_option('script_location', sys.argv[2]); command.upgrade(cfg, 'head')"
    )
    holder = create_sync_engine(db_settings, application_name="test barrier")
    try:
        with holder.connect() as conn, maintenance_lock(conn, timeout_s=5, purpose="the test"):
            procs = [
                subprocess.Popen(
                    [sys.executable, "-c", runner, db_settings.libpq_url(), str(scripts)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(3)
            ]
            time.sleep(3.0)  # the three start and poll for the lock
        outputs = [p.communicate(timeout=180) for p in procs]
    finally:
        holder.dispose()
    results = [p.returncode for p in procs]
    assert results == [0, 0, 0], outputs
    assert _index_valid(db_settings) is True and _revision(db_settings) == TEST_REVISION


def test_failed_concurrent_build_leaves_no_invalid_index_and_the_previous_revision(
    db_settings: Settings, tmp_path: Path
) -> None:
    head = migrate.head_revision()
    with psycopg.connect(db_settings.libpq_url(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pokervod.players (name, nationality) VALUES ('a', 'x'), ('b', 'x')"
        )
    scripts = _scripts(tmp_path, columns="nationality", unique=True)
    with pytest.raises(MigrationError, match="concurrently failed") as err:
        _upgrade(db_settings, scripts)
    assert "\n" not in str(err.value) and "invalid leftover was dropped" in str(err.value)
    assert _index_valid(db_settings) is None
    assert _revision(db_settings) == head


def test_invalid_index_left_by_a_crashed_build_is_rebuilt(
    db_settings: Settings, tmp_path: Path
) -> None:
    with psycopg.connect(db_settings.libpq_url(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pokervod.players (name, nationality) VALUES ('a', 'x'), ('b', 'x')"
        )
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                f"CREATE UNIQUE INDEX CONCURRENTLY {INDEX} ON pokervod.players (nationality)"
            )
    assert _index_valid(db_settings) is False  # what a build killed midway leaves behind
    _upgrade(db_settings, _scripts(tmp_path))
    assert _index_valid(db_settings) is True
    with psycopg.connect(db_settings.libpq_url(), autocommit=True) as conn:
        indexdef = conn.execute(
            "SELECT pg_get_indexdef(%s::regclass)", (f"pokervod.{INDEX}",)
        ).fetchone()
    assert (
        indexdef is not None
        and "UNIQUE" not in indexdef[0]
        and "total_live_earnings" in indexdef[0]
    )


def test_online_index_revision_passes_the_squawk_lint(tmp_path: Path) -> None:
    scripts = _scripts(tmp_path)
    settings = Settings(_env_file=None, DATABASE_URL="postgresql://lint@localhost/lint")
    import io

    buffer = io.StringIO()
    cfg = migrate.alembic_config(settings, stdout=buffer)
    cfg.output_buffer = buffer
    cfg.set_main_option("script_location", str(scripts))
    command.upgrade(cfg, f"{migrate.head_revision()}:{TEST_REVISION}", sql=True)
    sql = buffer.getvalue()
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS" in sql and "squawk-ignore" not in sql
    rendered = tmp_path / "online.sql"
    rendered.write_text(sql)
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from lint_migrations import squawk_binary  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    result = subprocess.run(
        [squawk_binary(), "--config", str(ROOT / ".squawk.toml"), str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
