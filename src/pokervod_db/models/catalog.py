"""The catalog tree: Project → Season → Event → Episode (deletes cascade down the tree)."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Numeric,
    String,
    Table,
    Text,
    Uuid,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pokervod_db.models.base import Base, TimestampMixin, uuid_pk
from pokervod_db.models.values import EpisodeType, TableType, in_list

if TYPE_CHECKING:
    from pokervod_db.models.media import HandClip, VideoFile


class Project(TimestampMixin, Base):
    """A poker series (WSOP, HCL, GGMillions …): the root of the catalog tree."""

    __tablename__ = "projects"
    __table_args__ = (Index("ix_projects_code", "code", unique=True),)

    id: Mapped[uuid.UUID] = uuid_pk()
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    nas_base_path: Mapped[str | None] = mapped_column(String(500))
    filename_pattern: Mapped[str | None] = mapped_column(String(500))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    seasons: Mapped[list[Season]] = relationship(
        back_populates="project", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Project {self.code}>"


class Season(TimestampMixin, Base):
    """One year of a project (``2024 WSOP Las Vegas``)."""

    __tablename__ = "seasons"
    __table_args__ = (
        CheckConstraint("year BETWEEN 1970 AND 2100", name="year_range"),
        Index("ix_seasons_project_year", "project_id", "year"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    year: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    location: Mapped[str | None] = mapped_column(String(200))
    sub_category: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(
        String(20), default="active", server_default=text("'active'")
    )

    project: Mapped[Project] = relationship(back_populates="seasons")
    events: Mapped[list[Event]] = relationship(
        back_populates="season", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Season {self.year} {self.name!r}>"


class Event(TimestampMixin, Base):
    """A tournament or series inside a season (``Event #43 $10,000 Main Event``)."""

    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("buy_in >= 0", name="buy_in_non_negative"),
        CheckConstraint("gtd_amount >= 0", name="gtd_amount_non_negative"),
        Index("ix_events_season_number", "season_id", "event_number"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    season_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("seasons.id", ondelete="CASCADE"))
    event_number: Mapped[int | None]
    name: Mapped[str] = mapped_column(String(500))
    name_short: Mapped[str | None] = mapped_column(String(100))
    event_type: Mapped[str | None] = mapped_column(String(50))
    game_type: Mapped[str | None] = mapped_column(String(50))
    buy_in: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    gtd_amount: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))
    venue: Mapped[str | None] = mapped_column(String(200))
    start_date: Mapped[date | None]
    status: Mapped[str] = mapped_column(
        String(20), default="upcoming", server_default=text("'upcoming'")
    )

    season: Mapped[Season] = relationship(back_populates="events")
    episodes: Mapped[list[Episode]] = relationship(
        back_populates="event", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Event #{self.event_number} {self.name!r}>"


class Episode(TimestampMixin, Base):
    """One video unit of an event (a day, a part, a highlight show)."""

    __tablename__ = "episodes"
    __table_args__ = (
        CheckConstraint("duration_seconds >= 0", name="duration_non_negative"),
        CheckConstraint(in_list("episode_type", EpisodeType.ALL), name="episode_type_valid"),
        CheckConstraint(in_list("table_type", TableType.ALL), name="table_type_valid"),
        Index("ix_episodes_event_id", "event_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    episode_number: Mapped[int | None]
    day_number: Mapped[int | None]
    part_number: Mapped[int | None]
    title: Mapped[str | None] = mapped_column(String(500))
    episode_type: Mapped[str | None] = mapped_column(String(50))
    table_type: Mapped[str | None] = mapped_column(String(50))
    duration_seconds: Mapped[int | None]

    event: Mapped[Event] = relationship(back_populates="episodes")
    # Files and clips survive the deletion of their episode (ON DELETE SET NULL), so no ORM cascade.
    video_files: Mapped[list[VideoFile]] = relationship(
        back_populates="episode", passive_deletes=True
    )
    hand_clips: Mapped[list[HandClip]] = relationship(
        back_populates="episode", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Episode {self.title!r}>"


catalog_versions = Table(
    "catalog_versions",
    Base.metadata,
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Uuid, nullable=False),
)
"""Per project, a random uuid replaced by statement triggers on every write to its tree
(007_catalog_versions); the tree cache of `pokervod_db.treecache` checks it. Read-only for
the application."""
