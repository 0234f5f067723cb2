"""What schema ``pokervod`` holds: row counts, per-table content checksums, object counts.

Measured at backup time in pg_dump's own snapshot and again after a restore or in a verify's
scratch database; equal numbers mean the archive round-tripped every row and every object.

The checksum of a table is the sum of ``hashtextextended(row::text, 0)`` over its rows: independent
of row order (a restore changes the physical order), fast (one pass, no sort), and stable across
PostgreSQL versions (hash partitioning relies on that function not changing). The session settings
that shape a row's text (time zone, date and float output) are pinned first.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from pokervod_db.settings import SCHEMA

CHECKSUM_METHOD = "sum-hashtextextended-row-text-v1"

# SET LOCAL: lasts for the current transaction only, so a pooled connection is left as it was.
PIN_OUTPUT_SETTINGS = (
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL DateStyle = 'ISO, MDY'",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL extra_float_digits = 1",
    "SET LOCAL bytea_output = 'hex'",
)

# Derived tables a restore writes anew instead of loading (fresh random versions of
# 007_catalog_versions): their checksum covers the keys only, which must round-trip.
_CHECKSUMMED_TEXT = {"catalog_versions": "t.project_id::text"}

_OBJECT_QUERIES = {
    "tables": "SELECT count(*) FROM pg_class c WHERE c.relnamespace = {ns} AND c.relkind IN ('r', 'p')",
    "indexes": "SELECT count(*) FROM pg_class c WHERE c.relnamespace = {ns} AND c.relkind IN ('i', 'I')",
    "sequences": "SELECT count(*) FROM pg_class c WHERE c.relnamespace = {ns} AND c.relkind = 'S'",
    "views": "SELECT count(*) FROM pg_class c WHERE c.relnamespace = {ns} AND c.relkind IN ('v', 'm')",
    "constraints": "SELECT count(*) FROM pg_constraint WHERE connamespace = {ns}",
    "triggers": (
        "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE c.relnamespace = {ns} AND NOT t.tgisinternal"
    ),
    "functions": "SELECT count(*) FROM pg_proc WHERE pronamespace = {ns}",
}


@dataclass(frozen=True)
class ContentSummary:
    row_counts: dict[str, int]
    checksums: dict[str, str]
    objects: dict[str, int]
    revision: str | None


def schema_exists(conn: Connection, schema: str = SCHEMA) -> bool:
    return bool(
        conn.execute(
            text("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = :s)"), {"s": schema}
        ).scalar()
    )


def table_list(conn: Connection, schema: str = SCHEMA) -> list[str]:
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :s AND c.relkind IN ('r', 'p') ORDER BY c.relname"
        ),
        {"s": schema},
    ).scalars()
    return [str(r) for r in rows]


def object_counts_sql(schema: str = SCHEMA) -> dict[str, str]:
    """The catalog queries behind `ContentSummary.objects` (also run inside a restore)."""
    ns = f"(SELECT oid FROM pg_namespace WHERE nspname = {quote_literal(schema)})"
    return {name: sql.format(ns=ns) for name, sql in _OBJECT_QUERIES.items()}


def summarize(conn: Connection, *, checksums: bool = True, schema: str = SCHEMA) -> ContentSummary:
    """Counts (and checksums) of every table of the schema, in the connection's transaction."""
    for statement in PIN_OUTPUT_SETTINGS:
        conn.execute(text(statement))
    tables = table_list(conn, schema)
    counts: dict[str, int] = {}
    sums: dict[str, str] = {}
    for table in tables:
        qualified = f"{quote_ident(schema)}.{quote_ident(table)}"
        if checksums:
            row = conn.execute(
                text(
                    "SELECT count(*), coalesce(sum(hashtextextended("
                    f"{_CHECKSUMMED_TEXT.get(table, 't::text')}, 0)), 0)::text "
                    f"FROM {qualified} t"
                )
            ).one()
            counts[table] = int(row[0])
            sums[table] = str(row[1])
        else:
            counts[table] = int(
                conn.execute(text(f"SELECT count(*) FROM {qualified}")).scalar_one()
            )
    objects = {
        name: int(conn.execute(text(sql)).scalar_one())
        for name, sql in object_counts_sql(schema).items()
    }
    revision = None
    if "alembic_version" in tables:
        revision = conn.execute(
            text(f"SELECT version_num FROM {quote_ident(schema)}.alembic_version LIMIT 1")
        ).scalar()
    return ContentSummary(counts, sums, objects, str(revision) if revision else None)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
