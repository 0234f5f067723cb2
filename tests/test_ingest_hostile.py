"""Ingest never bends a value: hostile shapes and values are reported rows, never stored
differently from what was given; property tests over arbitrary rows prove it."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pokervod_db import ingest
from pokervod_db.models import HandClip, NASFile
from tests.factories import VideoFileFactory


async def _stored(session: AsyncSession) -> dict[str, dict[str, Any]]:
    rows = (await session.execute(select(NASFile))).scalars()
    return {r.file_path: r.__dict__ for r in rows}


async def _count(session: AsyncSession) -> int:
    return int(await session.scalar(text("SELECT count(*) FROM pokervod.nas_files")) or 0)


def _file(path: str, **extra: Any) -> dict[str, Any]:
    return {"file_path": path, "file_name": path.rsplit("/", 1)[-1], **extra}


async def test_a_column_only_later_rows_carry_is_never_dropped(session: AsyncSession) -> None:
    rows = [
        _file("/nas/r1"),
        _file("/nas/r2", file_extension="x" * 21, file_category="evil"),
        _file("/nas/r3", file_extension="mp4", file_category="video"),
    ]
    with pytest.raises(ingest.IngestError) as caught:
        await ingest.upsert_nas_files(session, rows)
    reasons = {b.index: b.reason for b in caught.value.bad_rows}
    assert set(reasons) == {0, 1}
    assert "missing column(s) file_extension, file_category" in reasons[0]
    assert "longer than 20" in reasons[1] and "file_category_valid" in reasons[1]
    assert await _count(session) == 0

    result = await ingest.upsert_nas_files(session, rows, mode="skip_bad_rows")
    assert [b.index for b in result.bad_rows] == [0, 1] and result.inserted == 1
    stored = await _stored(session)
    assert list(stored) == ["/nas/r3"] and stored["/nas/r3"]["file_extension"] == "mp4"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("/nas/r3", "a str is one value"),
        (b"/nas/r3", "a bytes is one value"),
        (("/nas/r3", "r3", "extra"), "has 3 value(s) for 2 column(s)"),
        (("/nas/r3",), "has 1 value(s) for 2 column(s)"),
        (42, "not a row: int"),
        ({"file_path": "/nas/r3", "file_name": "r3", "file_extension": "mp4"}, "not in columns="),
    ],
)
async def test_positional_rows_need_exactly_one_value_per_column(
    session: AsyncSession, row: Any, reason: str
) -> None:
    rows = [("/nas/ok", "ok"), row]
    columns = ["file_path", "file_name"]
    with pytest.raises(ingest.IngestError) as caught:
        await ingest.upsert_nas_files(session, rows, columns=columns)
    (bad,) = caught.value.bad_rows
    assert bad.index == 1 and reason in bad.reason
    assert await _count(session) == 0
    result = await ingest.upsert_nas_files(session, rows, columns=columns, mode="skip_bad_rows")
    assert result.inserted == 1 and [b.index for b in result.bad_rows] == [1]
    assert list(await _stored(session)) == ["/nas/ok"]


@pytest.mark.parametrize("size", [1.5, Decimal("2.01"), True, float("nan"), float("inf")])
async def test_non_whole_number_for_an_integer_column_is_a_bad_row(
    session: AsyncSession, size: Any
) -> None:
    rows = [_file("/nas/a", file_size_bytes=1), _file("/nas/b", file_size_bytes=size)]
    with pytest.raises(ingest.IngestError) as caught:
        await ingest.upsert_nas_files(session, rows)
    (bad,) = caught.value.bad_rows
    assert bad.index == 1 and bad.key == ("/nas/b",) and "whole number" in bad.reason
    assert await _count(session) == 0


@pytest.mark.parametrize("mode", ["all_or_nothing", "skip_bad_rows"])
async def test_a_string_too_long_by_trailing_spaces_is_a_bad_row_not_cut(
    session: AsyncSession, mode: str
) -> None:
    # PostgreSQL stores such a value cut to varchar(n) without an error when the excess is
    # spaces; the ingest must refuse it like any other over-long value.
    rows = [_file("/nas/a", file_extension="mp4"), _file("/nas/b", file_extension="mp4" + " " * 18)]
    if mode == "all_or_nothing":
        with pytest.raises(ingest.IngestError) as caught:
            await ingest.upsert_nas_files(session, rows)
        (bad,) = caught.value.bad_rows
        assert await _count(session) == 0
    else:
        result = await ingest.upsert_nas_files(session, rows, mode="skip_bad_rows")
        (bad,) = result.bad_rows
        assert result.inserted == 1 and list(await _stored(session)) == ["/nas/a"]
    assert (
        bad.index == 1
        and bad.key == ("/nas/b",)
        and "file_extension is longer than 20 characters" in bad.reason
    )


async def test_whole_floats_are_stored_as_the_integer_they_equal(session: AsyncSession) -> None:
    await ingest.upsert_nas_files(session, [_file("/nas/a", file_size_bytes=2.0)])
    assert (await _stored(session))["/nas/a"]["file_size_bytes"] == 2


async def test_unique_clash_inside_the_batch_names_both_rows(session: AsyncSession) -> None:
    video = VideoFileFactory()
    await session.flush()
    rows = [
        _file("/nas/a", video_file_id=video.id),
        _file("/nas/b", video_file_id=None),
        _file("/nas/c", video_file_id=video.id),
    ]
    for mode in ("all_or_nothing", "skip_bad_rows"):
        try:
            result = await ingest.upsert_nas_files(session, rows, mode=mode)
            bad = result.bad_rows
        except ingest.IngestError as exc:
            assert mode == "all_or_nothing"
            bad = exc.bad_rows
            assert await _count(session) == 0
        assert [b.index for b in bad] == [0, 2]
        assert all("ix_nas_files_video_file_id" in b.reason for b in bad)
    assert list(await _stored(session)) == ["/nas/b"]


async def test_unique_clash_against_the_table_names_the_row(session: AsyncSession) -> None:
    video = VideoFileFactory()
    await session.flush()
    await ingest.upsert_nas_files(session, [_file("/nas/a", video_file_id=video.id)])
    with pytest.raises(ingest.IngestError) as caught:
        await ingest.upsert_nas_files(
            session, [_file("/nas/x", video_file_id=None), _file("/nas/b", video_file_id=video.id)]
        )
    (bad,) = caught.value.bad_rows
    assert bad.index == 1 and "already used by another row" in bad.reason


async def test_text_too_large_for_full_text_search_is_a_bad_row(session: AsyncSession) -> None:
    clip = {"sheet_source": "metadata_archive", "sheet_row_number": 1, "notes": "fine notes"}
    words = " ".join(f"w{i:x}" for i in range(1_200_000))  # ~10 MB of distinct words
    huge = {**clip, "sheet_row_number": 2, "notes": words}
    with pytest.raises(ingest.IngestError) as caught:
        await ingest.upsert_hand_clips(session, [clip, huge])
    (bad,) = caught.value.bad_rows
    assert bad.index == 1 and "too large for full-text search" in bad.reason
    result = await ingest.upsert_hand_clips(session, [clip, huge], mode="skip_bad_rows")
    assert result.inserted == 1
    assert await session.scalar(select(HandClip.notes)) == "fine notes"


# --- property: stored == given, or the row is reported ----------------------------------------

_COLUMNS = ["file_name", "file_size_bytes", "file_extension", "file_category", "exclude_reason"]
_values = {
    "file_name": st.text(max_size=520) | st.integers() | st.none(),
    "file_size_bytes": st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.decimals(allow_nan=False, places=3)
    | st.booleans()
    | st.none()
    | st.text(max_size=5),
    "file_extension": st.text(max_size=25) | st.none(),
    "file_category": st.sampled_from(["video", "other", "evil", "VIDEO", ""]) | st.none(),
    "exclude_reason": st.text(max_size=110) | st.none(),
}


@st.composite
def _batches(draw: st.DrawFn) -> list[Any]:
    n = draw(st.integers(min_value=1, max_value=6))
    rows: list[Any] = []
    for _ in range(n):
        row: dict[str, Any] = {"file_path": draw(st.sampled_from(["/p/1", "/p/2", "/p/3", "/p/4"]))}
        for column in draw(st.lists(st.sampled_from(_COLUMNS), unique=True)):
            row[column] = draw(_values[column])
        rows.append(row)
    return rows


def _equal(given: Any, stored: Any) -> bool:
    if isinstance(given, bool) or isinstance(stored, bool):
        return given is stored
    return bool(given == stored)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=_batches())
async def test_arbitrary_rows_are_stored_as_given_or_reported(
    engine: AsyncEngine, batch: list[dict[str, Any]]
) -> None:
    factory = async_sessionmaker(engine, expire_on_commit=False)
    async with factory() as session:
        try:
            result = await ingest.upsert_nas_files(session, batch, mode="skip_bad_rows")
        except ingest.IngestError as exc:
            pytest.fail(f"skip_bad_rows refused the batch without naming rows: {exc}")
        except ValueError as exc:  # a call-level refusal (e.g. no file_name at all): clear
            assert "\n" not in str(exc)
            assert await _count(session) == 0
            await session.rollback()
            return
        reported = {b.index for b in result.bad_rows}
        superseded = {d.index for d in result.duplicates}
        stored = await _stored(session)
        for index, row in enumerate(batch):
            if index in reported or index in superseded:
                continue
            kept = stored.get(row["file_path"])
            assert kept is not None, f"row {index} neither stored nor reported: {row}"
            for column, value in row.items():
                assert _equal(value, kept[column]), (index, column, value, kept[column])
        assert len(stored) == len(
            {
                r["file_path"]
                for i, r in enumerate(batch)
                if i not in reported and i not in superseded
            }
        )
        await session.rollback()


async def test_refusal_without_rows_says_why(session: AsyncSession) -> None:
    with pytest.raises(ValueError, match="cannot write column"):
        await ingest.upsert_nas_files(session, [{**_file("/nas/a"), "id": uuid.uuid4()}])
