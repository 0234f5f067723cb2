"""Video files, hand clips and their tags and players.

Files and clips point at the catalog with ``ON DELETE SET NULL``: a file on the NAS must survive
the deletion of the episode it was linked to. The two full-text indexes of the PRD index stored
generated ``tsvector`` columns computed from the PRD's expressions, so ranking reads a stored
vector instead of re-parsing every matching title or note.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    String,
    Table,
    Text,
    false,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pokervod_db.models.base import STORAGE_PARAMETERS, Base, TimestampMixin, uuid_pk
from pokervod_db.models.values import HandGrade, TagCategory, VersionType, in_list

if TYPE_CHECKING:
    from pokervod_db.models.catalog import Episode
    from pokervod_db.models.nas import NASFile

TITLE_TSV_EXPRESSION = "to_tsvector('english'::regconfig, (display_title)::text)"
NOTES_TSV_EXPRESSION = "to_tsvector('english'::regconfig, notes)"

hand_clip_tags = Table(
    "hand_clip_tags",
    Base.metadata,
    Column(
        "hand_clip_id",
        ForeignKey("hand_clips.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
    # Copies of the clip's created_at / deleted_at, set and kept by triggers (never write
    # them): a tag's live clips, newest first, come out of one index range
    # (005_tag_link_created_at).
    Column("clip_created_at", DateTime(timezone=True), nullable=False),
    Column("clip_deleted_at", DateTime(timezone=True)),
    Index(
        "ix_hand_clip_tags_tag_created",
        "tag_id",
        "clip_created_at",
        "hand_clip_id",
        postgresql_include=["clip_deleted_at"],
    ),
)

tag_clip_counts = Table(
    "tag_clip_counts",
    Base.metadata,
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
    Column("clips", BigInteger, nullable=False, server_default=text("0")),
    Column("live_clips", BigInteger, nullable=False, server_default=text("0")),
)
"""Per tag, how many clips carry it and how many of those are live; kept by statement
triggers on ``hand_clip_tags`` (005_tag_link_created_at). Read-only for the application."""

hand_clip_players = Table(
    "hand_clip_players",
    Base.metadata,
    Column(
        "hand_clip_id",
        ForeignKey("hand_clips.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("player_id", ForeignKey("players.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_hand_clip_players_player_clip", "player_id", "hand_clip_id"),
)


class VideoFile(TimestampMixin, Base):
    """A video file on the NAS, with its technical and catalog metadata."""

    __tablename__ = "video_files"
    __table_args__ = (
        CheckConstraint("file_size_bytes >= 0", name="file_size_non_negative"),
        CheckConstraint("duration_seconds >= 0", name="duration_non_negative"),
        CheckConstraint("bitrate_kbps >= 0", name="bitrate_non_negative"),
        CheckConstraint(in_list("version_type", VersionType.ALL), name="version_type_valid"),
        Index("ix_video_files_file_path", "file_path", unique=True),
        Index("ix_video_files_episode_id", "episode_id"),
        Index("ix_video_files_title_gin", "title_tsv", postgresql_using="gin"),
        # Newest-first lists and keyset pagination (004_query_indexes).
        # deleted_at is carried so the live filter needs no heap access (index-only scans).
        Index("ix_video_files_created_at", "created_at", "id", postgresql_include=["deleted_at"]),
        # Search walks titles in ranking order: shortest first, newest first (006).
        Index(
            "ix_video_files_title_rank",
            func.length(text("title_tsv")),
            text("created_at DESC"),
            text("id DESC"),
        ),
        Index(
            "ix_video_files_title_len_gin",
            text(
                "(title_tsv || array_to_tsvector(ARRAY[' ' || COALESCE(length(title_tsv), 0)::text]))"
            ),
            postgresql_using="gin",
        ),
        # Room for in-place (HOT) updates by rescans, as on nas_files (004_query_indexes).
        # Set by that migration; here only as `info` so SQLAlchemy 2.0 (no Table-level
        # postgresql_with) imports the models and the drift check still compares it.
        {"info": {STORAGE_PARAMETERS: {"fillfactor": "90"}}},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    episode_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("episodes.id", ondelete="SET NULL")
    )
    file_path: Mapped[str] = mapped_column(String(1000))
    file_name: Mapped[str] = mapped_column(String(500))
    file_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    file_format: Mapped[str | None] = mapped_column(String(20))
    file_mtime: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(String(20))
    video_codec: Mapped[str | None] = mapped_column(String(50))
    audio_codec: Mapped[str | None] = mapped_column(String(50))
    bitrate_kbps: Mapped[int | None]
    duration_seconds: Mapped[int | None]
    version_type: Mapped[str | None] = mapped_column(String(20))
    is_original: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    display_title: Mapped[str | None] = mapped_column(String(500))
    content_type: Mapped[str | None] = mapped_column(String(20))
    catalog_title: Mapped[str | None] = mapped_column(String(300))
    is_catalog_item: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    is_hidden: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    hidden_reason: Mapped[str | None] = mapped_column(String(50))
    scan_status: Mapped[str] = mapped_column(
        String(20), default="pending", server_default=text("'pending'")
    )
    # Search vector of display_title, maintained by PostgreSQL; never written by callers.
    title_tsv: Mapped[str | None] = mapped_column(
        TSVECTOR, Computed(TITLE_TSV_EXPRESSION, persisted=True), deferred=True
    )

    episode: Mapped[Episode | None] = relationship(back_populates="video_files")
    hand_clips: Mapped[list[HandClip]] = relationship(
        back_populates="video_file", passive_deletes=True
    )
    nas_file: Mapped[NASFile | None] = relationship(
        back_populates="video_file", uselist=False, passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<VideoFile {self.file_path!r}>"


class HandClip(TimestampMixin, Base):
    """One analysed hand: a time range of a video with grade, notes, tags and players."""

    __tablename__ = "hand_clips"
    __table_args__ = (
        CheckConstraint("sheet_row_number > 0", name="sheet_row_number_positive"),
        CheckConstraint("duration_seconds >= 0", name="duration_non_negative"),
        CheckConstraint("pot_size >= 0", name="pot_size_non_negative"),
        CheckConstraint(in_list("hand_grade", HandGrade.ALL), name="hand_grade_valid"),
        Index("ix_hand_clips_video_file_id", "video_file_id"),
        Index("ix_hand_clips_episode_id", "episode_id"),
        Index("ix_hand_clips_sheet_source_row", "sheet_source", "sheet_row_number", unique=True),
        Index("ix_hand_clips_notes_gin", "notes_tsv", postgresql_using="gin"),
        # Newest-first lists and keyset pagination (004_query_indexes).
        Index("ix_hand_clips_created_at", "created_at", "id", postgresql_include=["deleted_at"]),
        # The few soft-deleted clips, so live counts subtract them without a join on the heap.
        Index("ix_hand_clips_deleted", "id", postgresql_where=text("deleted_at IS NOT NULL")),
        # Search walks notes in ranking order: shortest first, newest first (006).
        Index(
            "ix_hand_clips_notes_rank",
            func.length(text("notes_tsv")),
            text("created_at DESC"),
            text("id DESC"),
        ),
        Index(
            "ix_hand_clips_notes_len_gin",
            text(
                "(notes_tsv || array_to_tsvector(ARRAY[' ' || COALESCE(length(notes_tsv), 0)::text]))"
            ),
            postgresql_using="gin",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    episode_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("episodes.id", ondelete="SET NULL")
    )
    video_file_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("video_files.id", ondelete="SET NULL")
    )
    sheet_source: Mapped[str | None] = mapped_column(String(50))
    sheet_row_number: Mapped[int | None]
    nas_folder_link: Mapped[str | None] = mapped_column(String(1000))
    sheet_file_name: Mapped[str | None] = mapped_column(String(500))
    title: Mapped[str | None] = mapped_column(String(500))
    timecode: Mapped[str | None] = mapped_column(String(20))
    timecode_end: Mapped[str | None] = mapped_column(String(20))
    duration_seconds: Mapped[int | None]
    notes: Mapped[str | None] = mapped_column(Text)
    hand_grade: Mapped[str | None] = mapped_column(String(10))
    pot_size: Mapped[int | None] = mapped_column(BigInteger)
    winner_hand: Mapped[str | None] = mapped_column(String(50))
    hands_involved: Mapped[str | None] = mapped_column(String(100))
    # Search vector of notes, maintained by PostgreSQL; never written by callers.
    notes_tsv: Mapped[str | None] = mapped_column(
        TSVECTOR, Computed(NOTES_TSV_EXPRESSION, persisted=True), deferred=True
    )

    episode: Mapped[Episode | None] = relationship(back_populates="hand_clips")
    video_file: Mapped[VideoFile | None] = relationship(back_populates="hand_clips")
    tags: Mapped[list[Tag]] = relationship(
        secondary=hand_clip_tags, back_populates="hand_clips", passive_deletes=True
    )
    players: Mapped[list[Player]] = relationship(
        secondary=hand_clip_players, back_populates="hand_clips", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<HandClip {self.sheet_source}:{self.sheet_row_number}>"


class Tag(TimestampMixin, Base):
    """A tag of the hand-analysis vocabulary, unique per category."""

    __tablename__ = "tags"
    __table_args__ = (
        CheckConstraint(in_list("category", TagCategory.ALL), name="category_valid"),
        Index("ix_tags_category_name", "category", "name", unique=True),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    category: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(100))
    name_display: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    sort_order: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    hand_clips: Mapped[list[HandClip]] = relationship(
        secondary=hand_clip_tags, back_populates="tags", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Tag {self.category}:{self.name}>"


class Player(TimestampMixin, Base):
    """A poker player appearing in hand clips."""

    __tablename__ = "players"
    __table_args__ = (
        CheckConstraint("wsop_bracelets >= 0", name="wsop_bracelets_non_negative"),
        Index("ix_players_name", "name", unique=True),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    name_display: Mapped[str | None] = mapped_column(String(200))
    nationality: Mapped[str | None] = mapped_column(String(100))
    hendon_mob_id: Mapped[str | None] = mapped_column(String(50))
    total_live_earnings: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))
    wsop_bracelets: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    hand_clips: Mapped[list[HandClip]] = relationship(
        secondary=hand_clip_players, back_populates="players", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Player {self.name!r}>"
