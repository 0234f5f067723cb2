"""The durable event log of the agent (``agent_events``): the outbox other processes read.

Rows are appended in the transaction of the work they report. ``id`` orders events for
consumers; ``txid`` (the writing transaction's id) lets a consumer skip past an id only once
every transaction that could still commit a smaller id has finished (ids are assigned at
insert time, not commit time).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from pokervod_db.models.base import Base


class AgentEvent(Base):
    """One event emitted by an agent, as stored for cross-process delivery and catch-up."""

    __tablename__ = "agent_events"
    __table_args__ = (
        Index("ix_agent_events_event_id", "event_id", unique=True),
        Index("ix_agent_events_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(server_default=text("gen_random_uuid()"))
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    source_block: Mapped[str] = mapped_column(String(20))
    correlation_id: Mapped[uuid.UUID | None]
    parent_event_id: Mapped[uuid.UUID | None]
    txid: Mapped[int] = mapped_column(
        BigInteger, server_default=text("((pg_current_xact_id())::text)::bigint")
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    def __repr__(self) -> str:
        return f"<AgentEvent {self.id} {self.type}>"
