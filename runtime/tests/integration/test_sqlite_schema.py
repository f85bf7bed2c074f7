"""The SQLite store's schema version: a new file gets the current one, an older store is brought up to it on open,
and a store of a newer runtime is refused."""

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import msgspec
import pytest

from event_runtime.bus.sqlite import MIGRATIONS, SCHEMA_VERSION, DeliveryState, SQLiteBus, StoreVersionError
from event_runtime.registry import HandlerRegistry
from event_runtime.testing import BusHarness, RecordingHandler

from ..sample_service import registry as sample_registry

# Written by the release before the schema version (commit 48f70ce): tests/data/README.md says how and what it holds.
STORE_OF_48F70CE = Path(__file__).parents[1] / "data" / "store-0.0-48f70ce.db"
DEAD_LETTERED = "evt-01"  # reserve_stock dead-lettered it there; send_order_confirmation handled it
POSTED_TWICE = "evt-05"  # the second copy was refused as a duplicate
# the file's events were received when it was made: a dedup window of a century keeps them in it whenever this runs
KEEP_SECONDS = 100 * 365 * 24 * 3600.0

# the layout of the releases before the fan-out step (commits 1c48707 to 3222c2a), the oldest with today's states
LAYOUT_BEFORE_FAN_OUT = """
CREATE TABLE events (seq INTEGER PRIMARY KEY, source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
    body BLOB NOT NULL, received_at REAL NOT NULL, UNIQUE (source, id));
CREATE INDEX events_by_received_at ON events (received_at);
CREATE TABLE deliveries (event_seq INTEGER NOT NULL, handler TEXT NOT NULL, ordering_key TEXT, state INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, due_at REAL NOT NULL, lease_owner TEXT, lease_until REAL, last_error TEXT,
    finished_at REAL, PRIMARY KEY (event_seq, handler)) WITHOUT ROWID;
CREATE INDEX deliveries_by_state ON deliveries (state, event_seq);
CREATE INDEX deliveries_by_key ON deliveries (handler, ordering_key, state, event_seq);
"""


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    """A copy of the store the release before the schema version wrote, to open and change."""
    copy = tmp_path / "events.db"
    shutil.copyfile(STORE_OF_48F70CE, copy)
    return copy


def version_of(path: Path) -> int:
    with closing(sqlite3.connect(path)) as connection:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
    return int(version)


def layout_of(path: Path) -> dict[str, object]:
    """Each table's columns; each index's table, columns, uniqueness, origin and definition."""
    layout: dict[str, object] = {}
    with closing(sqlite3.connect(path)) as connection:
        tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        definitions = dict(connection.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'").fetchall())
        for table in tables:
            layout[table] = connection.execute(f"PRAGMA table_xinfo({table})").fetchall()
            for _, index, unique, origin, partial in connection.execute(f"PRAGMA index_list({table})").fetchall():
                columns = connection.execute(f"PRAGMA index_xinfo({index})").fetchall()
                definition = " ".join((definitions.get(index) or "").split())
                layout[index] = (table, columns, unique, origin, partial, definition)
    return layout


def stored_events(path: Path) -> list[tuple[str, str, str | None, bytes]]:
    """(id, type, ordering key, body) of every stored event, in the order they were stored."""
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT id, type, ordering_key, body FROM events ORDER BY seq").fetchall()


def deliveries_by_state(path: Path) -> dict[int, int]:
    with closing(sqlite3.connect(path)) as connection:
        return dict(connection.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall())


def not_fanned_out(path: Path) -> int:
    with closing(sqlite3.connect(path)) as connection:
        (count,) = connection.execute("SELECT count(*) FROM events WHERE handlers IS NOT NULL").fetchone()
    return int(count)


async def opened_and_closed(path: Path) -> None:
    bus = SQLiteBus(str(path))
    await bus.open()
    await bus.close()


def recording_copy(registry: HandlerRegistry) -> tuple[HandlerRegistry, dict[str, RecordingHandler]]:
    """The same subscriptions (event types, handler names, schemas), each handled by a recorder of its name."""
    copy = HandlerRegistry()
    recorders: dict[str, RecordingHandler] = {}
    for subscription in registry.subscriptions():
        recorder = recorders[subscription.handler_name] = RecordingHandler(subscription.handler_name)
        copy.on(subscription.event_type, subscription.schema, name=subscription.handler_name)(recorder)
    return copy, recorders


def test_the_migrations_are_numbered_one_after_the_other_up_to_the_schema_version() -> None:
    assert [version for version, _ in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


async def test_a_new_store_gets_the_current_schema_version_and_opens_again(tmp_path: Path) -> None:
    path = tmp_path / "var" / "events.db"
    await opened_and_closed(path)
    assert version_of(path) == SCHEMA_VERSION
    await opened_and_closed(path)
    assert version_of(path) == SCHEMA_VERSION


async def test_a_store_of_the_release_before_the_version_gets_the_current_version_and_layout(
    old_store: Path, tmp_path: Path
) -> None:
    assert version_of(old_store) == 0
    new_store = tmp_path / "new.db"
    await opened_and_closed(new_store)

    await opened_and_closed(old_store)
    assert version_of(old_store) == SCHEMA_VERSION
    assert layout_of(old_store) == layout_of(new_store)


async def test_an_unversioned_store_from_before_the_fan_out_step_gets_the_layout_of_a_new_store(
    tmp_path: Path,
) -> None:
    old_store, new_store = tmp_path / "old.db", tmp_path / "new.db"
    with closing(sqlite3.connect(old_store)) as connection:
        connection.executescript(LAYOUT_BEFORE_FAN_OUT)
    await opened_and_closed(new_store)
    assert layout_of(old_store) != layout_of(new_store)

    await opened_and_closed(old_store)
    assert version_of(old_store) == SCHEMA_VERSION
    assert layout_of(old_store) == layout_of(new_store)


async def test_every_event_of_a_store_of_the_release_before_the_version_reaches_each_handler_once_in_key_order(
    old_store: Path,
) -> None:
    events = stored_events(old_store)
    # the file holds what its README says: events made into deliveries and not yet, a dead letter, the duplicate once
    assert [event_id for event_id, *_ in events].count(POSTED_TWICE) == 1
    assert not_fanned_out(old_store) > 0
    assert {DeliveryState.WAITING, DeliveryState.READY, DeliveryState.DEAD} <= set(deliveries_by_state(old_store))
    registry, recorders = recording_copy(sample_registry)

    async with BusHarness(registry, bus_url=f"sqlite:///{old_store}", dedup_retention_seconds=KEEP_SECONDS) as bus:
        await bus.drain()

    for name, recorder in recorders.items():
        # the old release dead-lettered or handled DEAD_LETTERED already: not again
        owed = [
            (event_id, key)
            for event_id, event_type, key, _ in events
            if name in registry.handler_names_for(event_type) and event_id != DEAD_LETTERED
        ]
        assert owed, name
        assert sorted(recorder.event_ids) == sorted(event_id for event_id, _ in owed), name
        for key in {key for _, key in owed if key is not None}:
            assert recorder.ids_for_subject(key) == [event_id for event_id, of in owed if of == key], (name, key)


async def test_a_store_of_the_release_before_the_version_keeps_its_dead_letter_and_its_events_stay_duplicates(
    old_store: Path,
) -> None:
    events = [msgspec.json.decode(body) for *_, body in stored_events(old_store)]
    async with BusHarness(
        sample_registry, bus_url=f"sqlite:///{old_store}", dedup_retention_seconds=KEEP_SECONDS
    ) as bus:
        await bus.drain()
        (letter,) = await bus.dead_letters()
        assert (letter.event_id, letter.handler, letter.attempts) == (DEAD_LETTERED, "reserve_stock", 1)
        assert letter.last_error is not None and "currency JPY is not supported" in letter.last_error

        again = await bus.publish(*events)
        assert (again.accepted, again.duplicates) == (0, len(events))
        (posted_twice,) = (event for event in events if event["id"] == POSTED_TWICE)
        assert (await bus.publish(posted_twice)).duplicates == 1


async def test_a_store_of_a_newer_runtime_is_refused_naming_the_file_and_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    await opened_and_closed(path)
    newer = SCHEMA_VERSION + 1
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(f"PRAGMA user_version = {newer}")
    layout = layout_of(path)

    with pytest.raises(StoreVersionError) as refused:
        await SQLiteBus(str(path)).open()
    message = str(refused.value)
    assert str(path) in message
    assert f"schema version {newer}" in message
    assert f"this runtime's {SCHEMA_VERSION}" in message
    assert version_of(path) == newer  # left as it was
    assert layout_of(path) == layout
