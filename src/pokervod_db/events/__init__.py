"""Agent events: their types, the in-process bus, and delivery to other processes.

An `Event` is published in-process on an `EventBus` and, when it reports work, stored in
``pokervod.agent_events`` by `store_event` in the transaction of that work, with a ``NOTIFY`` on
`CHANNEL`. PostgreSQL delivers the notification at commit, so other processes hear only about
committed work; `listen` reads the table on each notification and catches up by id after a
restart (at-least-once across runs, in id order, never twice within one run).

By concern: `event` (the record, its types and JSON), `bus` (in-process publish/subscribe),
`store` (durable storage in the caller's transaction, ids across a restore), `listener`
(delivery to other processes). Import from ``pokervod_db.events``; the names are re-exported here.
"""

from pokervod_db.events.bus import ALL, EventBus, Handler
from pokervod_db.events.event import Event, EventType, error_payload, to_json
from pokervod_db.events.listener import listen, read_events
from pokervod_db.events.store import (
    CHANNEL,
    EVENT_WRITER_LOCK_KEY,
    keep_event_ids_after,
    last_event_id,
    store_event,
)

__all__ = [
    "ALL",
    "CHANNEL",
    "EVENT_WRITER_LOCK_KEY",
    "Event",
    "EventBus",
    "EventType",
    "Handler",
    "error_payload",
    "keep_event_ids_after",
    "last_event_id",
    "listen",
    "read_events",
    "store_event",
    "to_json",
]
