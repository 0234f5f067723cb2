"""Table statistics of schema ``pokervod``."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from pokervod_db.models import Base
from pokervod_db.settings import SCHEMA


def table_names() -> list[str]:
    """Every table of the models, in dependency order."""
    return [t.name for t in Base.metadata.sorted_tables]


async def exact_row_counts(conn: AsyncConnection) -> dict[str, int]:
    """``count(*)`` of every model table that exists (one statement, one snapshot)."""
    present = set(
        (
            await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": SCHEMA}
            )
        ).scalars()
    )
    names = [n for n in table_names() if n in present]
    if not names:
        return {}
    union = " UNION ALL ".join(f"SELECT '{n}' AS t, count(*) AS n FROM {SCHEMA}.{n}" for n in names)
    rows = (await conn.execute(text(union))).all()
    return {str(t): int(n) for t, n in rows}
