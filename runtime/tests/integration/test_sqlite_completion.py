"""The SQLite bus completes the deliveries of one turn of the loop together, and keeps each key's queue in order."""

import asyncio
import sqlite3
from pathlib import Path

import pytest

from event_runtime.bus.base import Delivery, NewEvent
from event_runtime.bus.loop_store import LoopStore
from event_runtime.bus.sqlite import SQLiteBus
from event_runtime.testing import EventFactory


def connect_to(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("CREATE TABLE IF NOT EXISTS rows (n INTEGER PRIMARY KEY)")
    return connection


def insert_all(connection: sqlite3.Connection, numbers: list[int]) -> int:
    connection.executemany("INSERT INTO rows (n) VALUES (?)", [(n,) for n in numbers])
    return len(numbers)


async def test_grouped_calls_of_one_turn_run_once_with_every_item_and_each_caller_gets_the_result(
    tmp_path: Path,
) -> None:
    calls: list[list[int]] = []

    def recorded(connection: sqlite3.Connection, numbers: list[int]) -> int:
        calls.append(list(numbers))
        return insert_all(connection, numbers)

    store = LoopStore(lambda: connect_to(tmp_path / "rows.db"))
    store.start()
    try:
        first_turn = await asyncio.gather(*(store.call_grouped(recorded, n) for n in range(4)))
        second_turn = await store.call_grouped(recorded, 9)
    finally:
        await store.stop()
    assert calls == [[0, 1, 2, 3], [9]]
    assert first_turn == [4, 4, 4, 4]
    assert second_turn == 1


async def test_a_failing_group_fails_every_caller_and_the_other_jobs_of_its_turn_still_commit(tmp_path: Path) -> None:
    path = tmp_path / "rows.db"
    store = LoopStore(lambda: connect_to(path))
    store.start()
    try:
        outcomes = await asyncio.gather(
            store.call(insert_all, [100]),
            store.call_grouped(insert_all, 1),
            store.call_grouped(insert_all, 1),  # the primary key is taken twice: the group fails as a whole
            return_exceptions=True,
        )
    finally:
        await store.stop()
    assert outcomes[0] == 1
    assert all(isinstance(outcome, sqlite3.IntegrityError) for outcome in outcomes[1:])
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT n FROM rows").fetchall() == [(100,)]


async def test_a_late_completion_adds_no_second_head_to_its_key(tmp_path: Path, event_factory: EventFactory) -> None:
    path = str(tmp_path / "events.db")
    expires_soon, takes_over = SQLiteBus(path, lease_seconds=0.05), SQLiteBus(path)
    await expires_soon.open()
    await takes_over.open()
    try:
        events = [
            NewEvent(event_factory.cloud_event("test.ping", {"n": n}, subject="one-key"), b"{}", ("worker",))
            for n in range(3)
        ]
        positions = await expires_soon.append(events)
        (held,) = await expires_soon.claim(10)  # the head of the key: the other two wait behind it
        await asyncio.sleep(0.1)  # its lease runs out
        (again,) = await takes_over.claim(10)  # handed out again
        assert again.position == held.position == positions[0]

        await expires_soon.complete(held)  # late: the first event is done, the second one is the head now
        await takes_over.complete(again)  # the same delivery, gone already: the third event keeps waiting
        assert [delivery.position for delivery in await takes_over.claim(10)] == [positions[1]]
    finally:
        await expires_soon.close()
        await takes_over.close()


async def test_only_deliveries_this_bus_handed_out_can_be_completed(tmp_path: Path) -> None:
    bus = SQLiteBus(str(tmp_path / "events.db"))
    await bus.open()
    try:
        with pytest.raises(TypeError, match="only takes back deliveries it handed out"):
            await bus.complete(Delivery(position=1, handler="worker", attempts=0, body=b"{}"))
    finally:
        await bus.close()
