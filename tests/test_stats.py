"""Table statistics, index usage and the stats CLI on empty and populated databases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pokervod_db.agent import DatabaseAgent
from pokervod_db.cli.render import human_bytes
from pokervod_db.models import Base
from pokervod_db.settings import Settings
from pokervod_db.stats import database_stats, exact_row_counts, table_stats
from tests.factories import HandClipFactory, PlayerFactory

CLI = str(Path(sys.executable).parent / "pokervod-db")


def test_human_bytes_counts_in_1024s_with_iec_units() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(1023) == "1023 B"
    assert human_bytes(1024) == "1.0 KiB"
    assert human_bytes(8192) == "8.0 KiB"
    assert human_bytes(1_258_291) == "1.2 MiB"
    assert human_bytes(3 * 1024**3) == "3.0 GiB"
    assert human_bytes(5 * 1024**4) == "5.0 TiB"
    assert human_bytes(2048 * 1024**5) == "2,048.0 PiB"
    assert human_bytes(None) == "-"


async def test_empty_database_has_no_tables(empty_db_settings: Settings) -> None:
    async with DatabaseAgent(empty_db_settings) as agent:
        assert await agent.get_table_stats() == {}
        stats = await agent.get_database_stats(exact=True)
    assert stats.tables == {} and stats.indexes.unused == [] and stats.indexes.duplicates == []
    assert stats.database_bytes > 0
    assert json.loads(json.dumps(stats.to_dict()))["tables"] == {}


async def test_migrated_database_lists_every_table_of_the_schema(db_settings: Settings) -> None:
    async with DatabaseAgent(db_settings) as agent:
        tables = await agent.get_table_stats(exact=True)
    expected = {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"}
    assert set(tables) == expected
    assert all(t.exact_rows == 0 for n, t in tables.items() if n != "alembic_version")
    assert tables["alembic_version"].exact_rows == 1
    assert all(t.total_bytes >= t.table_bytes + t.index_bytes - 8192 for t in tables.values())
    assert all(t.last_vacuum is None or t.last_vacuum.tzinfo for t in tables.values())


async def test_populated_database_counts_sizes_and_scans(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    HandClipFactory.create_batch(30)
    PlayerFactory.create_batch(5)
    await session.commit()
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE pokervod.hand_clips"))
        await conn.execute(text("SELECT count(*) FROM pokervod.players"))  # one sequential scan
        await conn.execute(text("SELECT pg_stat_force_next_flush()"))
        await conn.commit()
    async with engine.connect() as conn:
        tables = await table_stats(conn, exact=True)
        counts = await exact_row_counts(conn)
    clips = tables["hand_clips"]
    assert clips.exact_rows == counts["hand_clips"] == 30
    assert clips.row_estimate == 30  # reltuples after ANALYZE
    assert clips.last_analyze is not None
    assert clips.table_bytes >= 8192 and clips.index_bytes > 0
    assert clips.total_bytes >= clips.table_bytes + clips.index_bytes
    assert tables["players"].exact_rows == counts["players"] >= 5
    assert tables["players"].seq_scans >= 1
    data = clips.to_dict()
    assert json.loads(json.dumps(data))["last_analyze"] == clips.last_analyze.isoformat()
    assert set(data) == {
        "name",
        "row_estimate",
        "exact_rows",
        "table_bytes",
        "index_bytes",
        "total_bytes",
        "seq_scans",
        "idx_scans",
        "live_tuples",
        "dead_tuples",
        "last_vacuum",
        "last_autovacuum",
        "last_analyze",
        "last_autoanalyze",
    }


async def test_index_report_finds_unused_and_duplicate_indexes(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE INDEX ix_dup_a ON pokervod.players (name)"))
        await conn.execute(text("CREATE INDEX ix_dup_b ON pokervod.players (name)"))
        # Same column but another predicate, or another method: not duplicates.
        await conn.execute(
            text("CREATE INDEX ix_not_dup ON pokervod.players (name) WHERE name <> ''")
        )
        await conn.execute(text("CREATE INDEX ix_hash ON pokervod.players USING hash (name)"))
    async with engine.connect() as conn:
        stats = await database_stats(conn)
    dups = [d for d in stats.indexes.duplicates if "ix_dup_a" in d.indexes]
    assert len(dups) == 1
    assert dups[0].table == "players" and dups[0].columns == ["name"]
    assert "ix_not_dup" not in dups[0].indexes and "ix_hash" not in dups[0].indexes
    assert not [d for d in stats.indexes.duplicates if "ix_not_dup" in d.indexes]
    unused = {i.index: i for i in stats.indexes.unused}
    assert "ix_dup_a" in unused and not unused["ix_dup_a"].unique
    assert unused["pk_players"].primary
    for ratio in (stats.cache_hit_ratio, stats.table_cache_hit_ratio):
        assert ratio is None or 0.0 <= ratio <= 1.0
    assert stats.cache_hit_ratio is not None  # the statements above read blocks


def test_cli_stats_table_and_json(cli_env: dict[str, str]) -> None:
    run = subprocess.run([CLI, "stats"], env=cli_env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "hand_clips" in run.stdout and "KiB" in run.stdout
    assert "cache hit ratio" in run.stdout
    run = subprocess.run(
        [CLI, "stats", "--json", "--exact"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert set(data) == {
        "database",
        "database_bytes",
        "tables",
        "indexes",
        "cache_hit_ratio",
        "table_cache_hit_ratio",
        "top_statements",
        "collected_at",
    }
    assert data["tables"]["projects"]["exact_rows"] == 0
    assert set(data["indexes"]) == {"unused", "duplicates"}
    assert set(data["top_statements"]) == {"available", "note", "statements"}
