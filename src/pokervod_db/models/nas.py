"""The NAS inventory: folders and files as the scanner last saw them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, String, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pokervod_db.models.base import STORAGE_PARAMETERS, Base, TimestampMixin, uuid_pk
from pokervod_db.models.values import FileCategory, in_list

if TYPE_CHECKING:
    from pokervod_db.models.media import VideoFile


class NASFolder(TimestampMixin, Base):
    """A folder on the NAS, keyed by its full path."""

    __tablename__ = "nas_folders"
    __table_args__ = (
        CheckConstraint("depth >= 0", name="depth_non_negative"),
        CheckConstraint("file_count >= 0", name="file_count_non_negative"),
        CheckConstraint("folder_count >= 0", name="folder_count_non_negative"),
        CheckConstraint("total_size_bytes >= 0", name="total_size_non_negative"),
        Index("ix_nas_folders_folder_path", "folder_path", unique=True),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    folder_path: Mapped[str] = mapped_column(String(1000))
    folder_name: Mapped[str] = mapped_column(String(500))
    parent_path: Mapped[str | None] = mapped_column(String(1000))
    depth: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    file_count: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    folder_count: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    total_size_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    is_empty: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    is_hidden_folder: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    files: Mapped[list[NASFile]] = relationship(back_populates="folder", passive_deletes=True)

    def __repr__(self) -> str:
        return f"<NASFolder {self.folder_path!r}>"


class NASFile(TimestampMixin, Base):
    """A file on the NAS, keyed by its full path; video files link to their `VideoFile` (1:1)."""

    __tablename__ = "nas_files"
    __table_args__ = (
        CheckConstraint("file_size_bytes >= 0", name="file_size_non_negative"),
        CheckConstraint(in_list("file_category", FileCategory.ALL), name="file_category_valid"),
        Index("ix_nas_files_file_path", "file_path", unique=True),
        Index("ix_nas_files_folder_id", "folder_id"),
        # Unique: one NAS file per video file (the 1:1 of the contract); NULLs are not compared.
        Index("ix_nas_files_video_file_id", "video_file_id", unique=True),
        # Room on each page (004_query_indexes): a rescan updates sizes and times, none of them
        # indexed, so the new row version fits beside the old one (HOT) and no index changes.
        # Set by that migration; kept in `info` for the drift check (see models/base.py).
        {"info": {STORAGE_PARAMETERS: {"fillfactor": "90"}}},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    file_path: Mapped[str] = mapped_column(String(1000))
    file_name: Mapped[str] = mapped_column(String(500))
    file_size_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    file_extension: Mapped[str | None] = mapped_column(String(20))
    file_mtime: Mapped[datetime | None]
    file_category: Mapped[str] = mapped_column(
        String(20), default=FileCategory.OTHER, server_default=text("'other'")
    )
    is_hidden_file: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    is_excluded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    exclude_reason: Mapped[str | None] = mapped_column(String(100))
    video_file_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("video_files.id", ondelete="SET NULL")
    )
    folder_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("nas_folders.id", ondelete="SET NULL")
    )

    video_file: Mapped[VideoFile | None] = relationship(back_populates="nas_file")
    folder: Mapped[NASFolder | None] = relationship(back_populates="files")

    def __repr__(self) -> str:
        return f"<NASFile {self.file_path!r}>"
