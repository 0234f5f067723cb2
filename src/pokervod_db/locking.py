"""The maintenance lock: one migration, backup or restore of a database at a time.

A PostgreSQL session-level advisory lock on a fixed key. It is held on its own connection for the
whole operation, so it also covers work done by child processes (pg_dump, pg_restore) and it is
released by the server when the holder dies, even by ``kill -9``. Waiting is bounded by
``lock_timeout``: the second runner fails with one clear line instead of queueing forever.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from pokervod_db.errors import LockTimeoutError, SQLState, sqlstate

# Any constant bigint works; this one is "pokervod" in ASCII, easy to recognise in pg_locks.
MAINTENANCE_LOCK_KEY = 0x706F6B6572766F64


def lock_holder(conn: Connection) -> str | None:
    """Who holds the maintenance lock (application name and pid), if anyone."""
    row = conn.execute(
        text(
            "SELECT a.application_name, a.pid FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted "
            "AND ((l.classid::bigint << 32) | l.objid::bigint) = :key "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        {"key": MAINTENANCE_LOCK_KEY},
    ).first()
    if row is None:
        return None
    return f"{row[0] or 'unknown client'} (pid {row[1]})"


@contextmanager
def maintenance_lock(conn: Connection, *, timeout_s: float, purpose: str) -> Iterator[None]:
    """Hold the maintenance lock on ``conn`` for the block; wait at most ``timeout_s`` seconds.

    ``conn`` is left with no open transaction on entry and exit, so callers may run their own
    transactions (Alembic's per-migration transactions) while the lock is held.
    """
    wait_ms = max(1, int(timeout_s * 1000))
    try:
        conn.execute(text(f"SET lock_timeout = {wait_ms}"))
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MAINTENANCE_LOCK_KEY})
        conn.execute(text("RESET lock_timeout"))
        conn.commit()
    except DBAPIError as exc:
        conn.rollback()
        if sqlstate(exc) != SQLState.LOCK_NOT_AVAILABLE:
            raise
        holder = lock_holder(conn) or "another process"
        raise LockTimeoutError(
            f"cannot start {purpose}: {holder} is running a migration, backup or restore on "
            f"this database; waited {timeout_s:g} s, try again when it has finished"
        ) from exc
    try:
        yield
    finally:
        if conn.in_transaction():
            conn.rollback()
        if not conn.closed and not conn.invalidated:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MAINTENANCE_LOCK_KEY})
            conn.commit()
