"""Bulk upserts and links: inserted / updated / unchanged, bad rows in both modes, idempotence."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from pokervod_db import ingest
from pokervod_db.models import HandClip, NASFile, NASFolder, VideoFile, hand_clip_tags
from tests.factories import HandClipFactory, NASFolderFactory, TagFactory, VideoFileFactory

MTIME = datetime(2025, 5, 1, tzinfo=UTC)


def _files(n: int, folder_id: uuid.UUID | None = None, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "file_path": f"/nas/poker/WSOP/2025/f{i}.mp4",
            "file_name": f"f{i}.mp4",
            "file_size_bytes": 1000 + i,
            "file_mtime": MTIME,
            "file_category": "video",
            "folder_id": folder_id,
            **extra,
        }
        for i in range(n)
    ]


async def _stamps(session: AsyncSession) -> dict[str, tuple[datetime, datetime]]:
    rows = await session.execute(select(NASFile.file_path, NASFile.created_at, NASFile.updated_at))
    return {path: (created, updated) for path, created, updated in rows}


async def test_upsert_inserts_then_leaves_unchanged_rows_untouched(session: AsyncSession) -> None:
    rows = _files(5)
    result = await ingest.upsert_nas_files(session, rows)
    assert (result.inserted, result.updated, result.unchanged) == (5, 0, 0)
    await session.commit()
    before = await _stamps(session)
    xmins: dict[str, str] = dict(
        (await session.execute(text("SELECT file_path, xmin::text FROM pokervod.nas_files"))).all()
    )

    again = await ingest.upsert_nas_files(session, rows)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 5)
    await session.commit()
    assert await _stamps(session) == before
    # Not rewritten at all: the same tuple versions.
    assert (
        dict(
            (
                await session.execute(text("SELECT file_path, xmin::text FROM pokervod.nas_files"))
            ).all()
        )
        == xmins
    )


async def test_changed_rows_are_updated_and_only_they_move_updated_at(
    session: AsyncSession,
) -> None:
    rows = _files(4)
    await ingest.upsert_nas_files(session, rows)
    await session.commit()
    before = await _stamps(session)

    rows[1]["file_size_bytes"] = 999_999
    rows.append(_files(5)[4])
    result = await ingest.upsert_nas_files(session, rows)
    assert (result.inserted, result.updated, result.unchanged) == (1, 1, 3)
    await session.commit()
    after = await _stamps(session)
    changed = rows[1]["file_path"]
    assert after[changed][1] > before[changed][1]
    assert after[changed][0] == before[changed][0]
    assert all(after[p] == before[p] for p in before if p != changed)
    size = await session.scalar(select(NASFile.file_size_bytes).where(NASFile.file_path == changed))
    assert size == 999_999


async def test_only_the_given_columns_are_written(session: AsyncSession) -> None:
    await ingest.upsert_nas_files(session, _files(2, is_excluded=True, exclude_reason="old"))
    await session.commit()
    # A later batch without exclude_reason and is_excluded: those keep their values.
    partial = [{"file_path": r["file_path"], "file_name": "renamed.mp4"} for r in _files(2)]
    result = await ingest.upsert_nas_files(session, partial)
    assert result.updated == 2
    await session.commit()
    rows = (await session.execute(select(NASFile.file_name, NASFile.exclude_reason))).all()
    assert set(rows) == {("renamed.mp4", "old")}


async def test_sequences_with_columns_are_accepted(session: AsyncSession) -> None:
    folder = NASFolderFactory()
    await session.commit()
    columns = ["file_path", "file_name", "folder_id"]
    result = await ingest.upsert_nas_files(
        session, [("/a/x.mp4", "x.mp4", folder.id), ("/a/y.mp4", "y.mp4", None)], columns=columns
    )
    assert result.inserted == 2
    assert (
        await session.scalar(select(NASFile.folder_id).where(NASFile.file_path == "/a/x.mp4"))
        == folder.id
    )
    with pytest.raises(ValueError, match="columns"):
        await ingest.upsert_nas_files(session, [("/a/z.mp4", "z.mp4")])


async def test_wrong_columns_are_a_programming_error(session: AsyncSession) -> None:
    with pytest.raises(ValueError, match="cannot write"):
        await ingest.upsert_nas_files(session, [{"file_path": "/x", "file_name": "x", "id": 1}])
    with pytest.raises(ValueError, match="must include file_name"):
        await ingest.upsert_nas_files(session, [{"file_path": "/x"}])
    with pytest.raises(ValueError, match="mode"):
        await ingest.upsert_nas_files(session, _files(1), mode="best_effort")  # type: ignore[arg-type]
    assert (await ingest.upsert_nas_files(session, [])).applied == 0


def _bad_batch(folder_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = _files(3, folder_id=folder_id)
    rows += [
        {**_files(1)[0], "file_path": "/bad/negative", "file_size_bytes": -5},
        {**_files(1)[0], "file_path": "/bad/category", "file_category": "movie"},
        {**_files(1)[0], "file_path": "/bad/long", "file_name": "x" * 501},
        {**_files(1)[0], "file_path": "/bad/folder", "folder_id": uuid.uuid4()},
        {**_files(1)[0], "file_path": None},
        {**_files(1)[0], "file_path": "/bad/type", "file_size_bytes": "big"},
        {"file_path": "/bad/missing"},
        {**_files(1)[0], "file_path": "/bad/null-name", "file_name": None},
    ]
    return rows


EXPECTED_BAD = {
    3: "ck_nas_files_file_size_non_negative",
    4: "ck_nas_files_file_category_valid",
    5: "file_name is longer than 500 characters",
    6: "does not exist in nas_folders",
    7: "file_path (part of the key) is missing",
    8: "value not accepted",
    9: "missing column(s) file_name",
    10: "file_name must not be null",
}


async def test_all_or_nothing_refuses_the_batch_and_lists_every_bad_row(
    session: AsyncSession,
) -> None:
    folder = NASFolderFactory()
    await session.commit()
    with pytest.raises(ingest.IngestError) as caught:
        await ingest.upsert_nas_files(session, _bad_batch(folder.id))
    error = caught.value
    assert {b.index: b.reason for b in error.bad_rows}.keys() == EXPECTED_BAD.keys()
    for bad in error.bad_rows:
        assert EXPECTED_BAD[bad.index] in bad.reason, bad
    assert "8 bad row(s), nothing applied" in str(error)
    assert "\n" not in str(error)
    assert next(b for b in error.bad_rows if b.index == 3).key == ("/bad/negative",)
    # Nothing was applied, and the session's transaction is still usable.
    assert await session.scalar(select(NASFile.id).limit(1)) is None
    await session.commit()


async def test_skip_mode_applies_the_good_rows_and_reports_the_bad(session: AsyncSession) -> None:
    folder = NASFolderFactory()
    await session.commit()
    result = await ingest.upsert_nas_files(session, _bad_batch(folder.id), mode="skip_bad_rows")
    assert (result.inserted, result.updated, result.unchanged) == (3, 0, 0)
    assert [b.index for b in result.bad_rows] == sorted(EXPECTED_BAD)
    await session.commit()
    paths = set((await session.execute(select(NASFile.file_path))).scalars())
    assert paths == {r["file_path"] for r in _files(3)}

    # Idempotent: the same batch again changes nothing and reports the same bad rows.
    again = await ingest.upsert_nas_files(session, _bad_batch(folder.id), mode="skip_bad_rows")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert [b.index for b in again.bad_rows] == sorted(EXPECTED_BAD)


async def test_duplicate_keys_in_one_batch_last_one_wins(session: AsyncSession) -> None:
    rows = _files(3)
    rows.append({**rows[0], "file_size_bytes": 1})
    rows.append({**rows[0], "file_size_bytes": 2})
    result = await ingest.upsert_nas_files(session, rows)
    assert (result.inserted, result.updated, result.unchanged) == (3, 0, 0)
    assert [(d.index, d.kept) for d in result.duplicates] == [(0, 4), (3, 4)]
    size = await session.scalar(
        select(NASFile.file_size_bytes).where(NASFile.file_path == rows[0]["file_path"])
    )
    assert size == 2
    # Same again (with the table now holding the winners): unchanged, duplicates still listed.
    again = await ingest.upsert_nas_files(session, rows)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert len(again.duplicates) == 2


async def test_unique_rule_besides_the_key_is_reported(session: AsyncSession) -> None:
    video = VideoFileFactory()
    await session.commit()
    await ingest.upsert_nas_files(session, [{**_files(1)[0], "video_file_id": video.id}])
    clash = {**_files(2)[1], "video_file_id": video.id}
    result = await ingest.upsert_nas_files(session, [clash], mode="skip_bad_rows")
    assert result.applied == 0
    assert "video_file_id already used by another row" in result.bad_rows[0].reason


async def test_rescan_with_most_rows_unchanged_counts_right(session: AsyncSession) -> None:
    rows = _files(40)
    await ingest.upsert_nas_files(session, rows)
    await session.commit()
    for row in rows[::10]:
        row["file_size_bytes"] += 1
    rows += _files(42)[40:]
    result = await ingest.upsert_nas_files(session, rows)
    assert (result.inserted, result.updated, result.unchanged) == (2, 4, 36)


async def test_other_tables_upsert_by_their_natural_keys(session: AsyncSession) -> None:
    folders = await ingest.upsert_nas_folders(
        session,
        [{"folder_path": "/nas/a", "folder_name": "a", "depth": 1}],
    )
    assert folders.inserted == 1
    video = {"file_path": "/nas/a/v.mp4", "file_name": "v.mp4", "display_title": "Final Table"}
    assert (await ingest.upsert_video_files(session, [video])).inserted == 1
    assert (
        await ingest.upsert_video_files(session, [{**video, "display_title": "Day 1"}])
    ).updated == 1
    clip = {
        "sheet_source": "metadata_archive",
        "sheet_row_number": 7,
        "notes": "Ivey rivers a flush",
        "hand_grade": "★★",
    }
    assert (await ingest.upsert_hand_clips(session, [clip])).inserted == 1
    assert (await ingest.upsert_hand_clips(session, [clip])).unchanged == 1
    bad = {**clip, "sheet_row_number": 0, "hand_grade": "5 stars"}
    with pytest.raises(ingest.IngestError) as caught:
        await ingest.upsert_hand_clips(session, [bad])
    reason = caught.value.bad_rows[0].reason
    assert "sheet_row_number_positive" in reason and "hand_grade_valid" in reason
    await session.commit()
    # The stored search vectors follow the written columns.
    found = await session.scalar(
        select(HandClip.id).where(HandClip.notes_tsv.op("@@")(text("'river'::tsquery")))
    )
    assert found is not None
    title = await session.scalar(select(VideoFile.display_title))
    assert title == "Day 1"
    assert await session.scalar(select(NASFolder.depth)) == 1


async def test_pending_orm_objects_are_flushed_first(session: AsyncSession) -> None:
    folder = NASFolderFactory()  # added to the session, not flushed yet
    result = await ingest.upsert_nas_files(session, _files(1, folder_id=folder.id))
    assert result.inserted == 1


# --- links ------------------------------------------------------------------------------------


async def _links(session: AsyncSession) -> set[tuple[uuid.UUID, uuid.UUID]]:
    rows = await session.execute(select(hand_clip_tags.c.hand_clip_id, hand_clip_tags.c.tag_id))
    return {(a, b) for a, b in rows}


async def test_links_are_added_replaced_and_idempotent(session: AsyncSession) -> None:
    a, b = HandClipFactory(), HandClipFactory()
    t1, t2, t3 = TagFactory(), TagFactory(), TagFactory()
    await session.commit()

    added = await ingest.link_hand_clip_tags(session, [(a.id, t1.id), (a.id, t2.id), (a.id, t1.id)])
    assert (added.inserted, added.unchanged) == (2, 0)
    again = await ingest.link_hand_clip_tags(session, {a.id: [t1.id, t2.id]})
    assert (again.inserted, again.unchanged, again.removed) == (0, 2, 0)

    replaced = await ingest.link_hand_clip_tags(
        session, {a.id: [t3.id], b.id: [t1.id]}, replace=True
    )
    assert (replaced.inserted, replaced.removed, replaced.unchanged) == (2, 2, 0)
    assert await _links(session) == {(a.id, t3.id), (b.id, t1.id)}

    cleared = await ingest.link_hand_clip_tags(session, {a.id: []}, replace=True)
    assert (cleared.inserted, cleared.removed) == (0, 1)
    assert await _links(session) == {(b.id, t1.id)}


async def test_links_to_unknown_rows_are_bad_rows(session: AsyncSession) -> None:
    clip, tag = HandClipFactory(), TagFactory()
    await session.commit()
    unknown_clip, unknown_tag = uuid.uuid4(), uuid.uuid4()
    links = [(clip.id, tag.id), (unknown_clip, tag.id), (clip.id, unknown_tag)]
    with pytest.raises(ingest.IngestError) as caught:
        await ingest.link_hand_clip_tags(session, links)
    assert [b.index for b in caught.value.bad_rows] == [1, 2]
    assert "does not exist" in caught.value.bad_rows[0].reason
    assert await _links(session) == set()

    result = await ingest.link_hand_clip_tags(session, links, mode="skip_bad_rows")
    assert result.inserted == 1 and len(result.bad_rows) == 2
    assert await _links(session) == {(clip.id, tag.id)}


async def test_player_links(session: AsyncSession) -> None:
    from tests.factories import PlayerFactory

    clip, ivey = HandClipFactory(), PlayerFactory()
    await session.commit()
    result = await ingest.link_hand_clip_players(session, {clip.id: [ivey.id]})
    assert result.inserted == 1
    await session.refresh(clip, ["players"])
    assert [p.id for p in clip.players] == [ivey.id]
