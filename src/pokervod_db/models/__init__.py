"""The ORM models of the archive. Every name here is part of the data contract (schema.md):
other blocks import them, so they must not be renamed."""

from pokervod_db.models.agent import AgentEvent
from pokervod_db.models.base import NAMING_CONVENTION, Base, TimestampMixin
from pokervod_db.models.catalog import Episode, Event, Project, Season, catalog_versions
from pokervod_db.models.media import (
    HandClip,
    Player,
    Tag,
    VideoFile,
    hand_clip_players,
    hand_clip_tags,
    tag_clip_counts,
)
from pokervod_db.models.nas import NASFile, NASFolder
from pokervod_db.models.sync import GoogleSheetSync
from pokervod_db.models.values import (
    EpisodeType,
    EventType,
    FileCategory,
    GameType,
    HandGrade,
    ProjectCode,
    SheetId,
    SubCategory,
    SyncStatus,
    TableType,
    TagCategory,
    VersionType,
)

ENTITY_MODELS = (
    Project,
    Season,
    Event,
    Episode,
    VideoFile,
    HandClip,
    Tag,
    Player,
    GoogleSheetSync,
    NASFolder,
    NASFile,
)
"""The eleven entity models of the contract, in dependency order."""

__all__ = [
    "ENTITY_MODELS",
    "NAMING_CONVENTION",
    "AgentEvent",
    "Base",
    "Episode",
    "EpisodeType",
    "Event",
    "EventType",
    "FileCategory",
    "GameType",
    "GoogleSheetSync",
    "HandClip",
    "HandGrade",
    "NASFile",
    "NASFolder",
    "Player",
    "Project",
    "ProjectCode",
    "Season",
    "SheetId",
    "SubCategory",
    "SyncStatus",
    "TableType",
    "Tag",
    "TagCategory",
    "TimestampMixin",
    "VersionType",
    "VideoFile",
    "catalog_versions",
    "hand_clip_players",
    "hand_clip_tags",
    "tag_clip_counts",
]
