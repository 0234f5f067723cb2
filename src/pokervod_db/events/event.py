"""What an agent event is: its types, the `Event` record, and its JSON form."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import PurePath
from typing import Any


class EventType(StrEnum):
    """Event types of block G. Other blocks may use their own strings (``"nas.scan.completed"``)."""

    DB_MIGRATION_COMPLETED = "db.migration.completed"
    DB_BACKUP_COMPLETED = "db.backup.completed"
    DB_RESTORE_COMPLETED = "db.restore.completed"
    DB_HEALTH_CHANGED = "db.health.changed"
    SYSTEM_ERROR = "system.error"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID | PurePath | Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json(value: Any) -> str:
    """JSON text of an event, payload or result (datetimes as ISO 8601, UUIDs and paths as text)."""
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def error_payload(error: BaseException, *, operation: str, **extra: Any) -> dict[str, Any]:
    """The payload of a ``system.error`` event: what failed, the one-line error and its class."""
    return {
        "operation": operation,
        "error": str(error) or type(error).__name__,
        "error_type": type(error).__name__,
        **extra,
    }


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


@dataclass(frozen=True)
class Event:
    """One thing that happened, as published on the bus and stored in ``agent_events``.

    ``payload`` is normalised to plain JSON values on creation, so an event always survives a
    trip through JSON or the database unchanged. ``id`` is the stored sequence id (None until
    stored); ``event_id`` identifies the event everywhere, also before it is stored.
    """

    type: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    source_block: str = "unknown"
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    correlation_id: uuid.UUID | None = None
    parent_event_id: uuid.UUID | None = None
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    id: int | None = None

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None or self.timestamp.utcoffset() is None:
            raise ValueError("Event.timestamp must be timezone-aware")
        known = {t.value: t for t in EventType}
        object.__setattr__(self, "type", known.get(str(self.type), str(self.type)))
        object.__setattr__(self, "payload", json.loads(to_json(dict(self.payload))))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``type, payload, timestamp, source_block, correlation_id, id, event_id,
        parent_event_id`` (timestamps ISO 8601, ids as text, ``id`` an integer or null)."""
        return {
            "type": str(self.type),
            "payload": dict(self.payload),
            "timestamp": self.timestamp.isoformat(),
            "source_block": self.source_block,
            "correlation_id": str(self.correlation_id) if self.correlation_id else None,
            "id": self.id,
            "event_id": str(self.event_id),
            "parent_event_id": str(self.parent_event_id) if self.parent_event_id else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """The inverse of `to_dict` (also accepts ``datetime`` and `uuid.UUID` values)."""
        timestamp = data["timestamp"]
        if not isinstance(timestamp, datetime):
            timestamp = datetime.fromisoformat(str(timestamp))
        event_id = _uuid_or_none(data.get("event_id"))
        raw_id = data.get("id")
        return cls(
            type=str(data["type"]),
            payload=data.get("payload") or {},
            source_block=str(data.get("source_block") or "unknown"),
            timestamp=timestamp,
            correlation_id=_uuid_or_none(data.get("correlation_id")),
            parent_event_id=_uuid_or_none(data.get("parent_event_id")),
            event_id=event_id or uuid.uuid4(),
            id=int(raw_id) if raw_id is not None else None,
        )
