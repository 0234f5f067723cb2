"""Cursors and page arguments under hostile input: a clear error, never a raw one."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from pokervod_db import queries as q

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decodes_or_is_invalid(token: str) -> None:
    try:
        cursor = q.Cursor.decode(token)
    except q.InvalidCursorError as exc:
        assert str(exc) == "invalid page cursor; start again from the first page"
    else:
        assert q.Cursor.decode(cursor.encode()) == cursor


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_a_cursor_or_invalid_cursor_error(token: str) -> None:
    _decodes_or_is_invalid(token)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_any_json_in_a_token_is_a_cursor_or_invalid_cursor_error(value: object) -> None:
    _decodes_or_is_invalid(_token(json.dumps(value).encode()))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_any_bytes_in_a_token_are_a_cursor_or_invalid_cursor_error(raw: bytes) -> None:
    _decodes_or_is_invalid(_token(raw))


@settings(max_examples=200, deadline=None)
@given(st.datetimes(timezones=st.just(UTC)), st.uuids())
def test_every_encoded_cursor_round_trips(at: datetime, ident: uuid.UUID) -> None:
    cursor = q.Cursor(created_at=at, id=ident)
    assert q.Cursor.decode(cursor.encode()) == cursor


@pytest.mark.parametrize(
    "token",
    [
        _token(b'["2024-01-01T00:00:00+00:00", 1]'),  # an id that is not text
        _token(b"[" * 100_000 + b"]" * 100_000),  # deep nesting (RecursionError before)
        _token(b'["2024-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"]'),  # naive
        _token(b'{"a": 1, "b": 2}'),
        _token(b'["x", "y", "z"]'),
        "é" * 10,
        "A" * 10_000,
    ],
)
def test_tampered_cursors_are_invalid_cursor_errors(token: str) -> None:
    with pytest.raises(q.InvalidCursorError):
        q.Cursor.decode(token)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"offset": 2**63}, "offset must be at most"),
        ({"offset": q.MAX_OFFSET + 1}, "after="),
        ({"offset": -(2**63)}, "negative"),
        ({"offset": 1.5}, "whole number"),
        ({"offset": True}, "whole number"),
        ({"limit": 2**63}, "limit"),
        ({"limit": 2.5}, "limit"),
        ({"after": "not-a-cursor"}, "Cursor"),
    ],
)
async def test_absurd_page_arguments_are_value_errors(
    session: AsyncSession, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        await q.list_video_files(session, **kwargs)  # type: ignore[arg-type]
    await q.list_video_files(session, offset=q.MAX_OFFSET)  # the largest one still runs
