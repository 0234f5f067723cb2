"""Online schema changes for migration scripts: index builds and drops that do not block writes.

Use these from a revision's ``upgrade()``/``downgrade()`` for indexes on tables that already hold
data. Each runs ``CREATE/DROP INDEX CONCURRENTLY`` in Alembic's ``autocommit_block()`` (it
cannot run in a transaction), with the session's ``lock_timeout`` from env.py; other runners of
the upgrade wait for the maintenance lock by polling (locking.py), holding no snapshot the build
would wait for. A build that fails leaves an INVALID index behind: it is dropped at once, and
one found at the start of a build (a crash midway) is dropped and rebuilt.

Writes to the table go on during the build; a revision that uses these is no longer all-or-
nothing with the revisions before it (the block commits them first), which Alembic's version
table records correctly.
"""

from __future__ import annotations

import logging

from alembic import op
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from pokervod_db.errors import MigrationError, translate
from pokervod_db.settings import SCHEMA

log = logging.getLogger(__name__)

_STATE = text(
    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relname = :name"
)
_INVALID = text(
    "SELECT n.nspname || '.' || c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :schema AND NOT i.indisvalid ORDER BY 1"
)


def index_state(conn: Connection, name: str, *, schema: str = SCHEMA) -> str | None:
    """``"valid"``, ``"invalid"`` (a failed concurrent build) or None when there is no such index."""
    row = conn.execute(_STATE, {"schema": schema, "name": name}).first()
    if row is None:
        return None
    return "valid" if row[0] else "invalid"


def invalid_indexes(conn: Connection, *, schema: str = SCHEMA) -> list[str]:
    """Indexes left INVALID by a failed concurrent build (not used by queries, still updated)."""
    return [str(r[0]) for r in conn.execute(_INVALID, {"schema": schema})]


def create_index_concurrently(
    name: str, definition: str, *, unique: bool = False, schema: str = SCHEMA
) -> None:
    """``CREATE [UNIQUE] INDEX CONCURRENTLY name ON schema.definition`` without blocking writes.

    ``definition`` is ``"table (columns) [INCLUDE …] [WHERE …]"`` as in revision 004.
    """
    ctx = op.get_context()
    kind = "UNIQUE INDEX" if unique else "INDEX"
    create = f"CREATE {kind} CONCURRENTLY IF NOT EXISTS {name} ON {schema}.{definition}"
    drop = f"DROP INDEX CONCURRENTLY IF EXISTS {schema}.{name}"
    with ctx.autocommit_block():
        if ctx.as_sql:
            op.execute(create)
            return
        conn = op.get_bind()
        if index_state(conn, name, schema=schema) == "invalid":
            log.warning("index %s.%s was left invalid by a failed build; rebuilding", schema, name)
            op.execute(drop)
        try:
            op.execute(create)
        except DBAPIError as exc:
            reason = translate(exc)
            left = index_state(conn, name, schema=schema)
            if left == "invalid":
                op.execute(drop)
            raise MigrationError(
                f"building index {schema}.{name} concurrently failed ({reason}); "
                + ("its invalid leftover was dropped; " if left == "invalid" else "")
                + "fix the cause and run the upgrade again"
            ) from exc
        if index_state(conn, name, schema=schema) != "valid":
            raise MigrationError(f"index {schema}.{name} is not valid after its build")


def drop_index_concurrently(name: str, *, schema: str = SCHEMA) -> None:
    """``DROP INDEX CONCURRENTLY IF EXISTS`` without blocking reads or writes of the table."""
    ctx = op.get_context()
    with ctx.autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema}.{name}")
