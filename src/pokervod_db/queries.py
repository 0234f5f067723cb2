"""The read side: the queries the API and the dashboard run, written so each uses its index.

Every function takes an `AsyncSession` and leaves soft-deleted rows (``deleted_at`` set) out
unless called with ``include_deleted=True``. The hot reads (project by code, files of an
episode, clips of a video, the newest-first lists and the tag count) also take a `Reader`
(``async with database.reader() as reader``): the same results without a session, ORM objects
detached, at close to the driver's own cost (pokervod_db.reader). Lists come back as small frozen rows of the
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
import functools
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import ColumnElement, Integer, Select, bindparam, exists, select, tuple_
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from pokervod_db import fastpath, treecache
from pokervod_db.errors import PokervodDBError
from pokervod_db.instrumentation import timed
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
    tag_clip_counts,
)
from pokervod_db.reader import Reader

T = TypeVar("T")
S = TypeVar("S", bound="Select[*tuple[Any, ...]]")

MAX_LIMIT = 1000
"""The largest page a caller may ask for."""

MAX_OFFSET = 10_000_000
"""The largest ``offset=``: beyond it PostgreSQL would still have to walk every skipped row
(and 2**63 overflows its bigint); deeper pages use the keyset cursor."""

_MAX_CURSOR_CHARS = 512


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
            # A real token is ~90 characters; a long one is hostile (deep JSON nesting would
            # raise RecursionError), so refuse it before decoding anything.
            if not isinstance(token, str) or len(token) > _MAX_CURSOR_CHARS:
                raise ValueError("not a cursor token")
            padded = token + "=" * (-len(token) % 4)
            decoded = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            if not (
                isinstance(decoded, list)
                and len(decoded) == 2
                and all(isinstance(part, str) for part in decoded)
            ):
                raise ValueError("a cursor is a list of two strings")
            created_at, id_ = decoded
            parsed = datetime.fromisoformat(created_at)
            if parsed.tzinfo is None or parsed.utcoffset() is None:
                raise ValueError("naive timestamp")
            return cls(created_at=parsed, id=uuid.UUID(id_))
        except (ValueError, TypeError, binascii.Error, UnicodeError, RecursionError) as exc:
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
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be a whole number between 1 and {MAX_LIMIT}, got {limit!r}")
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int)):
        raise ValueError(f"offset must be a whole number, got {offset!r}")
    if offset is not None and offset < 0:
        raise ValueError(f"offset must not be negative, got {offset}")
    if offset is not None and offset > MAX_OFFSET:
        raise ValueError(
            f"offset must be at most {MAX_OFFSET:,}, got {offset}; page deeper with after= "
            "(the next_cursor of the previous page)"
        )
    if after is not None and not isinstance(after, Cursor):
        raise ValueError("after= must be a Cursor (use Cursor.decode for a token)")
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


_PROJECTS = fastpath.OrmLoader(Project)
_VIDEO_FILES = fastpath.OrmLoader(VideoFile)
_HAND_CLIPS = fastpath.OrmLoader(HandClip)
_TAGS = fastpath.OrmLoader(Tag)
_PLAYERS = fastpath.OrmLoader(Player)


def _live_sql(alias: str, include_deleted: bool) -> str:
    return "" if include_deleted else f" AND {alias}.deleted_at IS NULL"


_PROJECT_BY_CODE_SQL = {
    d: f"SELECT {_PROJECTS.select_list('p')} FROM pokervod.projects p"
    f" WHERE p.code = $1{_live_sql('p', d)}"
    for d in (False, True)
}


@timed("queries.get_project_by_code")
async def get_project_by_code(
    session: AsyncSession | Reader, code: str, *, include_deleted: bool = False
) -> Project | None:
    """The project with this code (``ix_projects_code``), or None (lean path, ORM object:
    persistent in the session, or detached when read on a `Reader`)."""
    if isinstance(session, Reader):
        found = await session.fetch(_PROJECT_BY_CODE_SQL[include_deleted], code)
        return _PROJECTS.detached(found[0]) if found else None
    conn = await fastpath.driver(session, flush=True)
    rows = await fastpath.fetch_on(session, conn, _PROJECT_BY_CODE_SQL[include_deleted], code)
    return _PROJECTS.load(session, rows[0]) if rows else None


class CatalogEpisode(NamedTuple):
    """An episode in a `CatalogTree` (the columns the tree shows)."""

    id: uuid.UUID
    episode_number: int | None
    day_number: int | None
    part_number: int | None
    title: str | None
    episode_type: str | None
    table_type: str | None


class CatalogEvent(NamedTuple):
    """An event in a `CatalogTree`, with its episodes."""

    id: uuid.UUID
    event_number: int | None
    name: str
    name_short: str | None
    event_type: str | None
    game_type: str | None
    episodes: tuple[CatalogEpisode, ...]


class CatalogSeason(NamedTuple):
    """A season in a `CatalogTree`, with its events."""

    id: uuid.UUID
    year: int
    name: str
    location: str | None
    sub_category: str | None
    status: str
    events: tuple[CatalogEvent, ...]


class CatalogTree(NamedTuple):
    """A project with its seasons, events and episodes: immutable, typed, no ORM state.

    Attribute names are the models' (``tree.seasons[0].events[0].episodes[0].title``), and
    the fields are those of `get_catalog_tree_json`. Named tuples because a project of the
    archive has thousands of episodes: one is built in a fraction of a microsecond, where an
    ORM object costs tens (instrumented state, identity map, collections).
    """

    id: uuid.UUID
    code: str
    name: str
    seasons: tuple[CatalogSeason, ...]


# Each level in one statement on its parent's foreign-key index: the events and episodes are
# looked up by the ids of the parents the statement before returned (``= ANY($1)``), so the
# parents' live filters carry down (a deleted season hides its events) without joining back
# through seasons and events, which read every event of the archive. Children come ordered by
# parent first: the index scan returns them grouped by parent, and PostgreSQL only has to sort
# each parent's few children (an incremental sort) instead of the project's thousands of
# episodes as one set; the tree groups them by parent anyway, so each list keeps its order.
_TREE_SQL_TEMPLATES = (
    "SELECT id, code, name FROM pokervod.projects p WHERE id = $1::uuid{lp}",
    "SELECT s.id, s.year, s.name, s.location, s.sub_category, s.status"
    " FROM pokervod.seasons s WHERE s.project_id = $1::uuid{ls}"
    " ORDER BY s.year DESC, s.name, s.id",
    "SELECT e.season_id, e.id, e.event_number, e.name, e.name_short, e.event_type,"
    " e.game_type FROM pokervod.events e WHERE e.season_id = ANY($1::uuid[]){le}"
    " ORDER BY e.season_id, e.event_number, e.name, e.id",
    "SELECT ep.event_id, ep.id, ep.episode_number, ep.day_number, ep.part_number, ep.title,"
    " ep.episode_type, ep.table_type FROM pokervod.episodes ep"
    " WHERE ep.event_id = ANY($1::uuid[]){lep}"
    " ORDER BY ep.event_id, ep.episode_number, ep.day_number, ep.part_number, ep.id",
)
_TREE_SQL: dict[bool, tuple[str, ...]] = {
    include: tuple(
        sql.format(
            lp="" if include else " AND p.deleted_at IS NULL",
            ls="" if include else " AND s.deleted_at IS NULL",
            le="" if include else " AND e.deleted_at IS NULL",
            lep="" if include else " AND ep.deleted_at IS NULL",
        )
        for sql in _TREE_SQL_TEMPLATES
    )
    for include in (False, True)
}


@timed("queries.get_catalog_tree")
async def get_catalog_tree(
    session: AsyncSession | Reader, project_id: uuid.UUID, *, include_deleted: bool = False
) -> CatalogTree | None:
    """A project with its seasons, their events and their episodes, as a `CatalogTree`.

    Served from the engine's tree cache (`pokervod_db.treecache`) while the project's version
    is unchanged: one primary-key read. Otherwise up to four statements (one per level, each
    on its parent's foreign-key index, given the ids of the parents read before) on the lean
    path. Children come sorted: seasons newest year first, events and episodes by number. The
    result is immutable (tuples all the way down; it may be shared with other callers). For
    ORM objects (to change and flush them) use `get_catalog_tree_orm`, which costs about ten
    times as much for a large project (docs/performance.md). Pending ORM changes of the session
    are flushed first, so the tree shows them.
    """
    return await _cached_tree(session, project_id, include_deleted, "tree", _build_catalog_tree)


async def _cached_tree(
    session: AsyncSession | Reader,
    project_id: uuid.UUID,
    include_deleted: bool,
    kind: str,
    build: Callable[[treecache.Fetch, uuid.UUID, bool], Awaitable[T]],
) -> T:
    """``build``'s result through the engine's tree cache, on a session or a `Reader`.

    In a session everything runs in its transaction (pending ORM changes flushed first). On a
    Reader a hit is the one version statement with no transaction around it, and a miss builds
    the tree inside one read-only snapshot (the cache's second version read, after it, proves
    that no commit touched the project in between).
    """
    key = (project_id, include_deleted, kind)
    if isinstance(session, Reader):
        reader = session

        async def build_in_snapshot() -> T:
            async with reader.snapshot():
                return await build(reader.fetch, project_id, include_deleted)

        return await treecache.cached(
            treecache.cache_for(reader.engine), reader.fetch, key, build_in_snapshot
        )
    conn = await fastpath.driver(session, flush=True)

    async def fetch(sql: str, *args: Any) -> list[Any]:
        return await fastpath.fetch_on(session, conn, sql, *args)

    return await treecache.cached(
        treecache.cache_for(session.bind),
        fetch,
        key,
        lambda: build(fetch, project_id, include_deleted),
    )


async def _build_catalog_tree(
    fetch: treecache.Fetch, project_id: uuid.UUID, include_deleted: bool
) -> CatalogTree | None:
    """The `CatalogTree` read from the database through ``fetch`` (no cache)."""
    project_sql, seasons_sql, events_sql, episodes_sql = _TREE_SQL[include_deleted]
    project = await fetch(project_sql, project_id)
    if not project:
        return None
    seasons = await fetch(seasons_sql, project_id)
    events_of: dict[uuid.UUID, tuple[CatalogEvent, ...]] = {}
    if seasons:
        events = await fetch(events_sql, [row[0] for row in seasons])
        episodes_of: dict[uuid.UUID, tuple[CatalogEpisode, ...]] = {}
        if events:
            episodes = await fetch(episodes_sql, [row[1] for row in events])
            episodes_of = _grouped(episodes, CatalogEpisode._make)
        events_of = _grouped(events, CatalogEvent._make, episodes_of)
    p = project[0]
    return CatalogTree(
        p[0],
        p[1],
        p[2],
        tuple(CatalogSeason._make((*row, events_of.get(row[0], ()))) for row in seasons),
    )


def _grouped(
    rows: Sequence[Sequence[Any]],
    make: Callable[[Sequence[Any]], T],
    children_of: Mapping[uuid.UUID, tuple[Any, ...]] | None = None,
) -> dict[uuid.UUID, tuple[T, ...]]:
    """Rows ``(parent_id, id, …)`` made into tuples per parent, in row order; with
    ``children_of``, each item gets the children of its id as its last field."""
    grouped: dict[uuid.UUID, list[T]] = {}
    for row in rows:
        siblings = grouped.get(row[0])
        if siblings is None:
            siblings = grouped[row[0]] = []
        if children_of is not None:
            siblings.append(make((*row[1:], children_of.get(row[1], ()))))
        else:
            siblings.append(make(row[1:]))
    return {parent: tuple(items) for parent, items in grouped.items()}


@timed("queries.get_catalog_tree_orm")
async def get_catalog_tree_orm(
    session: AsyncSession, project_id: uuid.UUID, *, include_deleted: bool = False
) -> Project | None:
    """The tree of `get_catalog_tree` as ORM objects in the session, loaded in four queries.

    Each level is one ``selectinload`` query on the parent's foreign-key index, so the cost is
    four round trips whatever the size of the tree (never one query per season or event).
    Children come sorted as in `get_catalog_tree`. Use it to change the tree; to read it,
    `get_catalog_tree` is far cheaper.
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
WHERE p.id = $1::uuid{live_p}
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


@timed("queries.get_catalog_tree_json")
async def get_catalog_tree_json(
    session: AsyncSession | Reader, project_id: uuid.UUID, *, include_deleted: bool = False
) -> str | None:
    """The tree of `get_catalog_tree` as one JSON document built by PostgreSQL, or None.

    For the API and dashboard, which send the tree as JSON anyway: a project of the archive
    has thousands of episodes, and building that many ORM objects costs far more than the
    query. Same rows, same order; keys are the column names, ids are strings. Served from the
    engine's tree cache while the project's version is unchanged, as `get_catalog_tree`.
    """
    return await _cached_tree(
        session, project_id, include_deleted, "json", _build_catalog_tree_json
    )


async def _build_catalog_tree_json(
    fetch: treecache.Fetch, project_id: uuid.UUID, include_deleted: bool
) -> str | None:
    """The JSON text of the tree, read through ``fetch`` (no cache)."""
    rows = await fetch(_TREE_JSON[include_deleted], project_id)
    return str(rows[0][0]) if rows else None


# --- video files and hand clips ---------------------------------------------------------------


_VIDEO_FILES_OF_EPISODE_SQL = {
    d: f"SELECT {_VIDEO_FILES.select_list('v')} FROM pokervod.video_files v"
    f" WHERE v.episode_id = $1::uuid{_live_sql('v', d)} ORDER BY v.file_name, v.id"
    for d in (False, True)
}


@timed("queries.get_video_files_of_episode")
async def get_video_files_of_episode(
    session: AsyncSession | Reader, episode_id: uuid.UUID, *, include_deleted: bool = False
) -> list[VideoFile]:
    """The video files of an episode, by file name (``ix_video_files_episode_id``); detached
    objects when read on a `Reader`."""
    if isinstance(session, Reader):
        found = await session.fetch(_VIDEO_FILES_OF_EPISODE_SQL[include_deleted], episode_id)
        return [_VIDEO_FILES.detached(row) for row in found]
    conn = await fastpath.driver(session, flush=True)
    rows = await fastpath.fetch_on(
        session, conn, _VIDEO_FILES_OF_EPISODE_SQL[include_deleted], episode_id
    )
    return [_VIDEO_FILES.load(session, row) for row in rows]


# Clips × their tags × their players, as the ORM's joined eager load would send it: a video
# has a handful of clips with a few tags and players each, so one round trip is cheapest.
_CLIPS_OF_VIDEO_SQL = {
    d: f"""
SELECT {_HAND_CLIPS.select_list("c")}, {_TAGS.select_list("t")}, {_PLAYERS.select_list("p")}
FROM pokervod.hand_clips c
LEFT JOIN (pokervod.hand_clip_tags ct JOIN pokervod.tags t ON t.id = ct.tag_id{_live_sql("t", d)})
    ON ct.hand_clip_id = c.id
LEFT JOIN (pokervod.hand_clip_players cp
           JOIN pokervod.players p ON p.id = cp.player_id{_live_sql("p", d)})
    ON cp.hand_clip_id = c.id
WHERE c.video_file_id = $1::uuid{_live_sql("c", d)}
ORDER BY c.timecode, c.id
"""
    for d in (False, True)
}


@timed("queries.get_hand_clips_of_video_file")
async def get_hand_clips_of_video_file(
    session: AsyncSession | Reader, video_file_id: uuid.UUID, *, include_deleted: bool = False
) -> list[HandClip]:
    """The hand clips of a video file in timecode order, with their tags and players loaded.

    Soft-deleted tags and players are left out of the loaded collections as well (unless
    ``include_deleted``). One round trip (clips × tags × players rows, see
    `_CLIPS_OF_VIDEO_SQL`); objects already in the session are refreshed, collections
    included, as ``populate_existing`` would. On a `Reader` the objects are detached, and a
    tag or player shared by several clips is one object.
    """
    if isinstance(session, Reader):
        found = await session.fetch(_CLIPS_OF_VIDEO_SQL[include_deleted], video_file_id)
        return _detached_clips(found)
    conn = await fastpath.driver(session, flush=True)
    rows = await fastpath.fetch_on(
        session, conn, _CLIPS_OF_VIDEO_SQL[include_deleted], video_file_id
    )
    clips: dict[uuid.UUID, tuple[HandClip, dict[Any, Tag], dict[Any, Player]]] = {}
    tag_at, player_at = _HAND_CLIPS.width, _HAND_CLIPS.width + _TAGS.width
    for row in rows:
        clip_id = row[_HAND_CLIPS.pk_index]
        entry = clips.get(clip_id)
        if entry is None:
            clip = _HAND_CLIPS.load(session, row, populate_existing=True)
            entry = clips[clip_id] = (clip, {}, {})
        tag_id = row[tag_at + _TAGS.pk_index]
        if tag_id is not None and tag_id not in entry[1]:
            entry[1][tag_id] = _TAGS.load(session, row, tag_at, populate_existing=True)
        player_id = row[player_at + _PLAYERS.pk_index]
        if player_id is not None and player_id not in entry[2]:
            entry[2][player_id] = _PLAYERS.load(session, row, player_at, populate_existing=True)
    for clip, tags, players in clips.values():
        set_committed_value(clip, "tags", list(tags.values()))
        set_committed_value(clip, "players", list(players.values()))
    return [entry[0] for entry in clips.values()]


def _detached_clips(rows: Sequence[Any]) -> list[HandClip]:
    """`get_hand_clips_of_video_file` on a Reader: the same graph, detached objects."""
    clips: dict[uuid.UUID, tuple[HandClip, dict[Any, Tag], dict[Any, Player]]] = {}
    tags: dict[Any, Tag] = {}
    players: dict[Any, Player] = {}
    tag_at, player_at = _HAND_CLIPS.width, _HAND_CLIPS.width + _TAGS.width
    tag_pk, player_pk = tag_at + _TAGS.pk_index, player_at + _PLAYERS.pk_index
    for row in rows:
        clip_id = row[_HAND_CLIPS.pk_index]
        entry = clips.get(clip_id)
        if entry is None:
            entry = clips[clip_id] = (_HAND_CLIPS.detached(row), {}, {})
        tag_id = row[tag_pk]
        if tag_id is not None and tag_id not in entry[1]:
            tag = tags.get(tag_id)
            if tag is None:
                tag = tags[tag_id] = _TAGS.detached(row, tag_at)
            entry[1][tag_id] = tag
        player_id = row[player_pk]
        if player_id is not None and player_id not in entry[2]:
            player = players.get(player_id)
            if player is None:
                player = players[player_id] = _PLAYERS.detached(row, player_at)
            entry[2][player_id] = player
    for clip, clip_tags, clip_players in clips.values():
        set_committed_value(clip, "tags", list(clip_tags.values()))
        set_committed_value(clip, "players", list(clip_players.values()))
    return [entry[0] for entry in clips.values()]


def _render(stmt: Any) -> tuple[str, tuple[str, ...]]:
    """``stmt`` as asyncpg SQL (``$n``) and the names of its parameters in ``$n`` order."""
    compiled = stmt.compile(dialect=_ASYNCPG)
    return compiled.string, tuple(compiled.positiontup or ())


_ASYNCPG = asyncpg_dialect()  # type: ignore[no-untyped-call]


@functools.cache
def _page_statement(
    source: str, include_deleted: bool, keyset: bool, skip: bool
) -> tuple[str, tuple[str, ...]]:
    """The SQL of one shape of newest-first page, rendered once per process.

    ``source``: ``video_files`` / ``hand_clips`` (all rows), ``player`` (clips with a
    ``hand_clip_players`` row, a semi-join) or ``tag`` (clips of a tag, keys from the link
    rows). The page's keys are found first, from an index alone (``ix_<table>_created_at``
    carries deleted_at; ``ix_hand_clip_tags_tag_created`` carries the clip's timestamps), and
    only the page's rows are then read from the table: skipping rows (offset, or rows of other
    players in the semi-join) costs index entries, not heap fetches.
    """
    clips = HandClip.__table__
    created: Any
    id_: Any
    if source == "tag":
        links = hand_clip_tags
        table, columns = clips, _CLIP_ITEM_COLUMNS
        created, id_ = links.c.clip_created_at, links.c.hand_clip_id
        keys = select(id_.label("id"), created.label("created_at")).where(
            links.c.tag_id == bindparam("link_id")
        )
        if not include_deleted:
            keys = keys.where(links.c.clip_deleted_at.is_(None))
    else:
        model = VideoFile if source == "video_files" else HandClip
        table = model.__table__
        columns = _VIDEO_ITEM_COLUMNS if source == "video_files" else _CLIP_ITEM_COLUMNS
        created, id_ = table.c.created_at, table.c.id
        keys = select(id_, created)
        if source == "player":
            players = hand_clip_players
            keys = keys.where(
                exists().where(
                    players.c.hand_clip_id == table.c.id,
                    players.c.player_id == bindparam("link_id"),
                )
            )
        if not include_deleted:
            keys = keys.where(table.c.deleted_at.is_(None))
    if keyset:
        keys = keys.where(
            tuple_(created, id_)
            < tuple_(
                bindparam("after_created_at", type_=created.type),
                bindparam("after_id", type_=id_.type),
            )
        )
    keys = keys.order_by(created.desc(), id_.desc()).limit(bindparam("limit", type_=Integer))
    if skip:
        keys = keys.offset(bindparam("offset", type_=Integer))
    page = keys.subquery("page")
    stmt = (
        select(*(table.c[c.key] for c in columns))
        .join(page, table.c.id == page.c.id)
        .order_by(page.c.created_at.desc(), page.c.id.desc())
    )
    return _render(stmt)


async def _newest_first(
    session: AsyncSession | Reader,
    source: str,
    make: Any,
    *,
    link_id: uuid.UUID | None = None,
    limit: int,
    after: Cursor | None,
    offset: int | None,
    include_deleted: bool,
    custom_plans: bool = False,
) -> Page[Any]:
    """One page newest first, by (created_at, id): see `_page_statement`.

    Runs on the lean path (`pokervod_db.fastpath`): the SQL of each shape is rendered once,
    and a list of frozen rows needs no ORM identity map. On a `Reader`, a page is one
    statement with no transaction; with ``custom_plans`` the setting and the page share one
    read-only snapshot transaction.
    """
    _check_page(limit, after, offset)
    sql, names = _page_statement(source, include_deleted, after is not None, bool(offset))
    values = {
        "link_id": link_id,
        "limit": limit + 1,
        "offset": offset,
        "after_created_at": None if after is None else after.created_at,
        "after_id": None if after is None else after.id,
    }
    args = [values[name] for name in names]
    if isinstance(session, Reader):
        if not custom_plans:
            return _page(await session.fetch(sql, *args), limit, make)
        if not session.in_snapshot:
            # The setting is transaction-local: COMMIT puts it back, no third statement.
            async with session.snapshot():
                await session.fetch(_CUSTOM_PLANS_ON)
                return _page(await session.fetch(sql, *args), limit, make)
    conn = await fastpath.driver(session)
    if not custom_plans:
        return _page(await fastpath.fetch_on(session, conn, sql, *args), limit, make)
    # If the query fails the transaction is aborted, and the setting goes with it.
    before = await fastpath.fetch_on(session, conn, _CUSTOM_PLANS_ON)
    rows = await fastpath.fetch_on(session, conn, sql, *args)
    await fastpath.fetch_on(session, conn, _CUSTOM_PLANS_OFF, before[0][0])
    return _page(rows, limit, make)


# Transaction-local; the second statement puts the setting back.
_CUSTOM_PLANS_ON = (
    "SELECT current_setting('plan_cache_mode'), "
    "set_config('plan_cache_mode', 'force_custom_plan', true)"
)
_CUSTOM_PLANS_OFF = "SELECT set_config('plan_cache_mode', $1, true)"


@timed("queries.list_video_files")
async def list_video_files(
    session: AsyncSession | Reader,
    *,
    limit: int = 20,
    after: Cursor | None = None,
    offset: int | None = None,
    include_deleted: bool = False,
) -> Page[VideoFileItem]:
    """All video files, newest first (``ix_video_files_created_at``)."""
    return await _newest_first(
        session,
        "video_files",
        VideoFileItem,
        limit=limit,
        after=after,
        offset=offset,
        include_deleted=include_deleted,
    )


@timed("queries.list_hand_clips")
async def list_hand_clips(
    session: AsyncSession | Reader,
    *,
    limit: int = 20,
    after: Cursor | None = None,
    offset: int | None = None,
    include_deleted: bool = False,
) -> Page[HandClipItem]:
    """All hand clips, newest first (``ix_hand_clips_created_at``)."""
    return await _newest_first(
        session,
        "hand_clips",
        HandClipItem,
        limit=limit,
        after=after,
        offset=offset,
        include_deleted=include_deleted,
    )


@timed("queries.get_hand_clips_of_player")
async def get_hand_clips_of_player(
    session: AsyncSession | Reader,
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
    return await _newest_first(
        session,
        "player",
        HandClipItem,
        link_id=player_id,
        limit=limit,
        after=after,
        offset=offset,
        include_deleted=include_deleted,
        custom_plans=True,
    )


@timed("queries.get_hand_clips_of_tag")
async def get_hand_clips_of_tag(
    session: AsyncSession | Reader,
    tag_id: uuid.UUID,
    *,
    limit: int = 20,
    after: Cursor | None = None,
    offset: int | None = None,
    include_deleted: bool = False,
) -> Page[HandClipItem]:
    """The hand clips with a tag, newest first, from ``ix_hand_clip_tags_tag_created``.

    The link rows carry their clip's ``created_at`` and ``deleted_at`` (kept by triggers,
    005_tag_link_created_at), so the page's keys come from one backward index-only range scan
    of the tag that stops after the page, whatever the size of the tag; then only the page's
    clips are read. One plan is right for every tag, so no custom plan is needed.
    """
    return await _newest_first(
        session,
        "tag",
        HandClipItem,
        link_id=tag_id,
        limit=limit,
        after=after,
        offset=offset,
        include_deleted=include_deleted,
    )


_COUNT_SQL = {
    include: _render(
        select(tag_clip_counts.c.clips if include else tag_clip_counts.c.live_clips).where(
            tag_clip_counts.c.tag_id == bindparam("tag_id")
        )
    )[0]
    for include in (False, True)
}


@timed("queries.count_hand_clips_of_tag")
async def count_hand_clips_of_tag(
    session: AsyncSession | Reader, tag_id: uuid.UUID, *, include_deleted: bool = False
) -> int:
    """How many (live) hand clips carry a tag: one row of ``tag_clip_counts``.

    The counters are kept by statement triggers on ``hand_clip_tags`` (and follow a clip's
    soft delete through its links), so the biggest tag costs what the smallest does.
    """
    rows = await fastpath.fetch(session, _COUNT_SQL[include_deleted], tag_id)
    return int(rows[0][0]) if rows else 0


# --- planner settings -------------------------------------------------------------------------


# --- full-text search: pokervod_db.search, re-exported under the names it always had -----------

from pokervod_db.search import MAX_QUERY_CHARS as MAX_QUERY_CHARS  # noqa: E402
from pokervod_db.search import SEARCH_SCAN as SEARCH_SCAN  # noqa: E402
from pokervod_db.search import HandClipHit as HandClipHit  # noqa: E402
from pokervod_db.search import VideoFileHit as VideoFileHit  # noqa: E402
from pokervod_db.search import search_hand_clips as search_hand_clips  # noqa: E402
from pokervod_db.search import search_video_files as search_video_files  # noqa: E402
