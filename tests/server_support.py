"""A private embedded PostgreSQL server for tests that stop, replicate or restore it.

The shared test server (conftest ``pg_server``) must never be stopped or rebuilt, and CI may
point it at a PostgreSQL 15 that allows no replication; these tests start their own PostgreSQL
18 from the embedded binaries instead, in a directory outside pytest's basetemp (see conftest).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from pokervod_db import embedded, migrate
from pokervod_db.settings import Settings


@contextmanager
def private_server(prefix: str, **overrides: Any) -> Iterator[tuple[Settings, Settings, Path]]:
    """(configured settings, started settings, base directory) of a fresh migrated server."""
    base = Path(tempfile.mkdtemp(prefix=f"pv-{prefix}-"))
    base.chmod(0o755)
    configured = Settings(
        _env_file=None,
        EMBEDDED_DATA_DIR=base / "pgdata",
        BACKUP_DIR=base / "backups",
        **overrides,
    )
    try:
        started = embedded.start(configured)
        migrate.upgrade(started)
        yield configured, started, base
    finally:
        embedded.stop(configured)
        shutil.rmtree(base, ignore_errors=True)


def wait_for(predicate: Callable[[], bool], *, timeout_s: float = 20.0, what: str) -> None:
    """Poll ``predicate`` until true; fail the test with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def scalar(url: str, query: str, params: tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
        return row[0] if row else None


def archive_current_segment(url: str, archive: Path) -> str:
    """Close the current WAL segment and wait until the archiver has copied it to ``archive``."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # writes WAL, so the switch below always closes a segment
        row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
    assert row is not None
    segment = str(row[0])
    wait_for(lambda: (archive / segment).exists(), what=f"{segment} in {archive}")
    return segment
