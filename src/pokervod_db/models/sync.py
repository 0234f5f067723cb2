"""Progress of the Google Sheets sync, one row per (sheet, entity type)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from pokervod_db.models.base import Base, TimestampMixin, uuid_pk
from pokervod_db.models.values import SyncStatus, in_list


class GoogleSheetSync(TimestampMixin, Base):
    """How far the sheets-sync block got in one sheet for one entity type."""

    __tablename__ = "google_sheet_sync"
    __table_args__ = (
        CheckConstraint("last_row_synced >= 0", name="last_row_synced_non_negative"),
        CheckConstraint(in_list("sync_status", SyncStatus.ALL), name="sync_status_valid"),
        Index("ix_google_sheet_sync_sheet_id_entity_type", "sheet_id", "entity_type", unique=True),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    sheet_id: Mapped[str] = mapped_column(String(100))
    entity_type: Mapped[str] = mapped_column(String(50))
    last_row_synced: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    last_synced_at: Mapped[datetime | None]
    sync_status: Mapped[str] = mapped_column(
        String(20), default=SyncStatus.IDLE, server_default=text("'idle'")
    )
    error_message: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"<GoogleSheetSync {self.sheet_id}/{self.entity_type} {self.sync_status}>"
