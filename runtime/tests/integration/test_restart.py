"""The SQLite bus across restarts: whatever was stored is handled, whether the process stopped or died."""

import asyncio
import sqlite3
from pathlib import Path

import msgspec

from event_runtime.registry import HandlerContext, HandlerRegistry
from event_runtime.testing import BusHarness, EventFactory, RecordingHandler

PING = "test.ping"


class Ping(msgspec.Struct):
    n: int


def recording_registry(handler: object) -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.on(PING, Ping, name="worker")(handler)  # type: ignore[arg-type]
    return registry


async def test_a_graceful_stop_mid_work_hands_unfinished_events_to_the_next_start(tmp_path: Path) -> None:
    bus_url = f"sqlite:///{tmp_path / 'events.db'}"
    events = EventFactory().many(40, PING, lambda n: {"n": n}, subject_for=lambda n: f"k{n % 5}")
    finished: list[str] = []
    release = asyncio.Event()

    async def stalls_after_ten(data: Ping, context: HandlerContext) -> None:
        if len(finished) >= 10:
            await release.wait()  # never set: these calls are still running at shutdown
        finished.append(context.event.id)

    first = BusHarness(recording_registry(stalls_after_ten), bus_url=bus_url, shutdown_timeout_seconds=0.05)
    async with first:
        await first.publish(*events)
        first.service.workers.start()
        for _ in range(200):
            if len(finished) >= 10:
                break
            await asyncio.sleep(0.01)
    assert len(finished) == 10

    second_handler = RecordingHandler("worker")
    async with BusHarness(recording_registry(second_handler), bus_url=bus_url) as second:
        await second.drain()
    assert set(finished) | set(second_handler.event_ids) == {event["id"] for event in events}
    assert not set(finished) & set(second_handler.event_ids)


async def test_claims_of_a_process_that_died_are_handed_out_again_after_their_lease(tmp_path: Path) -> None:
    bus_url = f"sqlite:///{tmp_path / 'events.db'}"
    events = EventFactory().many(12, PING, lambda n: {"n": n})
    crashed = BusHarness(recording_registry(RecordingHandler()), bus_url=bus_url, lease_seconds=0.2)
    await crashed.service.start(run_workers=False)
    await crashed.publish(*events)
    claimed = await crashed.service.bus.claim(5)
    assert len(claimed) == 5
    await crashed.service.bus._store.stop()  # type: ignore[attr-defined]  # dies without releasing its claims

    survivor_handler = RecordingHandler("worker")
    async with BusHarness(recording_registry(survivor_handler), bus_url=bus_url, lease_seconds=0.2) as survivor:
        await survivor.drain(timeout=5)
    assert sorted(survivor_handler.event_ids) == sorted(event["id"] for event in events)


# the schema of releases before deliveries were made in bulk by the claim (the fan-out step)
STORE_BEFORE_FAN_OUT = """
CREATE TABLE events (seq INTEGER PRIMARY KEY, source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
    body BLOB NOT NULL, received_at REAL NOT NULL, UNIQUE (source, id));
CREATE INDEX events_by_received_at ON events (received_at);
CREATE TABLE deliveries (event_seq INTEGER NOT NULL, handler TEXT NOT NULL, ordering_key TEXT, state INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, due_at REAL NOT NULL, lease_owner TEXT, lease_until REAL, last_error TEXT,
    finished_at REAL, PRIMARY KEY (event_seq, handler)) WITHOUT ROWID;
"""


async def test_a_store_written_before_the_fan_out_step_is_upgraded_and_its_deliveries_handled(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    old_events = EventFactory().many(3, PING, lambda n: {"n": n}, subject_for=lambda _: "one-key")
    with sqlite3.connect(path) as connection:
        connection.executescript(STORE_BEFORE_FAN_OUT)
        for seq, event in enumerate(old_events, start=1):
            body = msgspec.json.encode(event)
            connection.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, 0)", (seq, event["source"], event["id"], PING, body)
            )
            # the old release made the head READY (4) and the rest of the key WAITING (0)
            connection.execute(
                "INSERT INTO deliveries (event_seq, handler, ordering_key, state, due_at) "
                "VALUES (?, 'worker', ?, ?, 0)",
                (seq, "one-key", 4 if seq == 1 else 0),
            )
    new_events = EventFactory().many(2, PING, lambda n: {"n": 10 + n}, subject_for=lambda _: "one-key")

    handler = RecordingHandler("worker")
    async with BusHarness(recording_registry(handler), bus_url=f"sqlite:///{path}") as bus:
        assert (await bus.publish(old_events[0])).duplicates == 1  # the old events still count for dedup
        assert (await bus.publish(*new_events)).accepted == 2
        await bus.drain()
    assert handler.event_ids == [event["id"] for event in old_events + new_events]
    with sqlite3.connect(path) as connection:
        indexes = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "events_by_received_at" not in indexes  # nothing reads it any more, and every insert paid for it


async def test_a_store_with_the_earlier_key_index_loses_it_and_keeps_each_key_in_order(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    events = EventFactory().many(4, PING, lambda n: {"n": n}, subject_for=lambda n: f"key-{n % 2}")
    handler = RecordingHandler("worker")
    async with BusHarness(recording_registry(handler), bus_url=f"sqlite:///{path}") as bus:
        await bus.publish(*events)
        await bus.service.bus.claim(1)  # makes the deliveries (released again on close), so the old index holds them
    with sqlite3.connect(path) as connection:  # the index earlier releases made, which holds the state
        connection.execute("DROP INDEX deliveries_by_key_seq")
        connection.execute("CREATE INDEX deliveries_by_key ON deliveries (handler, ordering_key, state, event_seq)")
        connection.execute("PRAGMA user_version = 0")  # those releases kept no schema version

    async with BusHarness(recording_registry(handler), bus_url=f"sqlite:///{path}") as bus:
        await bus.drain()
    assert handler.event_ids == [event["id"] for event in events]
    with sqlite3.connect(path) as connection:
        indexes = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "deliveries_by_key" not in indexes  # every claim and promotion moved its entries
    assert "deliveries_by_key_seq" in indexes


async def test_stored_events_count_as_pending_before_their_deliveries_are_made(tmp_path: Path) -> None:
    registry = HandlerRegistry()
    first, second = RecordingHandler("first"), RecordingHandler("second")
    registry.on(PING, Ping, name="first")(first)
    registry.on(PING, Ping, name="second")(second)
    events = EventFactory().many(3, PING, lambda n: {"n": n})
    async with BusHarness(registry, bus_url=f"sqlite:///{tmp_path / 'events.db'}") as bus:
        await bus.publish(*events)
        assert await bus.service.bus.pending_count() == 6  # three events, two handlers each, none claimed yet
        await bus.service.workers.run_once()
        assert await bus.service.bus.pending_count() < 6
        await bus.drain()
        assert await bus.service.bus.pending_count() == 0
    assert len(first.event_ids) == len(second.event_ids) == 3
