"""The SQLite store's dedup purge: it finds old events by bisecting over seq, with no index on their age."""

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from event_runtime.bus.sqlite import SQLiteBus, _purge

# each stored event: (seconds since the one before, purged already, still owed to a handler)
stored_events = st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.booleans()), max_size=40)


def store_with(path: Path, events: list[tuple[int, bool, bool]]) -> sqlite3.Connection:
    connection = SQLiteBus(str(path))._connect()
    received_at = 0.0
    for seq, (gap, purged, owed) in enumerate(events, start=1):
        received_at += gap
        if purged:  # a gap in seq, as an earlier purge leaves
            continue
        connection.execute(
            "INSERT INTO events (seq, source, id, type, body, received_at) VALUES (?, '/s', ?, 't', x'7b7d', ?)",
            (seq, f"e-{seq}", received_at),
        )
        if owed:
            connection.execute(
                "INSERT INTO deliveries (event_seq, handler, state, due_at) VALUES (?, 'h', 0, 0)", (seq,)
            )
    return connection


@settings(max_examples=150, deadline=None)
@given(events=stored_events, before=st.integers(0, 60))
def test_the_purge_forgets_exactly_the_done_events_older_than_the_window(
    tmp_path_factory: pytest.TempPathFactory, events: list[tuple[int, bool, bool]], before: int
) -> None:
    connection = store_with(tmp_path_factory.mktemp("purge") / "events.db", events)
    rows = connection.execute(
        "SELECT seq, received_at, EXISTS (SELECT 1 FROM deliveries WHERE event_seq = seq) FROM events"
    ).fetchall()
    expected = sorted(seq for seq, received_at, owed in rows if received_at >= before or owed)

    _purge(connection, float(before))

    assert [seq for (seq,) in connection.execute("SELECT seq FROM events ORDER BY seq")] == expected
    connection.close()


def test_the_purge_leaves_events_not_yet_turned_into_deliveries(tmp_path: Path) -> None:
    connection = store_with(tmp_path / "events.db", [(0, False, False), (0, False, False)])
    connection.execute("UPDATE events SET handlers = '[\"h\"]' WHERE seq = 2")

    _purge(connection, 10.0)

    assert [seq for (seq,) in connection.execute("SELECT seq FROM events")] == [2]
