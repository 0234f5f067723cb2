"""A small, realistic sample catalog so that a newcomer sees real rows (`pokervod-db up --sample`).

Loading is idempotent: the sample is keyed by its project codes and skipped when present.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import select
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
    ProjectCode,
    Season,
    SheetId,
    SubCategory,
    SyncStatus,
    TableType,
    Tag,
    TagCategory,
    VersionType,
    VideoFile,
)

NAS_ROOT = "/nas/poker"

_PLAYERS = [
    ("Phil Ivey", "USA", 11),
    ("Daniel Negreanu", "Canada", 7),
    ("Phil Hellmuth", "USA", 17),
    ("Doyle Brunson", "USA", 10),
    ("Garrett Adelstein", "USA", 0),
    ("Tom Dwan", "USA", 0),
    ("Fedor Holz", "Germany", 1),
    ("Justin Bonomo", "USA", 3),
]

_TAGS = [
    (TagCategory.POKER_PLAY, "hero_call", "Hero Call"),
    (TagCategory.POKER_PLAY, "bluff", "Bluff"),
    (TagCategory.POKER_PLAY, "slowplay", "Slowplay"),
    (TagCategory.EMOTION, "tilt", "Tilt"),
    (TagCategory.EPIC_HAND, "cooler", "Cooler"),
    (TagCategory.EPIC_HAND, "bad_beat", "Bad Beat"),
    (TagCategory.RUNOUT, "river_card", "River Card"),
    (TagCategory.ADJECTIVE, "massive_pot", "Massive Pot"),
]

_CLIP_NOTES = [
    "Ivey four-bets all-in with pocket kings, Negreanu snap-calls with aces; the river brings a king",
    "Hero call on the river with ace high against a triple-barrel bluff",
    "Massive bluff on a paired board, Hellmuth folds the best hand and complains",
    "Set over set on a dry flop, the pot reaches three million",
    "Dwan slowplays quads and checks the river to induce a bluff",
    "Bad beat: two outer on the river eliminates the chip leader",
]


@dataclass
class SampleSummary:
    loaded: bool
    projects: int = 0
    video_files: int = 0
    hand_clips: int = 0
    nas_files: int = 0


async def load_sample(session: AsyncSession) -> SampleSummary:
    """Insert the sample catalog unless it is already there. The caller commits."""
    existing = await session.scalar(select(Project.id).where(Project.code == ProjectCode.WSOP))
    if existing is not None:
        return SampleSummary(loaded=False)

    players = [
        Player(name=n.lower().replace(" ", "_"), name_display=n, nationality=c, wsop_bracelets=b)
        for n, c, b in _PLAYERS
    ]
    tags = [
        Tag(category=cat, name=name, name_display=disp, sort_order=i)
        for i, (cat, name, disp) in enumerate(_TAGS)
    ]
    session.add_all([*players, *tags])

    projects = [
        Project(
            code=ProjectCode.WSOP,
            name="World Series of Poker",
            nas_base_path=f"{NAS_ROOT}/WSOP",
            filename_pattern="WSOP_{year}_Event{event}_Day{day}_Part{part}",
        ),
        Project(code=ProjectCode.HCL, name="Hustler Casino Live", nas_base_path=f"{NAS_ROOT}/HCL"),
        Project(
            code=ProjectCode.GGMILLIONS, name="GGMillions", nas_base_path=f"{NAS_ROOT}/GGMillions"
        ),
    ]
    session.add_all(projects)

    summary = SampleSummary(loaded=True, projects=len(projects))
    clip_row = 0
    for project in projects:
        root = NASFolder(
            folder_path=project.nas_base_path or NAS_ROOT,
            folder_name=project.code,
            parent_path=NAS_ROOT,
            depth=1,
            is_empty=False,
        )
        session.add(root)
        for year in (2023, 2024):
            season = Season(
                project=project,
                year=year,
                name=f"{year} {project.name}",
                location="Las Vegas" if project.code == ProjectCode.WSOP else "Los Angeles",
                sub_category=SubCategory.BRACELET_LV if project.code == ProjectCode.WSOP else None,
            )
            folder = NASFolder(
                folder_path=f"{root.folder_path}/{year}",
                folder_name=str(year),
                parent_path=root.folder_path,
                depth=2,
                is_empty=False,
            )
            session.add(folder)
            for number, (name, kind, game, buy_in) in enumerate(
                [
                    (
                        "$10,000 No-Limit Hold'em Main Event",
                        EventType.MAIN_EVENT,
                        GameType.NLHE,
                        10000,
                    ),
                    (
                        "$50,000 Poker Players Championship",
                        EventType.BRACELET,
                        GameType.MIXED,
                        50000,
                    ),
                ],
                start=1,
            ):
                event = Event(
                    season=season,
                    event_number=number,
                    name=f"Event #{number} {name}",
                    name_short=name.split(" ", 1)[1][:100],
                    event_type=kind,
                    game_type=game,
                    buy_in=Decimal(buy_in),
                    venue="Horseshoe Las Vegas",
                    start_date=date(year, 6, 1 + number),
                )
                for day, table_type in ((1, TableType.DAY1), (3, TableType.FINAL_TABLE)):
                    episode = Episode(
                        event=event,
                        episode_number=day,
                        day_number=day,
                        part_number=1,
                        title=f"{year} {project.code} {name} Day {day}",
                        episode_type=EpisodeType.FULL,
                        table_type=table_type,
                        duration_seconds=4 * 3600,
                    )
                    file_name = f"{project.code}_{year}_Event{number}_Day{day}_Part1.mp4"
                    path = f"{folder.folder_path}/{file_name}"
                    video = VideoFile(
                        episode=episode,
                        file_path=path,
                        file_name=file_name,
                        file_size_bytes=12_884_901_888,
                        file_format="mp4",
                        file_mtime=datetime(year, 7, 1, tzinfo=UTC),
                        resolution="1920x1080",
                        video_codec="h264",
                        audio_codec="aac",
                        bitrate_kbps=8000,
                        duration_seconds=4 * 3600,
                        version_type=VersionType.MASTERED,
                        is_original=True,
                        display_title=f"{year} {project.name} {name} Day {day}",
                        is_catalog_item=True,
                        scan_status="scanned",
                    )
                    session.add(
                        NASFile(
                            file_path=path,
                            file_name=file_name,
                            file_size_bytes=video.file_size_bytes or 0,
                            file_extension=".mp4",
                            file_mtime=video.file_mtime,
                            file_category=FileCategory.VIDEO,
                            video_file=video,
                            folder=folder,
                        )
                    )
                    summary.video_files += 1
                    summary.nas_files += 1
                    for k in range(2):
                        clip_row += 1
                        note = _CLIP_NOTES[clip_row % len(_CLIP_NOTES)]
                        session.add(
                            HandClip(
                                episode=episode,
                                video_file=video,
                                sheet_source=SheetId.METADATA_ARCHIVE,
                                sheet_row_number=clip_row,
                                title=f"Hand {clip_row}: {note.split(',')[0]}",
                                timecode=f"01:{10 + 20 * k:02d}:00",
                                timecode_end=f"01:{14 + 20 * k:02d}:30",
                                duration_seconds=270,
                                notes=note,
                                hand_grade=(HandGrade.ONE_STAR, HandGrade.THREE_STAR)[k],
                                pot_size=1_250_000 * (k + 1),
                                winner_hand="KK" if k == 0 else "AA",
                                hands_involved="AA vs KK",
                                tags=[tags[clip_row % len(tags)], tags[(clip_row + 3) % len(tags)]],
                                players=[
                                    players[clip_row % len(players)],
                                    players[(clip_row + 1) % len(players)],
                                ],
                            )
                        )
                        summary.hand_clips += 1
    session.add(
        NASFile(
            file_path=f"{NAS_ROOT}/.DS_Store",
            file_name=".DS_Store",
            file_category=FileCategory.SYSTEM,
            is_hidden_file=True,
            is_excluded=True,
            exclude_reason="system file",
        )
    )
    summary.nas_files += 1
    session.add_all(
        [
            GoogleSheetSync(
                sheet_id=SheetId.METADATA_ARCHIVE,
                entity_type="hand_clip",
                last_row_synced=clip_row,
                sync_status=SyncStatus.COMPLETED,
                last_synced_at=datetime.now(UTC),
            ),
            GoogleSheetSync(sheet_id=SheetId.ICONIK_METADATA, entity_type="video_file"),
        ]
    )
    await session.flush()
    return summary
