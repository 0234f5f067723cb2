"""Events: the record, the in-process bus, durable storage and delivery to other processes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pokervod_db.database import create_engine, create_sync_engine
from pokervod_db.events import (
    ALL,
    EVENT_WRITER_LOCK_KEY,
    Event,
    EventBus,
    EventType,
    keep_event_ids_after,
    last_event_id,
    listen,
    read_events,
    store_event,
)
from pokervod_db.settings import Settings
from tests.conftest import run_coroutine

# --- the record --------------------------------------------------------------------------------


def test_event_round_trips_through_json() -> None:
    event = Event(
        type=EventType.DB_BACKUP_COMPLETED,
        payload={"file": "b.dump", "size_mb": 2.5, "at": datetime(2026, 1, 2, tzinfo=UTC)},
        source_block="G",
        timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=9))),
        correlation_id=uuid.uuid4(),
        parent_event_id=uuid.uuid4(),
        id=42,
    )
    again = Event.from_dict(json.loads(json.dumps(event.to_dict())))
    assert again == event
    assert again.type is EventType.DB_BACKUP_COMPLETED
    assert again.payload["at"] == "2026-01-02T00:00:00+00:00"  # normalised to JSON on creation
    assert set(event.to_dict()) == {
        "type",
        "payload",
        "timestamp",
        "source_block",
        "correlation_id",
        "id",
        "event_id",
        "parent_event_id",
    }


def test_event_rejects_naive_timestamp_and_keeps_unknown_types() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Event(type="x", timestamp=datetime(2026, 1, 1))
    assert Event(type="nas.scan.completed").type == "nas.scan.completed"
    assert EventType("db.migration.completed") is EventType.DB_MIGRATION_COMPLETED


# --- the bus -----------------------------------------------------------------------------------


async def test_bus_runs_handlers_concurrently_and_keeps_bounded_history() -> None:
    bus = EventBus(history_size=3)
    both_started = asyncio.Barrier(2)
    seen: list[str] = []

    async def first(event: Event) -> None:
        await asyncio.wait_for(both_started.wait(), 2)  # deadlocks unless run concurrently
        seen.append("first")

    def second(event: Event) -> None:
        seen.append("second-sync")

    async def third(event: Event) -> None:
        await asyncio.wait_for(both_started.wait(), 2)
        seen.append("third")

    bus.subscribe("t.one", first)
    bus.subscribe("t.one", second)
    bus.subscribe("t.one", third)
    bus.subscribe(ALL, lambda e: seen.append("any") if e.type == "t.one" else None)
    await bus.emit(Event(type="t.one"))
    assert sorted(seen) == ["any", "first", "second-sync", "third"]
    for n in range(4):
        await bus.emit(Event(type="t.other", payload={"n": n}))
    assert [e.payload["n"] for e in bus.history()] == [1, 2, 3]
    assert bus.history("t.one") == []


async def test_failing_handler_reports_system_error_and_others_still_run() -> None:
    bus = EventBus()
    ran: list[str] = []
    errors: list[Event] = []

    async def broken(event: Event) -> None:
        raise RuntimeError("disk full")

    async def fine(event: Event) -> None:
        ran.append(event.type)

    async def broken_error_handler(event: Event) -> None:
        errors.append(event)
        raise RuntimeError("the error handler fails too")  # must not loop

    bus.subscribe("t.work", broken)
    bus.subscribe("t.work", fine)
    bus.subscribe(EventType.SYSTEM_ERROR, broken_error_handler)
    cid = uuid.uuid4()
    work = Event(type="t.work", source_block="X", correlation_id=cid)
    await bus.emit(work)  # does not raise
    assert ran == ["t.work"]
    assert len(errors) == 1
    error = errors[0]
    assert error.type == EventType.SYSTEM_ERROR
    assert error.payload["error"] == "disk full"
    assert error.payload["event_type"] == "t.work"
    assert error.parent_event_id == work.event_id
    assert error.correlation_id == cid
    assert error.source_block == "X"


async def test_unsubscribe_stops_delivery() -> None:
    bus = EventBus()
    got: list[Event] = []
    stop = bus.subscribe("t", got.append)
    await bus.emit(Event(type="t"))
    stop()
    assert bus.unsubscribe("t", got.append) is False
    await bus.emit(Event(type="t"))
    assert len(got) == 1


# --- storage and delivery ---------------------------------------------------------------------


def _event(n: int, type_: str = "test.event") -> Event:
    return Event(type=type_, payload={"n": n}, source_block="T")


async def _emit(engine: AsyncEngine, event: Event) -> Event:
    async with engine.begin() as conn:
        return await store_event(conn, event)


@asynccontextmanager
async def _listening(
    settings: Settings, *, since_id: int | None = 0, **kwargs: object
) -> AsyncIterator[tuple[asyncio.Queue[Event], asyncio.Task[None]]]:
    """Run `listen` in a task; yields its queue once the listener has read the table once."""
    queue: asyncio.Queue[Event] = asyncio.Queue()
    ready = asyncio.Event()

    async def run() -> None:
        async for event in listen(
            settings,
            since_id=since_id,
            poll_interval=0.5,
            max_backoff=0.5,
            on_connected=lambda _: ready.set(),
            **kwargs,  # type: ignore[arg-type]
        ):
            await queue.put(event)

    task = asyncio.create_task(run())
    try:
        await asyncio.wait_for(ready.wait(), 15)
        yield queue, task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def _take(queue: asyncio.Queue[Event], n: int, wait_s: float = 10.0) -> list[Event]:
    return [await asyncio.wait_for(queue.get(), wait_s) for _ in range(n)]


async def _nothing_more(queue: asyncio.Queue[Event], wait: float = 1.0) -> None:
    with pytest.raises(TimeoutError):
        got = await asyncio.wait_for(queue.get(), wait)
        pytest.fail(f"unexpected event {got}")


async def test_stored_event_is_notified_at_commit_only(
    db_settings: Settings, engine: AsyncEngine
) -> None:
    async with _listening(db_settings, since_id=None) as (queue, _):
        async with engine.connect() as conn:
            tx = await conn.begin()
            stored = await store_event(conn, _event(1))
            assert stored.id is not None
            await _nothing_more(queue, 0.7)  # not committed yet
            await tx.commit()
        (got,) = await _take(queue, 1)
    assert got == stored
    row = await _row(engine, stored.id)
    assert row["type"] == "test.event" and row["txid"] > 0


async def _row(engine: AsyncEngine, event_id: int) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    text("SELECT * FROM pokervod.agent_events WHERE id = :id"), {"id": event_id}
                )
            )
            .mappings()
            .one()
        )
    return dict(row)


async def test_rolled_back_event_is_never_delivered(
    db_settings: Settings, engine: AsyncEngine
) -> None:
    async with _listening(db_settings) as (queue, _):
        async with engine.connect() as conn:
            tx = await conn.begin()
            await store_event(conn, _event(1))
            await tx.rollback()
        kept = await _emit(engine, _event(2))
        (got,) = await _take(queue, 1)
        assert got.id == kept.id
        await _nothing_more(queue, 0.5)


async def test_earlier_id_committed_later_is_delivered_first(
    db_settings: Settings, engine: AsyncEngine
) -> None:
    """Ids are drawn at insert, not at commit: id N+1 may commit before id N. A listener must not
    move past N while N's transaction runs, even when that transaction started later."""
    async with _listening(db_settings) as (queue, _):
        async with engine.connect() as older, engine.connect() as newer:
            older_tx = await older.begin()
            await older.execute(text("SELECT pg_current_xact_id()"))  # the older transaction id
            newer_tx = await newer.begin()
            first = await store_event(newer, _event(1))
            second = await store_event(older, _event(2))
            assert first.id is not None and second.id is not None and first.id < second.id
            await older_tx.commit()
            await _nothing_more(queue, 1.0)  # id N+1 is committed but N is still in flight
            await newer_tx.commit()
        got = await _take(queue, 2)
    assert [e.id for e in got] == [first.id, second.id]


async def test_listener_rereads_promptly_when_the_writer_it_waits_on_ends_without_notify(
    db_settings: Settings, engine: AsyncEngine
) -> None:
    """A writer's NOTIFY can be read while that writer still holds the lock (it is queued
    before the lock is released), and a writer that rolls back sends none: the listener must
    then find out by itself, within milliseconds, that the writer it waits on has ended."""
    async with _listening(db_settings, since_id=None) as (queue, _):
        async with engine.connect() as holder:
            holder_tx = await holder.begin()  # an event writer that will send no notification
            await store_event(holder, _event(0))  # a lower id, never committed
            stored = await _emit(engine, _event(1))  # its NOTIFY wakes the listener now
            await _nothing_more(queue, 0.05)  # held back: the lower id may still commit
            await holder_tx.rollback()
            ended = time.monotonic()
        (got,) = await _take(queue, 1)
        latency = time.monotonic() - ended
    assert got.id == stored.id
    # The safety-net poll alone would take 0.15-0.2 s here (fast poll 0.2 s after the wake).
    assert latency < 0.1, f"delivered {latency * 1000:.0f} ms after the last writer ended"


async def test_committed_event_is_not_held_back_by_a_writer_of_a_higher_id(
    db_settings: Settings, engine: AsyncEngine
) -> None:
    """Only writers that may hold a lower id can delay an event: with 32 writers, waiting for
    every running writer made delivery take as long as the slowest transaction."""
    async with _listening(db_settings, since_id=None) as (queue, _):
        async with engine.connect() as slow:
            slow_tx = await slow.begin()
            await slow.execute(
                text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": EVENT_WRITER_LOCK_KEY}
            )
            first = await _emit(engine, _event(1))
            later = await store_event(slow, _event(2))  # a higher id, still uncommitted
            assert first.id is not None and later.id is not None and later.id > first.id
            (got,) = await _take(queue, 1, wait_s=5)  # while the slow writer still runs
            assert got.id == first.id
            await slow_tx.commit()
        (got_later,) = await _take(queue, 1)
        await _nothing_more(queue, 0.5)
    assert got_later.id == later.id


async def test_stopped_listener_catches_up_in_order_without_duplicates(
    db_settings: Settings, engine: AsyncEngine
) -> None:
    async with _listening(db_settings) as (queue, _):
        for n in range(3):
            await _emit(engine, _event(n))
        received = await _take(queue, 3)
    last_id = received[-1].id
    assert last_id is not None

    # While nobody listens: three more, two of them committing out of id order.
    async with engine.connect() as a, engine.connect() as b:
        tx_a = await a.begin()
        missed_a = await store_event(a, _event(3))
        tx_b = await b.begin()
        missed_b = await store_event(b, _event(4))
        await tx_b.commit()
        await tx_a.commit()
    missed_c = await _emit(engine, _event(5))

    async with _listening(db_settings, since_id=last_id) as (queue, _):
        caught_up = await _take(queue, 3)
        await _nothing_more(queue, 0.7)
    assert [e.id for e in caught_up] == [missed_a.id, missed_b.id, missed_c.id]
    assert [e.payload["n"] for e in caught_up] == [3, 4, 5]
    assert await read_events(db_settings, since_id=last_id) == caught_up


async def test_listener_starting_now_gets_events_in_flight_at_start(
    db_settings: Settings, engine: AsyncEngine
) -> None:
    await _emit(engine, _event(0))  # the past: not delivered
    async with engine.connect() as conn:
        tx = await conn.begin()
        in_flight = await store_event(conn, _event(1))
        async with _listening(db_settings, since_id=None) as (queue, _):
            await tx.commit()
            later = await _emit(engine, _event(2))
            got = await _take(queue, 2)
            await _nothing_more(queue, 0.5)
    assert [e.id for e in got] == [in_flight.id, later.id]


async def test_listener_filters_types(db_settings: Settings, engine: AsyncEngine) -> None:
    async with _listening(db_settings, types=["test.wanted"]) as (queue, _):
        await _emit(engine, _event(1, "test.unwanted"))
        wanted = await _emit(engine, _event(2, "test.wanted"))
        (got,) = await _take(queue, 1)
        await _nothing_more(queue, 0.5)
    assert got.id == wanted.id


async def test_listener_reconnects_after_its_connection_is_killed_and_resumes_after_the_last(
    db_settings: Settings, engine: AsyncEngine
) -> None:
    async with _listening(db_settings, application_name="pokervod-db test-listener") as (
        queue,
        task,
    ):
        before = await _emit(engine, _event(0))
        (got,) = await _take(queue, 1)  # the killed connection was the one delivering
        assert got.id == before.id
        async with engine.begin() as conn:
            killed = (
                await conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = 'pokervod-db test-listener'"
                    )
                )
            ).scalar_one()
        assert killed == 1
        while_down = await _emit(engine, _event(1))  # committed before the listener is back
        after = await _emit(engine, _event(2))
        delivered = await _take(queue, 2, wait_s=15)
        assert [e.id for e in delivered] == [while_down.id, after.id]  # none lost, none twice
        await _nothing_more(queue, 0.5)
        assert not task.done()


async def test_listen_fails_in_one_line_when_the_server_is_unreachable() -> None:
    settings = Settings(_env_file=None, DATABASE_URL="postgresql://u@127.0.0.1:1/x")
    from pokervod_db.errors import DatabaseUnavailableError

    with pytest.raises(DatabaseUnavailableError, match="cannot listen for events"):
        async for _ in listen(settings):
            pass


async def test_listen_on_unmigrated_database_says_what_to_do(empty_db_settings: Settings) -> None:
    from pokervod_db.errors import MigrationError

    with pytest.raises(MigrationError, match="pokervod-db upgrade"):
        async for _ in listen(empty_db_settings):
            pass


async def test_another_process_receives_the_event(
    db_settings: Settings, engine: AsyncEngine, cli_env: dict[str, str]
) -> None:
    import sys

    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "pokervod-db"),
        "events",
        "--follow",
        env=cli_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None
        ready = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert b"following events" in ready, ready
        sent = await _emit(engine, Event(type="test.cross", payload={"k": "v"}, source_block="T"))
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
    finally:
        proc.terminate()
        await proc.wait()
    got = json.loads(line)
    assert got["id"] == sent.id
    assert got["type"] == "test.cross"
    assert got["payload"] == {"k": "v"}
    assert got["source_block"] == "T"
    assert got["event_id"] == str(sent.event_id)
    assert {"timestamp", "correlation_id", "parent_event_id"} <= set(got)


async def test_event_ids_keep_increasing_across_a_restore(
    db_settings: Settings, engine: AsyncEngine
) -> None:
    for n in range(3):
        await _emit(engine, _event(n))
    sync = create_sync_engine(db_settings)
    try:
        with sync.connect() as conn:
            before = last_event_id(conn)
            # What a restore of an older backup does to the table and its identity sequence.
            conn.execute(text("TRUNCATE pokervod.agent_events RESTART IDENTITY"))
            conn.commit()
            assert last_event_id(conn) == 0
            assert keep_event_ids_after(conn, before) == before
            conn.commit()
    finally:
        sync.dispose()
    after = await _emit(engine, _event(9))
    assert after.id == before + 1
    assert [e.id for e in await read_events(db_settings, since_id=before)] == [after.id]


def test_cli_events_prints_stored_events_after_since_and_exits(
    db_settings: Settings, cli_env: dict[str, str]
) -> None:
    import subprocess
    import sys

    async def emit_three() -> list[Event]:
        eng = create_engine(db_settings)
        try:
            return [
                await _emit(eng, _event(1, "test.a")),
                await _emit(eng, _event(2, "test.b")),
                await _emit(eng, _event(3, "test.a")),
            ]
        finally:
            await eng.dispose()

    first, _, third = run_coroutine(emit_three())
    cli = str(Path(sys.executable).parent / "pokervod-db")
    run = subprocess.run(
        [cli, "events", "--since", str(first.id), "--type", "test.a"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(e["id"], e["type"], e["payload"]) for e in lines] == [(third.id, "test.a", {"n": 3})]
    everything = subprocess.run(
        [cli, "events"], env=cli_env, capture_output=True, text=True, timeout=60
    )
    assert len(everything.stdout.splitlines()) == 3


async def test_listener_survives_agent_events_being_dropped_and_recreated(
    db_settings: Settings, engine: AsyncEngine
) -> None:
    from pokervod_db.agent import DatabaseAgent

    async with _listening(db_settings) as (queue, task):
        sent = [await _emit(engine, _event(n)) for n in range(3)]
        assert [e.id for e in await _take(queue, 3)] == [e.id for e in sent]
        async with DatabaseAgent(db_settings) as agent:
            assert (
                await agent.run_migration("downgrade", "002_add_indexes")
            ).success  # drops agent_events
            await asyncio.sleep(1.0)  # the listener meets the missing table and waits
            assert (await agent.run_migration("upgrade")).success  # ids start again at 1
        (got,) = await _take(queue, 1, wait_s=20)
        assert not task.done()
    assert got.type == EventType.DB_MIGRATION_COMPLETED and got.id == 1
    assert got.payload["direction"] == "upgrade"
