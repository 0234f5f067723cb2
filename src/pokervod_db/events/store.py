"""Durable events: stored in ``pokervod.agent_events`` in the caller's transaction, with a
``NOTIFY`` that PostgreSQL delivers at commit; and event ids kept increasing across a restore."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pokervod_db.events.event import Event, to_json
from pokervod_db.settings import SCHEMA

CHANNEL = "pokervod_events"
"""The ``LISTEN``/``NOTIFY`` channel; the payload is the stored event's id only (NOTIFY is
limited to 8000 bytes, the table holds the event)."""

# The shared advisory lock every event writer holds until its transaction ends ("pokevnts").
EVENT_WRITER_LOCK_KEY = 0x706F6B65766E7473


_LOCK_AND_XID = text(
    "SELECT pg_advisory_xact_lock_shared(:key)::text, (pg_current_xact_id()::text)::bigint"
)
_INSERT = text(
    f"WITH ins AS ("
    f" INSERT INTO {SCHEMA}.agent_events"
    f" (event_id, type, payload, source_block, correlation_id, parent_event_id, txid, created_at)"
    f" VALUES (:event_id, :type, CAST(:payload AS jsonb), :source_block, :correlation_id,"
    f" :parent_event_id, :txid, :created_at) RETURNING id)"
    f" SELECT id, pg_notify(:channel, id::text)::text FROM ins"
)


async def store_event(executor: AsyncSession | AsyncConnection, event: Event) -> Event:
    """Insert ``event`` and queue its ``NOTIFY`` in the caller's transaction; returns it with ``id``.

    Nothing is visible to other processes until the caller commits (the work and the event
    commit together, or neither). Publish on the in-process bus only after that commit.
    """
    # The lock and the transaction id come first, before the identity draws the id: `listen`
    # relies on every writer of an id being visible as a lock holder (see `listener`).
    row = (await executor.execute(_LOCK_AND_XID, {"key": EVENT_WRITER_LOCK_KEY})).one()
    stored_id = (
        await executor.execute(
            _INSERT,
            {
                "event_id": event.event_id,
                "type": str(event.type),
                "payload": to_json(dict(event.payload)),
                "source_block": event.source_block,
                "correlation_id": event.correlation_id,
                "parent_event_id": event.parent_event_id,
                "txid": int(row[1]),
                "created_at": event.timestamp,
                "channel": CHANNEL,
            },
        )
    ).scalar_one()
    return replace(event, id=int(stored_id))


# --- ids across a restore ---------------------------------------------------------------------

EVENT_ID_SEQUENCE = f"pg_get_serial_sequence('{SCHEMA}.agent_events', 'id')"


def last_event_id(conn: Connection) -> int:
    """The last event id drawn in this database (0 if none); read it before a restore."""
    value = conn.execute(
        text(f"SELECT coalesce(pg_sequence_last_value({EVENT_ID_SEQUENCE}::regclass), 0)")
    ).scalar_one()
    return int(value)


def keep_event_ids_after(conn: Connection, last_id: int) -> int:
    """After a restore, make new event ids continue above ``last_id`` (read before it).

    A restore brings back the identity sequence of the backup; without this, new events would
    reuse ids that listeners have already passed, and they would never see them. Returns the
    sequence value now in force. The caller commits.
    """
    value = conn.execute(
        text(
            f"SELECT setval({EVENT_ID_SEQUENCE}, greatest(:last, "
            f"coalesce(pg_sequence_last_value({EVENT_ID_SEQUENCE}::regclass), 0), "
            f"(SELECT coalesce(max(id), 0) FROM {SCHEMA}.agent_events), 1))"
        ),
        {"last": last_id},
    ).scalar_one()
    return int(value)
