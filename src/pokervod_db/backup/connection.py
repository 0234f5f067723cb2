"""The maintenance connection of a backup, restore or verify: locked, translated errors.

The connection itself is `pokervod_db.database.maintenance_connection` (re-exported here);
this module adds the maintenance lock and the server facts a manifest records.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, text

from pokervod_db.database import maintenance_connection
from pokervod_db.locking import maintenance_lock
from pokervod_db.settings import Settings

__all__ = ["ServerInfo", "locked_connection", "maintenance_connection", "server_info"]


@dataclass(frozen=True)
class ServerInfo:
    version_num: int
    version: str
    database: str


def server_info(conn: Connection) -> ServerInfo:
    row = conn.execute(
        text(
            "SELECT current_setting('server_version_num')::int, "
            "current_setting('server_version'), current_database()"
        )
    ).one()
    return ServerInfo(int(row[0]), str(row[1]).split()[0], str(row[2]))


@contextmanager
def locked_connection(settings: Settings, *, purpose: str) -> Iterator[Connection]:
    """A connection holding the maintenance lock (waiting at most ``BACKUP_LOCK_TIMEOUT_S``).

    The lock is a session advisory lock: if this process dies, the server releases it with the
    connection, and the children we started die with us (see `tools.spawn`).
    """
    with (
        maintenance_connection(
            settings, application_name=f"pokervod-db {purpose.removeprefix('the ')}"
        ) as conn,
        maintenance_lock(conn, timeout_s=settings.backup_lock_timeout_s, purpose=purpose),
    ):
        yield conn
