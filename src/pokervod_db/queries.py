"""The read side: the queries the API and the dashboard run, written so each uses its index.

Every function takes an `AsyncSession` and leaves soft-deleted rows (``deleted_at`` set) out
unless called with ``include_deleted=True``. Lists come back as small frozen rows of the
columns a list view shows (no ORM objects to hydrate); detail reads return ORM objects with
their relations eagerly loaded (``selectinload``), so no lazy load fires after the session.

Pagination: lists are ordered newest first by ``(created_at, id)``; ``id`` breaks ties, so the
order is total and stable even when a bulk load gave thousands of rows the same timestamp.
Pass ``after=page.next_cursor`` (keyset: the cost does not grow with the page number) or
``offset=`` (the PRD's offset/limit; its cost grows with the offset). Each function names the
index it is meant to be planned on; tests/test_queries.py checks that with ``EXPLAIN`` on a
generated archive.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, Table, exists, func, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from pokervod_db.errors import PokervodDBError
from pokervod_db.models import (
    Episode,
    Event,
    HandClip,
    Player,
    Project,
    Season,
    Tag,
    VideoFile,
    hand_clip_players,
    hand_clip_tags,
)

T = TypeVar("T")
S = TypeVar("S", bound="Select[*tuple[Any, ...]]")

MAX_LIMIT = 1000
"""The largest page a caller may ask for."""


class InvalidCursorError(PokervodDBError):
    """A pagination cursor could not be decoded (tampered with, truncated or from elsewhere)."""


# --- pagination -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a newest-first list: the ``(created_at, id)`` of the last row seen."""

    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        """An opaque URL-safe token for APIs (``?after=…``)."""
        raw = json.dumps([self.created_at.isoformat(), str(self.id)], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Read a token made by `encode`; `InvalidCursorError` for anything else."""
        try:
            padded = token + "=" * (-len(token) % 4)
            created_at, id_ = json.loads(base64.urlsafe_b64decode(padded.encode()))
            parsed = datetime.fromisoformat(created_at)
            if parsed.tzinfo is None:
                raise ValueError("naive timestamp")
            return cls(created_at=parsed, id=uuid.UUID(id_))
        except (ValueError, TypeError, binascii.Error, UnicodeError) as exc:
            raise InvalidCursorError(
                "invalid page cursor; start again from the first page"
            ) from exc


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; ``next_cursor`` is None on the last page."""

    items: list[T]
    next_cursor: Cursor | None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


def _check_page(limit: int, after: Cursor | None, offset: int | None) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if offset is not None and offset < 0:
        raise ValueError(f"offset must not be negative, got {offset}")
    if after is not None and offset is not None:
        raise ValueError("pass either after= (keyset) or offset=, not both")


def _page(rows: Sequence[Any], limit: int, make: Any) -> Page[Any]:
    items = [make(*row) for row in rows[:limit]]
    if len(rows) > limit:
        last = items[-1]
        return Page(items, Cursor(created_at=last.created_at, id=last.id))
    return Page(items, None)


# --- list rows (column projections) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VideoFileItem:
    """A video file as a list shows it."""

    id: uuid.UUID
    file_name: str
    display_title: str | None
    version_type: str | None
    duration_seconds: int | None
    episode_id: uuid.UUID | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class HandClipItem:
    """A hand clip as a list shows it."""

    id: uuid.UUID
    title: str | None
    hand_grade: str | None
    timecode: str | None
    duration_seconds: int | None
    video_file_id: uuid.UUID | None
    created_at: datetime


_VIDEO_ITEM_COLUMNS = (
    VideoFile.id,
    VideoFile.file_name,
    VideoFile.display_title,
    VideoFile.version_type,
    VideoFile.duration_seconds,
    VideoFile.episode_id,
    VideoFile.created_at,
)
_CLIP_ITEM_COLUMNS = (
    HandClip.id,
    HandClip.title,
    HandClip.hand_grade,
    HandClip.timecode,
    HandClip.duration_seconds,
    HandClip.video_file_id,
    HandClip.created_at,
)


def _live(column: Any, include_deleted: bool) -> ColumnElement[bool] | None:
    return None if include_deleted else column.is_(None)


def _where_live(stmt: S, column: Any, include_deleted: bool) -> S:
    condition = _live(column, include_deleted)
    return stmt if condition is None else stmt.where(condition)


# --- catalog ----------------------------------------------------------------------------------


async def get_project_by_code(
    session: AsyncSession, code: str, *, include_deleted: bool = False
) -> Project | None:
    """The project with this code (``ix_projects_code``), or None."""
    stmt = _where_live(
        select(Project).where(Project.code == code), Project.deleted_at, include_deleted
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_catalog_tree(
    session: AsyncSession, project_id: uuid.UUID, *, include_deleted: bool = False
) -> Project | None:
    """A project with its seasons, their events and their episodes, loaded in four queries.

    Each level is one ``selectinload`` query on the parent's foreign-key index, so the cost is
    four round trips whatever the size of the tree (never one query per season or event).
    Children come sorted: seasons newest year first, events and episodes by number.
    """
    if include_deleted:
        options = (
            selectinload(Project.seasons).selectinload(Season.events).selectinload(Event.episodes)
        )
    else:
        options = (
            selectinload(Project.seasons.and_(Season.deleted_at.is_(None)))
            .selectinload(Season.events.and_(Event.deleted_at.is_(None)))
            .selectinload(Event.episodes.and_(Episode.deleted_at.is_(None)))
        )
    stmt = _where_live(
        select(Project).where(Project.id == project_id).options(options),
        Project.deleted_at,
        include_deleted,
    )
    # populate_existing: a project already in the session must not keep a tree loaded
    # with other criteria (include_deleted) from an earlier call.
    stmt = stmt.execution_options(populate_existing=True)
    project = (await session.execute(stmt)).scalar_one_or_none()
    if project is None:
        return None
    # Sort without marking the collections as changed (set_committed_value records no history).
    set_committed_value(
        project, "seasons", sorted(project.seasons, key=lambda s: (-s.year, s.name, s.id))
    )
    for season in project.seasons:
        set_committed_value(season, "events", sorted(season.events, key=_by_number))
        for event in season.events:
            set_committed_value(event, "episodes", sorted(event.episodes, key=_episode_order))
    return project


def _by_number(event: Event) -> tuple[int, str, str]:
    return (
        event.event_number if event.event_number is not None else 1 << 30,
        event.name,
        str(event.id),
    )


def _episode_order(episode: Episode) -> tuple[int, int, int, str]:
    big = 1 << 30
    return (
        episode.episode_number if episode.episode_number is not None else big,
        episode.day_number if episode.day_number is not None else big,
        episode.part_number if episode.part_number is not None else big,
        str(episode.id),
    )


# Correlated subqueries: each level is read through its parent's foreign-key index, and the
# aggregation happens where the rows are (faster here than grouping joined CTEs).
_TREE_JSON_SQL = """
SELECT json_build_object(
    'id', p.id, 'code', p.code, 'name', p.name,
    'seasons', COALESCE((
        SELECT json_agg(json_build_object(
            'id', s.id, 'year', s.year, 'name', s.name, 'location', s.location,
            'sub_category', s.sub_category, 'status', s.status,
            'events', COALESCE((
                SELECT json_agg(json_build_object(
                    'id', e.id, 'event_number', e.event_number, 'name', e.name,
                    'name_short', e.name_short, 'event_type', e.event_type,
                    'game_type', e.game_type,
                    'episodes', COALESCE((
                        SELECT json_agg(json_build_object(
                            'id', ep.id, 'episode_number', ep.episode_number,
                            'day_number', ep.day_number, 'part_number', ep.part_number,
                            'title', ep.title, 'episode_type', ep.episode_type,
                            'table_type', ep.table_type)
                            ORDER BY ep.episode_number, ep.day_number, ep.part_number, ep.id)
                        FROM pokervod.episodes ep WHERE ep.event_id = e.id{live_ep}), '[]'))
                    ORDER BY e.event_number, e.name, e.id)
                FROM pokervod.events e WHERE e.season_id = s.id{live_e}), '[]'))
            ORDER BY s.year DESC, s.name, s.id)
        FROM pokervod.seasons s WHERE s.project_id = p.id{live_s}), '[]'))::text
FROM pokervod.projects p
WHERE p.id = :project_id{live_p}
"""
_TREE_JSON = {
    include: _TREE_JSON_SQL.format(
        live_p="" if include else " AND p.deleted_at IS NULL",
        live_s="" if include else " AND s.deleted_at IS NULL",
        live_e="" if include else " AND e.deleted_at IS NULL",
        live_ep="" if include else " AND ep.deleted_at IS NULL",
    )
    for include in (False, True)
}


async def get_catalog_tree_json(
    session: AsyncSession, project_id: uuid.UUID, *, include_deleted: bool = False
) -> str | None:
    """The tree of `get_catalog_tree` as one JSON document built by PostgreSQL, or None.

    For the API and dashboard, which send the tree as JSON anyway: a project of the archive
    has thousands of episodes, and building that many ORM objects costs far more than the
    query. Same rows, same order; keys are the column names, ids are strings.
    """
    result = await session.execute(text(_TREE_JSON[include_deleted]), {"project_id": project_id})
    value = result.scalar_one_or_none()
    return None if value is None else str(value)


# --- video files and hand clips ---------------------------------------------------------------


async def get_video_files_of_episode(
    session: AsyncSession, episode_id: uuid.UUID, *, include_deleted: bool = False
) -> list[VideoFile]:
    """The video files of an episode, by file name (``ix_video_files_episode_id``)."""
    stmt = _where_live(
        select(VideoFile).where(VideoFile.episode_id == episode_id),
        VideoFile.deleted_at,
        include_deleted,
    ).order_by(VideoFile.file_name, VideoFile.id)
    return list((await session.execute(stmt)).scalars())


async def get_hand_clips_of_video_file(
    session: AsyncSession, video_file_id: uuid.UUID, *, include_deleted: bool = False
) -> list[HandClip]:
    """The hand clips of a video file in timecode order, with their tags and players loaded.

    Soft-deleted tags and players are left out of the loaded collections as well (unless
    ``include_deleted``). One round trip: a video has a handful of clips with a few tags and
    players each, so joining both collections (clips × tags × players rows) is cheaper than
    a ``selectinload`` query per collection.
    """
    if include_deleted:
        options = [joinedload(HandClip.tags), joinedload(HandClip.players)]
    else:
        options = [
            joinedload(HandClip.tags.and_(Tag.deleted_at.is_(None))),
            joinedload(HandClip.players.and_(Player.deleted_at.is_(None))),
        ]
    stmt = (
        _where_live(
            select(HandClip).where(HandClip.video_file_id == video_file_id),
            HandClip.deleted_at,
            include_deleted,
        )
        .options(*options)
        .order_by(HandClip.timecode, HandClip.id)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(stmt)).unique().scalars())


async def _newest_first(
    session: AsyncSession,
    model: type[VideoFile] | type[HandClip],
    columns: Sequence[Any],
    make: Any,
    *,
    where: Sequence[ColumnElement[bool]] = (),
    limit: int,
    after: Cursor | None,
    offset: int | None,
    include_deleted: bool,
    custom_plans: bool = False,
) -> Page[Any]:
    """One page of ``model`` rows newest first, by (created_at, id).

    The page's keys are found first from ``ix_<table>_created_at`` alone (an index-only scan:
    the index carries deleted_at, so the live filter needs no heap access), and only the
    page's rows are then read from the table. Skipping rows (offset, or rows of other tags
    in a semi-join) thus costs index entries, not heap fetches.
    """
    _check_page(limit, after, offset)
    # Core statements on the session's connection: the same SQL without the ORM's per-call
    # work (a list of frozen rows needs no identity map).
    table = model.__table__
    keys = select(table.c.id, table.c.created_at).where(*where)
    if not include_deleted:
        keys = keys.where(table.c.deleted_at.is_(None))
    if after is not None:
        keys = keys.where(
            tuple_(table.c.created_at, table.c.id) < tuple_(after.created_at, after.id)
        )
    keys = keys.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1)
    if offset:
        keys = keys.offset(offset)
    page = keys.subquery("page")
    stmt = (
        select(*(table.c[c.key] for c in columns))
        .join(page, table.c.id == page.c.id)
        .order_by(page.c.created_at.desc(), page.c.id.desc())
    )
    conn = await session.connection()
    if custom_plans:
        async with _custom_plans(conn):
            rows = (await conn.execute(stmt)).all()
    else:
        rows = (await conn.execute(stmt)).all()
    return _page(rows, limit, make)


async def list_video_files(
    session: AsyncSession,
    *,
    limit: int = 20,
    after: Cursor | None = None,
    offset: int | None = None,
    include_deleted: bool = False,
) -> Page[VideoFileItem]:
    """All video files, newest first (``ix_video_files_created_at``)."""
    return await _newest_first(
        session,
        VideoFile,
        _VIDEO_ITEM_COLUMNS,
        VideoFileItem,
        limit=limit,
        after=after,
        offset=offset,
        include_deleted=include_deleted,
    )


async def list_hand_clips(
    session: AsyncSession,
    *,
    limit: int = 20,
    after: Cursor | None = None,
    offset: int | None = None,
    include_deleted: bool = False,
) -> Page[HandClipItem]:
    """All hand clips, newest first (``ix_hand_clips_created_at``)."""
    return await _newest_first(
        session,
        HandClip,
        _CLIP_ITEM_COLUMNS,
        HandClipItem,
        limit=limit,
        after=after,
        offset=offset,
        include_deleted=include_deleted,
    )


async def get_hand_clips_of_player(
    session: AsyncSession,
    player_id: uuid.UUID,
    *,
    limit: int = 20,
    after: Cursor | None = None,
    offset: int | None = None,
    include_deleted: bool = False,
) -> Page[HandClipItem]:
    """The hand clips a player appears in, newest first.

    Written as a semi-join so the planner can choose per player (custom plans): for a player
    in few clips it reads the player's links (``ix_hand_clip_players_player_clip``) and sorts
    them; for a star in thousands it walks ``ix_hand_clips_created_at`` backwards, probing the
    links, and stops after one page.
    """
    return await _clips_linked(
        session,
        hand_clip_players,
        hand_clip_players.c.player_id == player_id,
        limit=limit,
        after=after,
        offset=offset,
        include_deleted=include_deleted,
    )


async def get_hand_clips_of_tag(
    session: AsyncSession,
    tag_id: uuid.UUID,
    *,
    limit: int = 20,
    after: Cursor | None = None,
    offset: int | None = None,
    include_deleted: bool = False,
) -> Page[HandClipItem]:
    """The hand clips with a tag, newest first (a semi-join, as `get_hand_clips_of_player`)."""
    return await _clips_linked(
        session,
        hand_clip_tags,
        hand_clip_tags.c.tag_id == tag_id,
        limit=limit,
        after=after,
        offset=offset,
        include_deleted=include_deleted,
    )


async def _clips_linked(
    session: AsyncSession,
    link_table: Table,
    link: ColumnElement[bool],
    *,
    limit: int,
    after: Cursor | None,
    offset: int | None,
    include_deleted: bool,
) -> Page[HandClipItem]:
    """Newest-first page of the clips with a row in ``link_table`` matching ``link``."""
    linked = exists().where(link_table.c.hand_clip_id == HandClip.__table__.c.id, link)
    return await _newest_first(
        session,
        HandClip,
        _CLIP_ITEM_COLUMNS,
        HandClipItem,
        where=[linked],
        limit=limit,
        after=after,
        offset=offset,
        include_deleted=include_deleted,
        custom_plans=True,
    )


async def count_hand_clips_of_tag(
    session: AsyncSession, tag_id: uuid.UUID, *, include_deleted: bool = False
) -> int:
    """How many (live) hand clips carry a tag.

    Counting through a join reads every clip of the tag (a heap fetch each). Instead: count
    the tag's links in ``ix_hand_clip_tags_tag_clip`` (tag_id, hand_clip_id) and subtract, by a
    merge anti-join in the same hand_clip_id order, the few clips in the partial index of
    soft-deleted clips (``ix_hand_clips_deleted``). Both are index-only scans.
    """
    links = (
        select(func.count()).select_from(hand_clip_tags).where(hand_clip_tags.c.tag_id == tag_id)
    )
    if not include_deleted:
        clips = HandClip.__table__
        deleted = exists().where(
            clips.c.id == hand_clip_tags.c.hand_clip_id, clips.c.deleted_at.is_not(None)
        )
        links = links.where(~deleted)
    conn = await session.connection()
    return int((await conn.execute(links)).scalar_one())


# --- planner settings -------------------------------------------------------------------------


@asynccontextmanager
async def _custom_plans(
    conn: AsyncConnection, *, serial: bool = False, extra: Mapping[str, str] | None = None
) -> AsyncIterator[None]:
    """Plan the statements of the block for their actual parameters, then restore the settings.

    asyncpg prepares every statement, and after five runs PostgreSQL may switch to one generic
    plan for all parameters. For the queries whose best plan depends on the value (a rare tag
    vs. the most common one, a rare word vs. "river") that generic plan is the slow one, so
    these run with ``plan_cache_mode = force_custom_plan`` (and, for searches, no parallel
    workers: a parallel bitmap scan over every match is what the candidate window avoids;
    ``extra`` adds more). The settings are transaction-local and put back afterwards, so the
    caller's later statements run as before. If the block fails the transaction is aborted
    anyway and the settings go with it. Inside an open transaction the settings go straight
    through the asyncpg connection: a statement through SQLAlchemy costs more than the query
    it guards.
    """
    wanted = {"plan_cache_mode": "force_custom_plan"}
    if serial:
        wanted["max_parallel_workers_per_gather"] = "0"
    wanted.update(extra or {})
    names, values = list(wanted), list(wanted.values())
    read = ", ".join(f"current_setting('{n}')" for n in names)
    write = ", ".join(f"set_config('{n}', ${i + 1}, true)" for i, n in enumerate(names))
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is not None and driver.is_in_transaction():
        before = list(await driver.fetchrow(f"SELECT {read}, {write}", *values))
    else:  # the first statement of the transaction: SQLAlchemy must open it
        params = {f"v{i}": v for i, v in enumerate(values)}
        write_named = ", ".join(f"set_config('{n}', :v{i}, true)" for i, n in enumerate(names))
        before = list((await conn.execute(text(f"SELECT {read}, {write_named}"), params)).one())
        driver = (await conn.get_raw_connection()).driver_connection
    yield
    assert driver is not None
    await driver.execute(f"SELECT {write}", *before[: len(names)])


# --- full-text search: pokervod_db.search, re-exported under the names it always had -----------

from pokervod_db.search import MAX_QUERY_CHARS as MAX_QUERY_CHARS  # noqa: E402
from pokervod_db.search import SEARCH_SCAN as SEARCH_SCAN  # noqa: E402
from pokervod_db.search import HandClipHit as HandClipHit  # noqa: E402
from pokervod_db.search import VideoFileHit as VideoFileHit  # noqa: E402
from pokervod_db.search import search_hand_clips as search_hand_clips  # noqa: E402
from pokervod_db.search import search_video_files as search_video_files  # noqa: E402
