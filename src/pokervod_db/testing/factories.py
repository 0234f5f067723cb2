"""factory_boy factories for the eleven models, for our tests and the other blocks'.

Sessions are async and factory_boy is synchronous, so ``create()`` only *adds* the object (and
the parents it needs) to the bound session (``sqlalchemy_session_persistence=None``); the test
awaits ``session.flush()`` or ``commit()``. The ``pokervod_session`` fixture binds the session;
elsewhere call `bind(session)`. ``build()`` needs no session: it builds the object and every
parent its foreign keys require (a `VideoFile` comes with its episode, event, season, project).
"""

from __future__ import annotations

from typing import Any

import factory
from factory.alchemy import SQLAlchemyModelFactory
from sqlalchemy.ext.asyncio import AsyncSession

from pokervod_db.models import (
    Episode,
    EpisodeType,
    Event,
    EventType,
    FileCategory,
    GameType,
    GoogleSheetSync,
    HandClip,
    HandGrade,
    NASFile,
    NASFolder,
    Player,
    Project,
    Season,
    SheetId,
    TableType,
    Tag,
    TagCategory,
    VersionType,
    VideoFile,
)

__all__ = [
    "EpisodeFactory",
    "EventFactory",
    "GoogleSheetSyncFactory",
    "HandClipFactory",
    "NASFileFactory",
    "NASFolderFactory",
    "PlayerFactory",
    "ProjectFactory",
    "SeasonFactory",
    "TagFactory",
    "VideoFileFactory",
    "bind",
]

_bound: dict[str, Any] = {"session": None}


def bind(session: AsyncSession | None) -> None:
    """Make the factories add their objects to ``session`` (None unbinds)."""
    _bound["session"] = session.sync_session if session is not None else None


def _session() -> Any:
    s = _bound["session"]
    if s is None:
        raise RuntimeError(
            "factories are not bound to a session; use the `pokervod_session` fixture "
            "or call pokervod_db.testing.factories.bind(session)"
        )
    return s


class _Base(SQLAlchemyModelFactory):  # type: ignore[misc]
    class Meta:
        abstract = True
        sqlalchemy_session_factory = _session
        sqlalchemy_session_persistence = None


class ProjectFactory(_Base):
    class Meta:
        model = Project

    code = factory.Sequence(lambda n: f"PROJECT_{n}")
    name = factory.Faker("company")
    nas_base_path = factory.LazyAttribute(lambda o: f"/nas/poker/{o.code}")
    is_active = True


class SeasonFactory(_Base):
    class Meta:
        model = Season

    project = factory.SubFactory(ProjectFactory)
    year = factory.Faker("pyint", min_value=2003, max_value=2025)
    name = factory.LazyAttribute(lambda o: f"{o.year} Season")
    location = "Las Vegas"


class EventFactory(_Base):
    class Meta:
        model = Event

    season = factory.SubFactory(SeasonFactory)
    event_number = factory.Sequence(lambda n: n + 1)
    name = factory.LazyAttribute(lambda o: f"Event #{o.event_number} $10,000 No-Limit Hold'em")
    event_type = EventType.BRACELET
    game_type = GameType.NLHE
    buy_in = 10000


class EpisodeFactory(_Base):
    class Meta:
        model = Episode

    event = factory.SubFactory(EventFactory)
    episode_number = factory.Sequence(lambda n: n + 1)
    day_number = 1
    part_number = 1
    title = factory.LazyAttribute(lambda o: f"Day {o.day_number} Part {o.part_number}")
    episode_type = EpisodeType.FULL
    table_type = TableType.DAY1
    duration_seconds = 3600


class VideoFileFactory(_Base):
    class Meta:
        model = VideoFile

    episode = factory.SubFactory(EpisodeFactory)
    file_name = factory.Sequence(lambda n: f"WSOP_2024_Event{n}_Day1_Part1.mp4")
    file_path = factory.LazyAttribute(lambda o: f"/nas/poker/WSOP/2024/{o.file_name}")
    file_size_bytes = 4_294_967_296
    file_format = "mp4"
    duration_seconds = 3600
    version_type = VersionType.MASTERED
    display_title = factory.Sequence(lambda n: f"2024 WSOP Main Event Day 1 Part {n}")


class TagFactory(_Base):
    class Meta:
        model = Tag

    category = TagCategory.POKER_PLAY
    name = factory.Sequence(lambda n: f"tag_{n}")
    name_display = factory.LazyAttribute(lambda o: o.name.replace("_", " ").title())


class PlayerFactory(_Base):
    class Meta:
        model = Player

    name = factory.Sequence(lambda n: f"player_{n}")
    name_display = factory.Faker("name")
    nationality = factory.Faker("country")


class HandClipFactory(_Base):
    class Meta:
        model = HandClip

    video_file = factory.SubFactory(VideoFileFactory)
    episode = factory.LazyAttribute(lambda o: o.video_file.episode if o.video_file else None)
    sheet_source = SheetId.METADATA_ARCHIVE
    sheet_row_number = factory.Sequence(lambda n: n + 1)
    title = factory.Sequence(lambda n: f"Hand {n}")
    timecode = "01:02:03"
    notes = "Ivey four-bets with pocket kings and gets called by aces"
    hand_grade = HandGrade.TWO_STAR
    pot_size = 1_000_000


class GoogleSheetSyncFactory(_Base):
    class Meta:
        model = GoogleSheetSync

    sheet_id = SheetId.METADATA_ARCHIVE
    entity_type = factory.Sequence(lambda n: f"entity_{n}")


class NASFolderFactory(_Base):
    class Meta:
        model = NASFolder

    folder_name = factory.Sequence(lambda n: f"folder_{n}")
    folder_path = factory.LazyAttribute(lambda o: f"/nas/poker/{o.folder_name}")
    parent_path = "/nas/poker"
    depth = 2


class NASFileFactory(_Base):
    class Meta:
        model = NASFile

    folder = factory.SubFactory(NASFolderFactory)
    file_name = factory.Sequence(lambda n: f"file_{n}.mp4")
    file_path = factory.LazyAttribute(lambda o: f"{o.folder.folder_path}/{o.file_name}")
    file_size_bytes = 1024
    file_extension = ".mp4"
    file_category = FileCategory.VIDEO
