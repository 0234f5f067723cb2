"""The maintenance lock: one migration, backup or restore of a database at a time.

A PostgreSQL session-level advisory lock on a fixed key. It is held on its own connection for the
whole operation, so it also covers work done by child processes (pg_dump, pg_restore) and it is
released by the server when the holder dies, even by ``kill -9``. Waiting is bounded: the second
runner polls for the lock and fails with one clear line after its timeout instead of queueing
forever.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from pokervod_db.errors import LockTimeoutError

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
def maintenance_lock(
    conn: Connection, *, timeout_s: float, purpose: str, poll_s: float = 0.1
) -> Iterator[None]:
    """Hold the maintenance lock on ``conn`` for the block; wait at most ``timeout_s`` seconds.

    ``conn`` is left with no open transaction on entry and exit, so callers may run their own
    transactions (Alembic's per-migration transactions) while the lock is held.

    A waiting runner polls ``pg_try_advisory_lock`` and sleeps between tries with no transaction
    open. Waiting inside ``pg_advisory_lock`` would keep a snapshot for the whole wait, and
    ``CREATE INDEX CONCURRENTLY`` in the lock holder's migration waits for every older snapshot
    to go: the two would wait for each other until the lock timeout.
    """
    deadline = time.monotonic() + max(0.0, timeout_s)
    while True:
        try:
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": MAINTENANCE_LOCK_KEY}
            ).scalar()
            conn.commit()
        except DBAPIError:
            conn.rollback()
            raise
        if got:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            holder = lock_holder(conn) or "another process"
            conn.rollback()
            raise LockTimeoutError(
                f"cannot start {purpose}: {holder} is running a migration, backup or restore "
                f"on this database; waited {timeout_s:g} s, try again when it has finished"
            )
        time.sleep(min(poll_s, remaining))
    try:
        yield
    finally:
        if conn.in_transaction():
            conn.rollback()
        if not conn.closed and not conn.invalidated:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MAINTENANCE_LOCK_KEY})
            conn.commit()
