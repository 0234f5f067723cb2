"""Query monitoring: slow-query detection, statement logging and pg_stat_statements."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from pokervod_db.database import create_engine
from pokervod_db.monitoring import query_stats, shorten, top_statements
from pokervod_db.settings import Settings


@pytest.fixture
async def monitored(db_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_settings.model_copy(update={"slow_query_ms": 500.0}))
    yield engine
    await engine.dispose()


def _slow_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "pokervod_db.slow_query"]


async def test_query_above_the_threshold_is_logged_shortened_without_values(
    monitored: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pokervod_db.slow_query")
    async with monitored.connect() as conn:
        await conn.execute(
            text("SELECT pg_sleep(:seconds), :secret AS secret"),
            {"seconds": 0.6, "secret": "player-email@example.com"},
        )
    (record,) = _slow_records(caplog)
    message = record.getMessage()
    assert message.startswith("slow query (")
    assert "pg_sleep(" in message
    assert "0.6" not in message.split("):", 1)[1]  # the statement part has no values
    assert "player-email" not in message
    stats = query_stats(monitored)
    assert stats is not None and stats.slow_queries == 1 and stats.slowest_ms >= 500
    assert stats.to_dict()["recent_slow"][0]["statement"].startswith("SELECT pg_sleep(")


async def test_query_below_the_threshold_is_not_reported(
    monitored: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pokervod_db.slow_query")
    async with monitored.connect() as conn:
        await conn.execute(text("SELECT pg_sleep(0.05)"))
    assert _slow_records(caplog) == []
    stats = query_stats(monitored)
    assert stats is not None and stats.slow_queries == 0 and stats.queries >= 1


async def test_failed_statement_does_not_confuse_the_timer(
    monitored: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pokervod_db.slow_query")
    async with monitored.connect() as conn:
        with pytest.raises(DBAPIError):
            await conn.execute(text("SELECT 1/0"))
        await conn.rollback()
        await conn.execute(text("SELECT pg_sleep(0.6)"))
        await conn.execute(text("SELECT 1"))
    assert len(_slow_records(caplog)) == 1


def test_shorten_folds_whitespace_and_cuts() -> None:
    statement = "SELECT a,\n       b\nFROM   t WHERE " + " AND ".join(
        f"c{i} = $1" for i in range(80)
    )
    short = shorten(statement)
    assert len(short) == 200 and short.endswith("…") and "\n" not in short
    assert short.startswith("SELECT a, b FROM t WHERE")


async def test_statement_logging_follows_the_setting(
    db_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pokervod_db.query")
    for echo in (False, True):
        engine = create_engine(db_settings.model_copy(update={"echo_sql": echo}))
        try:
            async with engine.connect() as conn:
                await conn.execute(text(f"SELECT {int(echo)} AS echo_marker"))
        finally:
            await engine.dispose()
    logged = [r.getMessage() for r in caplog.records if r.name == "pokervod_db.query"]
    assert any("SELECT 1 AS echo_marker" in m for m in logged)
    assert not any("SELECT 0 AS echo_marker" in m for m in logged)


async def test_top_statements_from_pg_stat_statements(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        top = await top_statements(conn, limit=50)
        if not top.available:
            assert top.note and "pg_stat_statements" in top.note and top.statements == []
            preload = await conn.scalar(text("SELECT current_setting('shared_preload_libraries')"))
            if "pg_stat_statements" in str(preload):
                # The embedded server preloads it; test databases are copies without the extension.
                await conn.execute(
                    text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA public")
                )
                await conn.commit()
                top = await top_statements(conn, limit=50)
        if not top.available:
            pytest.skip(f"pg_stat_statements unavailable on this server: {top.note}")
        for _ in range(3):
            await conn.execute(text("SELECT pg_sleep(0.01), 'top-marker'"))
        top = await top_statements(conn, limit=50)
    assert top.available and top.note is None
    (mine,) = [s for s in top.statements if "pg_sleep" in s.query]
    assert mine.calls >= 3 and mine.total_ms >= 25
    assert "top-marker" not in mine.query  # constants normalised by the server
    totals = [s.total_ms for s in top.statements]
    assert totals == sorted(totals, reverse=True)
