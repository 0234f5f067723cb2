"""Value lists of the catalog: classes whose attributes are the strings stored in the database.

Other blocks compare columns with these (``video.version_type == VersionType.CLEAN``), so the
attributes are plain ``str`` values, not enum members. ``ALL`` lists every value in order; the
check constraints of the models are built from it, so a list and its constraint cannot drift.
"""

from __future__ import annotations


class ProjectCode:
    WSOP = "WSOP"
    HCL = "HCL"
    GGMILLIONS = "GGMILLIONS"
    MPP = "MPP"
    PAD = "PAD"
    GOG = "GOG"
    OTHER = "OTHER"
    ALL = (WSOP, HCL, GGMILLIONS, MPP, PAD, GOG, OTHER)


class SubCategory:
    ARCHIVE = "ARCHIVE"
    BRACELET_LV = "BRACELET_LV"
    BRACELET_EU = "BRACELET_EU"
    BRACELET_PARA = "BRACELET_PARA"
    CIRCUIT = "CIRCUIT"
    SUPER_CIRCUIT = "SUPER_CIRCUIT"
    ALL = (ARCHIVE, BRACELET_LV, BRACELET_EU, BRACELET_PARA, CIRCUIT, SUPER_CIRCUIT)


class EventType:
    """Kinds of catalog events (tournaments, series). Agent event types live in `pokervod_db.events`."""

    BRACELET = "bracelet"
    CIRCUIT = "circuit"
    SUPER_CIRCUIT = "super_circuit"
    HIGH_ROLLER = "high_roller"
    SUPER_HIGH_ROLLER = "super_high_roller"
    CASH_GAME = "cash_game"
    TV_SERIES = "tv_series"
    MYSTERY_BOUNTY = "mystery_bounty"
    MAIN_EVENT = "main_event"
    ALL = (
        BRACELET,
        CIRCUIT,
        SUPER_CIRCUIT,
        HIGH_ROLLER,
        SUPER_HIGH_ROLLER,
        CASH_GAME,
        TV_SERIES,
        MYSTERY_BOUNTY,
        MAIN_EVENT,
    )


class GameType:
    NLHE = "NLHE"
    PLO = "PLO"
    PLO8 = "PLO8"
    MIXED = "Mixed"
    STUD = "Stud"
    RAZZ = "Razz"
    HORSE = "HORSE"
    TRIPLE_DRAW = "2-7TD"
    ALL = (NLHE, PLO, PLO8, MIXED, STUD, RAZZ, HORSE, TRIPLE_DRAW)


class EpisodeType:
    FULL = "full"
    HIGHLIGHT = "highlight"
    RECAP = "recap"
    INTERVIEW = "interview"
    SUBCLIP = "subclip"
    ALL = (FULL, HIGHLIGHT, RECAP, INTERVIEW, SUBCLIP)


class TableType:
    PRELIMINARY = "preliminary"
    DAY1 = "day1"
    DAY2 = "day2"
    DAY3 = "day3"
    FINAL_TABLE = "final_table"
    HEADS_UP = "heads_up"
    ALL = (PRELIMINARY, DAY1, DAY2, DAY3, FINAL_TABLE, HEADS_UP)


class VersionType:
    CLEAN = "clean"
    MASTERED = "mastered"
    STREAM = "stream"
    SUBCLIP = "subclip"
    FINAL_EDIT = "final_edit"
    NOBUG = "nobug"
    PGM = "pgm"
    HIRES = "hires"
    GENERIC = "generic"
    ALL = (CLEAN, MASTERED, STREAM, SUBCLIP, FINAL_EDIT, NOBUG, PGM, HIRES, GENERIC)


class HandGrade:
    ONE_STAR = "★"
    TWO_STAR = "★★"
    THREE_STAR = "★★★"
    ALL = (ONE_STAR, TWO_STAR, THREE_STAR)


class TagCategory:
    POKER_PLAY = "poker_play"
    EMOTION = "emotion"
    EPIC_HAND = "epic_hand"
    RUNOUT = "runout"
    ADJECTIVE = "adjective"
    ALL = (POKER_PLAY, EMOTION, EPIC_HAND, RUNOUT, ADJECTIVE)


class SyncStatus:
    IDLE = "idle"
    SYNCING = "syncing"
    COMPLETED = "completed"
    FAILED = "failed"
    ALL = (IDLE, SYNCING, COMPLETED, FAILED)


class SheetId:
    """The two source sheets the sheets-sync block reads."""

    METADATA_ARCHIVE = "metadata_archive"
    ICONIK_METADATA = "iconik_metadata"
    ALL = (METADATA_ARCHIVE, ICONIK_METADATA)


class FileCategory:
    VIDEO = "video"
    METADATA = "metadata"
    SYSTEM = "system"
    ARCHIVE = "archive"
    OTHER = "other"
    ALL = (VIDEO, METADATA, SYSTEM, ARCHIVE, OTHER)


def in_list(column: str, values: tuple[str, ...]) -> str:
    """SQL text of a check that ``column`` is NULL or one of ``values``."""
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"{column} IN ({quoted})"
