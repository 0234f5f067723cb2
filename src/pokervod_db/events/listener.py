"""Delivery to other processes: `listen` follows the stored events, `read_events` reads
them once.

Ids come from an identity sequence and are assigned at insert time, not commit time, so a
transaction holding id 10 may commit after one holding id 11. A reader that moved past 11 would
never see 10. Comparing the writer's transaction id with the snapshot's xmin is not enough either:
a transaction that started earlier may take a larger id later. `listen` therefore uses a
*horizon*: every writer takes a shared transaction-level advisory lock before it draws an id;
the reader notes the last id drawn so far and the writers holding the lock at that moment, and
treats ids up to that value as final only once all those writers have ended. Events are delivered
up to the horizon only. Writers never wait for each other (the lock is shared), and only
transactions that store events delay delivery, never unrelated long transactions. Beyond the
horizon, committed ids that follow the last delivered id without a gap are delivered at once:
only a writer holding a *lower* id can hold an event back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from pokervod_db import embedded
from pokervod_db.errors import DatabaseUnavailableError, MigrationError, SQLState, sqlstate
from pokervod_db.events.event import Event
from pokervod_db.events.store import CHANNEL, EVENT_ID_SEQUENCE, EVENT_WRITER_LOCK_KEY
from pokervod_db.settings import SCHEMA, Settings

log = logging.getLogger(__name__)


_SEQUENCE_VALUE = f"SELECT coalesce(pg_sequence_last_value({EVENT_ID_SEQUENCE}::regclass), 0)"
_WRITERS = (
    "SELECT coalesce(array_agg(virtualtransaction), '{}'), pg_current_snapshot()::text, "
    "coalesce(array_agg(pid), '{}') FROM pg_locks "
    "WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND ((classid::bigint << 32) | objid::bigint) = $1"
)
_COLUMNS = (
    "id, event_id, type, payload::text, source_block, correlation_id, parent_event_id, created_at"
)
_RANGE = (
    f"SELECT {_COLUMNS} FROM {SCHEMA}.agent_events "
    f"WHERE id > $1 AND id <= $2 AND ($3::text[] IS NULL OR type = ANY($3::text[])) "
    f"ORDER BY id LIMIT $4"
)
# The last id of the committed run $1+1, $1+2, … (no gap), up to $2: id - row_number() is $1
# exactly for the rows of that run.
_CONTIGUOUS_END = (
    f"SELECT max(id) FROM (SELECT id, id - row_number() OVER (ORDER BY id) AS gap "
    f"FROM (SELECT id FROM {SCHEMA}.agent_events WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3)"
    f" AS s) AS t WHERE gap = $1"
)
# Rows with ids below the start point whose writer was still running when the listener started.
_IN_FLIGHT_AT_START = (
    f"SELECT {_COLUMNS} FROM {SCHEMA}.agent_events "
    f"WHERE id <= $1 AND NOT pg_visible_in_snapshot(txid::text::xid8, $2::text::pg_snapshot) "
    f"AND ($3::text[] IS NULL OR type = ANY($3::text[])) ORDER BY id"
)
_BATCH = 500
_MAX_MARKS = 64
_STALL_WARNING_S = 60.0
_PROMPT_FIRST_S = 0.002  # first re-read after a read that still waits on writers


def _event_from_row(row: Any) -> Event:
    return Event(
        type=row["type"],
        payload=json.loads(row["payload"]),
        source_block=row["source_block"],
        timestamp=row["created_at"],
        correlation_id=row["correlation_id"],
        parent_event_id=row["parent_event_id"],
        event_id=row["event_id"],
        id=int(row["id"]),
    )


@dataclass
class _Mark:
    """Ids up to ``seq`` are final once none of ``writers`` (virtual xids) holds the lock."""

    seq: int
    writers: frozenset[str]


@dataclass
class _Cursor:
    """What one listener has delivered and what it is waiting for."""

    last_seen: int | None
    types: list[str] | None
    marks: list[_Mark] = field(default_factory=list)
    start: tuple[int, str] | None = None  # (first sequence value, snapshot) for since_id=None
    waiting_since: float | None = None
    warned: bool = False
    highest_seq: int = 0

    @property
    def waiting(self) -> bool:
        return bool(self.marks)

    def wait_interval(self, poll_interval: float) -> float:
        """Poll fast for a few seconds while a writer runs (a rollback sends no notification)."""
        if self.waiting_since is None:
            return poll_interval
        fast = time.monotonic() - self.waiting_since < 5.0
        return min(0.2, poll_interval) if fast else poll_interval

    async def deliver(self, conn: Any) -> AsyncIterator[Event]:  # noqa: C901 (the horizon rules in one place; reliability is changing it)
        """One poll: advance the horizon and yield the events up to it, in id order."""
        seq = int(await conn.fetchval(_SEQUENCE_VALUE))
        if seq < self.highest_seq:
            # The table was recreated (a downgrade below 003 and an upgrade) or restored without
            # keep_event_ids_after: its ids start again, so deliver it again from the start.
            log.warning(
                "event ids went back from %s to %s: agent_events was recreated or restored; "
                "delivering its events again from the first id",
                self.highest_seq,
                seq,
            )
            self.last_seen, self.marks, self.start = 0, [], None
        self.highest_seq = seq
        writers_row = await conn.fetchrow(_WRITERS, EVENT_WRITER_LOCK_KEY)
        writers = frozenset(writers_row[0])
        if self.last_seen is None:
            # "From now": ids drawn so far are the past, except those whose writer has not
            # committed yet; the snapshot tells them apart when they become final.
            self.last_seen = seq
            if writers:
                self.start = (seq, str(writers_row[1]))
        if self.marks and self.marks[-1].writers == writers:
            self.marks[-1] = _Mark(seq, writers)
        else:
            self.marks.append(_Mark(seq, writers))
        if len(self.marks) > _MAX_MARKS:
            # Merging two marks only makes the older one wait longer: still correct.
            first, second = self.marks[0], self.marks[1]
            self.marks[:2] = [_Mark(second.seq, first.writers | second.writers)]
        ready = [m for m in self.marks if not (m.writers & writers)]
        self.marks = [m for m in self.marks if m.writers & writers]
        self._watch_stall(writers_row[2])
        if ready:
            horizon = max(m.seq for m in ready)
            if self.start is not None:
                start_seq, snapshot = self.start
                self.start = None
                for row in await conn.fetch(_IN_FLIGHT_AT_START, start_seq, snapshot, self.types):
                    yield _event_from_row(row)
            async for event in self._deliver_up_to(conn, horizon):
                yield event
        if self.start is None and self.last_seen < seq:
            # Committed ids that follow the last delivered one without a gap are final even
            # while writers still run: no id below them can still appear. Waiting for the
            # horizon only where there is a gap keeps latency at "the writers of lower ids",
            # not "every writer that was running".
            end = await conn.fetchval(_CONTIGUOUS_END, self.last_seen, seq, _BATCH)
            if end is not None:
                async for event in self._deliver_up_to(conn, int(end)):
                    yield event
                self.marks = [m for m in self.marks if m.seq > self.last_seen]

    async def _deliver_up_to(self, conn: Any, horizon: int) -> AsyncIterator[Event]:
        assert self.last_seen is not None
        while self.last_seen < horizon:
            rows = await conn.fetch(_RANGE, self.last_seen, horizon, self.types, _BATCH)
            for row in rows:
                self.last_seen = int(row["id"])
                yield _event_from_row(row)
            if len(rows) < _BATCH:
                self.last_seen = horizon

    def _watch_stall(self, pids: list[int]) -> None:
        if not self.marks:
            self.waiting_since, self.warned = None, False
            return
        now = time.monotonic()
        if self.waiting_since is None:
            self.waiting_since = now
        elif not self.warned and now - self.waiting_since > _STALL_WARNING_S:
            self.warned = True
            log.warning(
                "event delivery after id %s is held back by transactions that stored events "
                "and are still open after %.0f s (server pids %s); it resumes when they end",
                self.last_seen,
                now - self.waiting_since,
                ", ".join(str(p) for p in sorted(set(pids))),
            )


_RETRYABLE: tuple[type[BaseException], ...] = (OSError, TimeoutError, ConnectionError)


def _retryable() -> tuple[type[BaseException], ...]:
    return (
        *_RETRYABLE,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    )


async def _connect(settings: Settings, application_name: str) -> Any:
    return await asyncpg.connect(
        dsn=settings.libpq_url(),
        timeout=settings.connect_timeout,
        server_settings={"application_name": application_name},
    )


def _waker(flag: asyncio.Event) -> Callable[..., None]:
    return lambda *_: flag.set()


def _table_missing(exc: BaseException) -> bool:
    return sqlstate(exc) in {SQLState.UNDEFINED_TABLE, SQLState.INVALID_SCHEMA_NAME}


async def listen(  # noqa: C901 (replay, wait, reconnect in one loop; reliability is changing it)
    settings: Settings,
    *,
    since_id: int | None = None,
    types: Collection[str] | None = None,
    poll_interval: float = 2.0,
    max_backoff: float = 10.0,
    application_name: str = "pokervod-db events",
    on_connected: Callable[[int], object] | None = None,
) -> AsyncIterator[Event]:
    """Yield stored events as other processes commit them, forever, in id order.

    ``since_id`` replays what was stored after that id first (None: only events committed from
    now on). The listener reads the table on each notification, at start and every
    ``poll_interval`` seconds (the safety net); when its connection drops it reconnects with a
    backoff of at most ``max_backoff`` seconds and carries on from the last delivered id. Keep
    the last ``id`` you processed and pass it as ``since_id`` to resume after a restart.
    ``on_connected(last_id)`` is called after each (re)connection's first read: from then on,
    every committed event will be delivered.
    """
    settings = (await asyncio.to_thread(embedded.start, settings)).direct()  # LISTEN: a session
    cursor = _Cursor(last_seen=since_id, types=sorted({str(t) for t in types}) if types else None)
    retryable = _retryable()
    connected_once = False  # a connection succeeded: later failures are retried
    read_once = False  # the table was read: its disappearance is a migration, wait for it
    table_gone = False
    backoff = 0.25
    while True:
        conn: Any = None
        try:
            conn = await _connect(settings, application_name)
            wake = asyncio.Event()
            await conn.add_listener(CHANNEL, _waker(wake))
            conn.add_termination_listener(_waker(wake))
            if connected_once:
                log.warning("event listener reconnected; resuming after id %s", cursor.last_seen)
            connected_once = True
            backoff = 0.25
            first = True
            prompt = _PROMPT_FIRST_S
            while True:
                wake.clear()
                async for event in cursor.deliver(conn):
                    yield event
                read_once, table_gone = True, False
                if first and on_connected is not None:
                    on_connected(cursor.last_seen or 0)
                first = False
                # Still waiting on writers' locks: re-read soon even if no NOTIFY comes. A writer
                # queues its NOTIFY before it releases the lock, so the notification we just
                # read may be the last one while its writer still showed as a holder; and a
                # writer that rolls back sends none. Back off from a few ms to the slow poll.
                interval = cursor.wait_interval(poll_interval)
                if cursor.waiting and prompt < interval:
                    interval, prompt = prompt, prompt * 2
                woke = False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), interval)
                    woke = True
                if woke or not cursor.waiting:
                    prompt = _PROMPT_FIRST_S
                if conn.is_closed():
                    raise ConnectionError("the listener's connection was closed")
        except asyncpg.PostgresError as exc:
            if isinstance(exc, retryable) and connected_once:
                log.warning("event listener lost its connection (%s); retrying", exc)
            elif _table_missing(exc) and read_once:
                # Dropped while we listen (a downgrade below 003): wait for it to come back.
                if not table_gone:
                    log.warning("%s.agent_events is gone; waiting for it to come back", SCHEMA)
                table_gone = True
            elif _table_missing(exc):
                raise MigrationError(
                    f"{SCHEMA}.agent_events does not exist in {settings.masked_url()}; "
                    "run `pokervod-db upgrade` first"
                ) from exc
            else:
                raise DatabaseUnavailableError(
                    f"event listener failed on {settings.masked_url()}: {exc}"
                ) from exc
        except retryable as exc:
            if not connected_once:
                raise DatabaseUnavailableError(
                    f"cannot listen for events on {settings.masked_url()}: {exc or type(exc).__name__}"
                ) from exc
            log.warning("event listener lost its connection (%s); retrying", exc)
        finally:
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff)


async def read_events(
    settings: Settings,
    *,
    since_id: int = 0,
    types: Collection[str] | None = None,
    wait_s: float = 10.0,
) -> list[Event]:
    """The stored events after ``since_id`` that are final now, in id order (one-shot catch-up).

    Waits at most ``wait_s`` for event writers that were running at the call to finish; what is
    final by then is returned (the rest comes with the next call from the last returned id).
    """
    settings = (await asyncio.to_thread(embedded.start, settings)).direct()  # LISTEN: a session
    cursor = _Cursor(last_seen=since_id, types=sorted({str(t) for t in types}) if types else None)
    try:
        conn = await _connect(settings, "pokervod-db events")
    except (*_retryable(), asyncpg.PostgresError) as exc:
        raise DatabaseUnavailableError(
            f"cannot read events from {settings.masked_url()}: {exc or type(exc).__name__}"
        ) from exc
    events: list[Event] = []
    try:
        async with asyncio.timeout(wait_s):
            while True:
                events.extend([e async for e in cursor.deliver(conn)])
                if not cursor.waiting:
                    break
                await asyncio.sleep(0.1)
    except TimeoutError:
        log.warning("event writers still running after %.0f s; returning what is final", wait_s)
    except asyncpg.PostgresError as exc:
        if _table_missing(exc):
            raise MigrationError(
                f"{SCHEMA}.agent_events does not exist in {settings.masked_url()}; "
                "run `pokervod-db upgrade` first"
            ) from exc
        raise DatabaseUnavailableError(f"cannot read events: {exc}") from exc
    finally:
        await conn.close()
    return events
