"""The SQLite bus turns stored events into deliveries (the fan-out) only as fast as its handlers take them."""

import sqlite3
from pathlib import Path

from event_runtime.bus.base import NewEvent
from event_runtime.bus.sqlite import SQLiteBus
from event_runtime.testing import EventFactory


def new_events(factory: EventFactory, numbers: range) -> list[NewEvent]:
    # a key per event: every delivery is the head of its queue, so each one is claimable once fanned out
    return [
        NewEvent(factory.cloud_event("test.ping", {"n": n}, subject=f"key-{n}"), b"{}", ("first", "second"))
        for n in numbers
    ]


def events_not_fanned_out(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        (count,) = connection.execute("SELECT count(*) FROM events WHERE handlers IS NOT NULL").fetchone()
    return int(count)


async def test_a_claim_fans_out_only_when_the_ready_deliveries_run_short(
    tmp_path: Path, event_factory: EventFactory
) -> None:
    path = tmp_path / "events.db"
    bus = SQLiteBus(str(path))
    await bus.open()
    try:
        await bus.append(new_events(event_factory, range(5)))
        first = await bus.claim(2)  # none ready yet: the 5 events become 10 deliveries
        await bus.append(new_events(event_factory, range(5, 8)))

        second = await bus.claim(4)  # 8 deliveries are still ready: the 3 new events stay as they are
        assert events_not_fanned_out(path) == 3

        rest = await bus.claim(100)  # 4 ready, fewer than asked: the 3 new events are fanned out and claimed too
        assert events_not_fanned_out(path) == 0
    finally:
        await bus.close()
    claimed = [(delivery.position, delivery.handler) for delivery in first + second + rest]
    # in event order, each event once per handler, as when every claim fanned out first
    assert claimed == [(position, handler) for position in range(1, 9) for handler in ("first", "second")]


def test_the_store_sorts_in_memory(tmp_path: Path) -> None:
    # the fan-out's window function and ORDER BY sort in temporary b-trees; in a file they cost ~100 us per claim
    connection = SQLiteBus(str(tmp_path / "events.db"))._connect()
    try:
        (temp_store,) = connection.execute("PRAGMA temp_store").fetchone()
    finally:
        connection.close()
    assert temp_store == 2  # MEMORY
