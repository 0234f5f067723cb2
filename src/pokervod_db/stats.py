"""Table statistics of schema ``pokervod``: sizes, row counts, scans, vacuum state, index usage.

The numbers come from PostgreSQL's catalogs and statistics views, which the server updates lazily
(``n_live_tup`` after a backend flushes its counters, ``reltuples`` after ANALYZE/VACUUM): row
counts are estimates unless ``exact=True`` asks for ``count(*)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from pokervod_db.models import Base
from pokervod_db.monitoring import TopStatements
from pokervod_db.settings import SCHEMA


def table_names() -> list[str]:
    """Every table of the models, in dependency order."""
    return [t.name for t in Base.metadata.sorted_tables]


async def _present_tables(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY tablename"),
        {"s": SCHEMA},
    )
    return [str(name) for name in rows.scalars()]


async def _count_all(conn: AsyncConnection, names: list[str]) -> dict[str, int]:
    if not names:
        return {}
    # Names come from pg_tables; quoting keeps any odd name a name. One statement, one snapshot.
    union = " UNION ALL ".join(
        f"SELECT '{n}' AS t, count(*) AS n FROM {SCHEMA}.\"{n}\"" for n in names
    )
    rows = (await conn.execute(text(union))).all()
    return {str(t): int(n) for t, n in rows}


async def exact_row_counts(conn: AsyncConnection) -> dict[str, int]:
    """``count(*)`` of every model table that exists (one statement, one snapshot)."""
    present = set(await _present_tables(conn))
    return await _count_all(conn, [n for n in table_names() if n in present])


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass
class TableStats:
    """Statistics of one table (sizes in bytes; times tz-aware, None when it never happened)."""

    name: str
    row_estimate: int
    exact_rows: int | None
    table_bytes: int
    index_bytes: int
    total_bytes: int
    seq_scans: int
    idx_scans: int
    live_tuples: int
    dead_tuples: int
    last_vacuum: datetime | None
    last_autovacuum: datetime | None
    last_analyze: datetime | None
    last_autoanalyze: datetime | None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze"):
            data[key] = _iso(data[key])
        return data


@dataclass
class IndexInfo:
    """An index that was never scanned since the statistics were last reset."""

    table: str
    index: str
    scans: int
    size_bytes: int
    unique: bool
    primary: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DuplicateIndexes:
    """Indexes of one table with the same method, columns, operator classes and predicate."""

    table: str
    indexes: list[str]
    columns: list[str]
    definition: str
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IndexReport:
    """Index usage of the schema: indexes never scanned and duplicate indexes."""

    unused: list[IndexInfo] = field(default_factory=list)
    duplicates: list[DuplicateIndexes] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "unused": [i.to_dict() for i in self.unused],
            "duplicates": [d.to_dict() for d in self.duplicates],
        }


@dataclass
class DatabaseStats:
    """Everything `pokervod-db stats --json` prints."""

    database: str
    database_bytes: int
    tables: dict[str, TableStats]
    indexes: IndexReport
    cache_hit_ratio: float | None
    table_cache_hit_ratio: float | None
    top_statements: TopStatements | None = None
    collected_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "database_bytes": self.database_bytes,
            "tables": {name: t.to_dict() for name, t in self.tables.items()},
            "indexes": self.indexes.to_dict(),
            "cache_hit_ratio": self.cache_hit_ratio,
            "table_cache_hit_ratio": self.table_cache_hit_ratio,
            "top_statements": self.top_statements.to_dict() if self.top_statements else None,
            "collected_at": self.collected_at.isoformat(),
        }


_TABLES = text(
    """
    SELECT c.relname AS name,
           c.reltuples AS reltuples,
           coalesce(s.n_live_tup, 0) AS live_tuples,
           coalesce(s.n_dead_tup, 0) AS dead_tuples,
           coalesce(s.seq_scan, 0) AS seq_scans,
           coalesce(s.idx_scan, 0) AS idx_scans,
           pg_table_size(c.oid) AS table_bytes,
           pg_indexes_size(c.oid) AS index_bytes,
           pg_total_relation_size(c.oid) AS total_bytes,
           s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
    WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')
    ORDER BY c.relname
    """
)


async def table_stats(conn: AsyncConnection, *, exact: bool = False) -> dict[str, TableStats]:
    """`TableStats` of every table of the schema, by name ({} when the schema does not exist)."""
    rows = (await conn.execute(_TABLES, {"schema": SCHEMA})).mappings().all()
    counts = await _count_all(conn, [str(r["name"]) for r in rows]) if exact else {}
    result: dict[str, TableStats] = {}
    for r in rows:
        name = str(r["name"])
        # reltuples is -1 for a table never vacuumed or analyzed (PostgreSQL 14+).
        estimate = int(r["reltuples"]) if r["reltuples"] >= 0 else int(r["live_tuples"])
        result[name] = TableStats(
            name=name,
            row_estimate=estimate,
            exact_rows=counts.get(name) if exact else None,
            table_bytes=int(r["table_bytes"]),
            index_bytes=int(r["index_bytes"]),
            total_bytes=int(r["total_bytes"]),
            seq_scans=int(r["seq_scans"]),
            idx_scans=int(r["idx_scans"]),
            live_tuples=int(r["live_tuples"]),
            dead_tuples=int(r["dead_tuples"]),
            last_vacuum=r["last_vacuum"],
            last_autovacuum=r["last_autovacuum"],
            last_analyze=r["last_analyze"],
            last_autoanalyze=r["last_autoanalyze"],
        )
    return result


_UNUSED = text(
    """
    SELECT s.relname AS table, s.indexrelname AS index, s.idx_scan AS scans,
           pg_relation_size(s.indexrelid) AS size_bytes,
           i.indisunique AS unique, i.indisprimary AS primary
    FROM pg_stat_user_indexes s
    JOIN pg_index i ON i.indexrelid = s.indexrelid
    WHERE s.schemaname = :schema AND s.idx_scan = 0
    ORDER BY s.relname, s.indexrelname
    """
)

# Same table, access method, key columns/expressions, operator classes, collations, options and
# predicate: one of them is redundant (a plain index beside a unique one on the same key too).
_DUPLICATES = text(
    """
    SELECT c.relname AS table,
           array_agg(ic.relname ORDER BY ic.relname) AS indexes,
           min(pg_get_indexdef(i.indexrelid)) AS definition,
           sum(pg_relation_size(i.indexrelid))::bigint AS size_bytes,
           (SELECT coalesce(array_agg(coalesce(a.attname, 'expression') ORDER BY k.ord), '{}')
              FROM unnest(min(i.indkey::text)::int2vector::int2[]) WITH ORDINALITY AS k(attnum, ord)
              LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
           ) AS columns
    FROM pg_index i
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_class c ON c.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = :schema
    GROUP BY c.relname, i.indrelid, ic.relam, i.indkey::text, i.indclass::text,
             i.indcollation::text, i.indoption::text,
             coalesce(pg_get_expr(i.indexprs, i.indrelid), ''),
             coalesce(pg_get_expr(i.indpred, i.indrelid), '')
    HAVING count(*) > 1
    ORDER BY c.relname, min(ic.relname)
    """
)


async def index_report(conn: AsyncConnection) -> IndexReport:
    """Indexes never scanned (unique and primary ones flagged: they enforce rules) and duplicates."""
    unused = [
        IndexInfo(
            table=str(r["table"]),
            index=str(r["index"]),
            scans=int(r["scans"]),
            size_bytes=int(r["size_bytes"]),
            unique=bool(r["unique"]),
            primary=bool(r["primary"]),
        )
        for r in (await conn.execute(_UNUSED, {"schema": SCHEMA})).mappings()
    ]
    duplicates = [
        DuplicateIndexes(
            table=str(r["table"]),
            indexes=[str(x) for x in r["indexes"]],
            columns=[str(x) for x in r["columns"]],
            definition=str(r["definition"]),
            size_bytes=int(r["size_bytes"]),
        )
        for r in (await conn.execute(_DUPLICATES, {"schema": SCHEMA})).mappings()
    ]
    return IndexReport(unused=unused, duplicates=duplicates)


def _ratio(hit: Any, read: Any) -> float | None:
    hit, read = int(hit or 0), int(read or 0)
    return round(hit / (hit + read), 4) if hit + read else None


async def cache_hit_ratios(conn: AsyncConnection) -> tuple[float | None, float | None]:
    """Share of block reads served from shared buffers: whole database, and the schema's tables
    with their indexes (None before any block was read)."""
    db = (
        await conn.execute(
            text(
                "SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()"
            )
        )
    ).one()
    tables = (
        await conn.execute(
            text(
                "SELECT sum(coalesce(heap_blks_hit, 0) + coalesce(idx_blks_hit, 0)), "
                "sum(coalesce(heap_blks_read, 0) + coalesce(idx_blks_read, 0)) "
                "FROM pg_statio_user_tables WHERE schemaname = :schema"
            ),
            {"schema": SCHEMA},
        )
    ).one()
    return _ratio(db[0], db[1]), _ratio(tables[0], tables[1])


async def database_stats(
    conn: AsyncConnection,
    *,
    exact: bool = False,
    top_statements: TopStatements | None = None,
) -> DatabaseStats:
    """Table statistics, index usage and cache hit ratios of the connected database."""
    name, size = (
        await conn.execute(text("SELECT current_database(), pg_database_size(current_database())"))
    ).one()
    tables = await table_stats(conn, exact=exact)
    indexes = await index_report(conn)
    db_ratio, table_ratio = await cache_hit_ratios(conn)
    return DatabaseStats(
        database=str(name),
        database_bytes=int(size),
        tables=tables,
        indexes=indexes,
        cache_hit_ratio=db_ratio,
        table_cache_hit_ratio=table_ratio,
        top_statements=top_statements,
    )
