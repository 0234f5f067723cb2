"""The rescan path of the upsert (most keys exist): a joined UPDATE of the changed rows, then an
INSERT of the new keys. Counts, bad rows, all-or-nothing across both statements, and writers
that change or delete the same rows concurrently."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pokervod_db import ingest
from pokervod_db.models import NASFile

MTIME = datetime(2025, 5, 1, tzinfo=UTC)


def _files(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "file_path": f"/nas/rescan/f{i:03d}.mp4",
            "file_name": f"f{i:03d}.mp4",
            "file_size_bytes": 1000 + i,
            "file_mtime": MTIME,
            "file_category": "video",
            "folder_id": None,
            **extra,
        }
        for i in range(n)
    ]


async def _table(session: AsyncSession) -> dict[str, tuple[Any, ...]]:
    rows = await session.execute(
        text(
            "SELECT file_path, file_name, file_size_bytes, file_mtime, updated_at, xmin::text "
            "FROM pokervod.nas_files"
        )
    )
    return {r[0]: tuple(r[1:]) for r in rows}


async def _seed(session: AsyncSession, n: int = 40) -> list[dict[str, Any]]:
    rows = _files(n)
    assert (await ingest.upsert_nas_files(session, rows)).inserted == n
    await session.commit()
    return rows


async def test_rescan_updates_changed_inserts_new_and_leaves_the_rest(
    session: AsyncSession,
) -> None:
    rows = await _seed(session)
    before = await _table(session)
    for row in rows[::10]:
        row["file_size_bytes"] += 4096
    rows += _files(43)[40:]
    result = await ingest.upsert_nas_files(session, rows)
    assert (result.inserted, result.updated, result.unchanged) == (3, 4, 36)
    await session.commit()
    after = await _table(session)
    changed = {r["file_path"] for r in rows[:40:10]}
    for path, old in before.items():
        if path in changed:
            assert after[path][1] == old[1] + 4096
            assert after[path][3] > old[3]  # updated_at moved
        else:
            assert after[path] == old  # not even rewritten: same xmin
    assert len(after) == 43

    # The same batch again: nothing to do.
    again = await ingest.upsert_nas_files(session, rows)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 43)


async def test_rescan_setting_a_column_to_null_is_an_update(session: AsyncSession) -> None:
    rows = await _seed(session)
    rows[5]["file_mtime"] = None
    result = await ingest.upsert_nas_files(session, rows)
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 39)
    mtime = await session.scalar(
        select(NASFile.file_mtime).where(NASFile.file_path == rows[5]["file_path"])
    )
    assert mtime is None


async def test_rescan_with_a_bad_new_row_applies_nothing(session: AsyncSession) -> None:
    """The UPDATE succeeds, the INSERT of the new keys fails: the UPDATE is undone too."""
    rows = await _seed(session)
    before = await _table(session)
    for row in rows[::10]:
        row["file_size_bytes"] += 1
    rows.append({**_files(41)[40], "folder_id": uuid.uuid4()})  # no such folder
    with pytest.raises(ingest.IngestError) as caught:
        await ingest.upsert_nas_files(session, rows)
    assert [b.index for b in caught.value.bad_rows] == [40]
    assert "does not exist in nas_folders" in caught.value.bad_rows[0].reason
    assert await _table(session) == before
    await session.commit()  # the caller's transaction is still usable

    skipped = await ingest.upsert_nas_files(session, rows, mode="skip_bad_rows")
    assert (skipped.inserted, skipped.updated, skipped.unchanged) == (0, 4, 36)
    assert [b.index for b in skipped.bad_rows] == [40]


async def test_rescan_with_a_bad_changed_row_names_it_and_applies_nothing(
    session: AsyncSession,
) -> None:
    rows = await _seed(session)
    before = await _table(session)
    rows[1]["file_size_bytes"] += 1
    rows[7]["file_size_bytes"] = -1
    rows[9]["file_name"] = "x" * 501
    with pytest.raises(ingest.IngestError) as caught:
        await ingest.upsert_nas_files(session, rows)
    assert {b.index: b.key for b in caught.value.bad_rows} == {
        7: (rows[7]["file_path"],),
        9: (rows[9]["file_path"],),
    }
    assert await _table(session) == before


async def test_rescan_with_duplicate_keys_last_one_wins(session: AsyncSession) -> None:
    rows = await _seed(session)
    rows.append({**rows[3], "file_size_bytes": 7})
    rows.append({**rows[3]})  # the last one: unchanged
    result = await ingest.upsert_nas_files(session, rows)
    assert [(d.index, d.kept) for d in result.duplicates] == [(3, 41), (40, 41)]
    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 40)
    size = await session.scalar(
        select(NASFile.file_size_bytes).where(NASFile.file_path == rows[3]["file_path"])
    )
    assert size == rows[3]["file_size_bytes"]


async def _wait_until_blocked(session: AsyncSession, application_pid: int) -> None:
    """Until backend ``application_pid`` waits for a lock (the other writer's row)."""
    for _ in range(500):
        waiting = await session.scalar(
            text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"),
            {"pid": application_pid},
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the upsert never waited for the other writer")


async def _pid(session: AsyncSession) -> int:
    return int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)


async def _upsert_racing(
    session: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
    rows: list[dict[str, Any]],
    other_writer_sql: str,
) -> ingest.UpsertResult:
    """Another writer runs ``other_writer_sql`` on the third row (``:p``, its path) and holds
    its lock; the upsert of ``rows`` starts, waits for that lock, and the writer commits."""
    async with session_factory() as other, session_factory() as watcher:
        await other.execute(text(other_writer_sql), {"p": rows[2]["file_path"]})
        pid = await _pid(session)
        upsert = asyncio.create_task(ingest.upsert_nas_files(session, rows))
        await _wait_until_blocked(watcher, pid)
        await other.commit()
        return await upsert


async def test_rescan_does_not_lose_a_concurrent_update(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Another writer changes a row the rescan changes too, and commits while the rescan waits
    for it: the rescan's values are written on top of the other writer's (re-checked), and a
    row the other writer changed that the rescan does not change is left as that writer left
    it (the rescan compared against the newest version, not the one it first saw)."""
    rows = await _seed(session)
    rows[2]["file_size_bytes"] = 123_456
    result = await _upsert_racing(
        session,
        session_factory,
        rows,
        "UPDATE pokervod.nas_files SET file_size_bytes = 1, file_name = 'other.mp4' "
        "WHERE file_path = :p",
    )
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 39)
    await session.commit()
    stored = (
        await session.execute(
            select(NASFile.file_size_bytes, NASFile.file_name).where(
                NASFile.file_path == rows[2]["file_path"]
            )
        )
    ).one()
    assert tuple(stored) == (123_456, rows[2]["file_name"])


async def test_rescan_counts_a_row_another_writer_already_changed_alike_as_unchanged(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    rows = await _seed(session)
    rows[2]["file_size_bytes"] = 55
    result = await _upsert_racing(
        session,
        session_factory,
        rows,
        "UPDATE pokervod.nas_files SET file_size_bytes = 55 WHERE file_path = :p",
    )
    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 40)


async def test_rescan_inserts_again_a_row_deleted_concurrently(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """A changed row deleted by another writer while the UPDATE waits for it: the UPDATE skips
    it, the INSERT (a new snapshot) finds the key gone and inserts the row: nothing lost."""
    rows = await _seed(session)
    rows[2]["file_size_bytes"] = 77
    result = await _upsert_racing(
        session,
        session_factory,
        rows,
        "DELETE FROM pokervod.nas_files WHERE file_path = :p",
    )
    assert (result.inserted, result.updated, result.unchanged) == (1, 0, 39)
    size = await session.scalar(
        select(NASFile.file_size_bytes).where(NASFile.file_path == rows[2]["file_path"])
    )
    assert size == 77


async def test_phase_timings_name_the_steps_of_a_call(session: AsyncSession) -> None:
    rows = await _seed(session, 4)
    with ingest.phase_timings() as phases:
        await ingest.upsert_nas_files(session, rows)
    assert {"stage", "duplicate_check", "sample", "apply"} <= phases.keys()
    assert all(seconds > 0 for seconds in phases.values())
    seen = dict(phases)
    await ingest.upsert_nas_files(session, rows)  # outside the block: not counted
    assert phases == seen
    assert not ingest._phase_sinks
