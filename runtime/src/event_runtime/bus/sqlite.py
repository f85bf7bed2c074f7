"""The embedded bus: one SQLite file in WAL mode (or an in-memory database for tests), no server.

Ingest writes only the event row (with its ordering key and handler names); a claim that finds too few ready
deliveries turns stored events into their deliveries with one set-based statement (FAN_OUT). Per-row work on the
ingest path is what limited throughput (docs/performance.md).

Several processes on one host may share the file: deliveries are claimed with a lease, and a claim that is not
completed before its lease ends (the process died) is handed out again. A dead process's claims need not wait for
their lease: each live owner holds an flock on a file named after it (owner_locks.py), and a process that can take
that lock knows the owner is gone and releases its claims at once (on open, and every few seconds after).

Store failures reach callers as StoreUnavailable (disk full, read-only, I/O error), or StoreGone once the file was
deleted or replaced under the process: that is checked every FILE_CHECK_SECONDS by comparing the path's inode with
the one opened, and from then on intake and readiness fail (a new empty file would have forgotten every id).
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TypeVar

from ..__about__ import __version__
from ..logs import get_logger
from ..settings import Settings
from .base import DeadLetter, Delivery, NewEvent, StoreGone, StoreUnavailable, WorkSignal
from .loop_store import LoopStore
from .owner_locks import OwnerLocks

# The SQL here is formatted only with this module's constants (the delivery states below) and placeholders, never
# with a value from outside, and at import, not per call.
# ruff: noqa: S608

ResultT = TypeVar("ResultT")


class DeliveryState(IntEnum):
    """A delivery's state, as stored: the numbers are in every store file, so they never change."""

    WAITING = 0  # behind an earlier open delivery of the same handler and ordering key
    CLAIMED = 1  # by a process, under a lease
    DEAD = 3  # dead-lettered (2 was never used)
    READY = 4  # the head of its queue, claimable once due


# Only heads are READY, so a claim reads heads in event order and never scans the backlog behind them. A queue's
# head is READY or CLAIMED; its open deliveries are all but the DEAD ones.
HEAD_STATES = f"({DeliveryState.CLAIMED}, {DeliveryState.READY})"
OPEN_STATES = f"({DeliveryState.WAITING}, {DeliveryState.CLAIMED}, {DeliveryState.READY})"

log = get_logger(__name__)
PURGE_EVERY_SECONDS = 60.0
# how often the path is compared with the file opened (a stat), and dead owners' claims are looked for
FILE_CHECK_SECONDS = 0.5
OWNER_CHECK_SECONDS = 2.0
# events turned into deliveries per claim: bounds how long one claim holds the event loop
FAN_OUT_LIMIT = 500

EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    body BLOB NOT NULL,
    received_at REAL NOT NULL,
    ordering_key TEXT,
    handlers TEXT,
    UNIQUE (source, id)
)"""
DELIVERIES_TABLE = """
CREATE TABLE IF NOT EXISTS deliveries (
    event_seq INTEGER NOT NULL,
    handler TEXT NOT NULL,
    ordering_key TEXT,
    state INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL,
    last_error TEXT,
    finished_at REAL,
    PRIMARY KEY (event_seq, handler)
) WITHOUT ROWID"""
STATE_INDEX = "CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries (state, event_seq)"

# The key index holds no state: a claim (READY to CLAIMED) and a promotion (WAITING to READY) then leave it as it is,
# where an index with the state moved each entry twice per delivery (docs/performance.md, run 10). Its readers
# filter the state per row. Stores from earlier releases have STATEFUL_KEY_INDEX instead (see _upgrade_unversioned).
KEY_INDEX = "CREATE INDEX IF NOT EXISTS deliveries_by_key_seq ON deliveries (handler, ordering_key, event_seq)"
STATEFUL_KEY_INDEX = "deliveries_by_key"

# events whose deliveries are not made yet (handlers is cleared by the fan-out): a small index, as the fan-out
# keeps up with ingest
FAN_OUT_INDEX = "CREATE INDEX IF NOT EXISTS events_to_fan_out ON events (seq) WHERE handlers IS NOT NULL"

# events columns that stores written before the fan-out step lack; their events have deliveries already, so
# handlers stays NULL for them. The fan-out index needs the handlers column, hence it is made after this.
FAN_OUT_COLUMNS = ("ordering_key", "handlers")

# the layout of a new store, at SCHEMA_VERSION; older stores get there by the steps of MIGRATIONS (end of the module)
SCHEMA = (EVENTS_TABLE, DELIVERIES_TABLE, STATE_INDEX, KEY_INDEX, FAN_OUT_INDEX)

# Stored events up to seq ?1 become one delivery per handler, in one statement. SQLite computes the whole SELECT
# before inserting, so the EXISTS sees only deliveries from earlier fan-outs: within this one, only the first
# event of each (handler, key) may be a head, and only when that queue has no open delivery already.
FAN_OUT = f"""
INSERT INTO deliveries (event_seq, handler, ordering_key, state, due_at)
SELECT seq, handler, ordering_key,
       CASE WHEN ordering_key IS NULL THEN {DeliveryState.READY}
            WHEN first_of_key = 1 AND NOT EXISTS (
                SELECT 1 FROM deliveries AS d
                WHERE d.handler = fanned.handler AND d.ordering_key = fanned.ordering_key AND d.state IN {OPEN_STATES})
            THEN {DeliveryState.READY}
            ELSE {DeliveryState.WAITING} END,
       received_at
FROM (
    SELECT e.seq, h.value AS handler, e.ordering_key, e.received_at,
           row_number() OVER (PARTITION BY h.value, e.ordering_key ORDER BY e.seq) AS first_of_key
    FROM events AS e, json_each(e.handlers) AS h
    WHERE e.handlers IS NOT NULL AND e.seq <= ?1
) AS fanned
ORDER BY seq
"""


CLAIMABLE = f"""
SELECT d.event_seq, d.handler, d.attempts, e.body, d.ordering_key
FROM deliveries AS d JOIN events AS e ON e.seq = d.event_seq
WHERE d.state = {DeliveryState.READY} AND d.due_at <= ?1
ORDER BY d.event_seq
LIMIT ?2
"""


# After a delivery left its (handler, key) queue (completed or dead-lettered), the next one becomes the head, unless
# the queue has a head already. That check makes a completion safe without knowing whether the delivery was still
# the head: a late completion (its lease ran out, and another process claimed it again) must not add a second one.
PROMOTE_NEXT = f"""
UPDATE deliveries SET state = {DeliveryState.READY}
WHERE (event_seq, handler) = (
    SELECT event_seq, handler FROM deliveries
    WHERE handler = ?1 AND ordering_key = ?2 AND state = {DeliveryState.WAITING} ORDER BY event_seq LIMIT 1)
AND NOT EXISTS (SELECT 1 FROM deliveries WHERE handler = ?1 AND ordering_key = ?2 AND state IN {HEAD_STATES})
"""

# after a replay, or on a store written by an older release: every queue without a head gets its first one
REPAIR_HEADS = f"""
UPDATE deliveries SET state = {DeliveryState.READY}
WHERE state = {DeliveryState.WAITING} AND (
    ordering_key IS NULL OR (
        NOT EXISTS (SELECT 1 FROM deliveries AS p WHERE p.handler = deliveries.handler
                    AND p.ordering_key = deliveries.ordering_key AND p.state IN {HEAD_STATES})
        AND NOT EXISTS (SELECT 1 FROM deliveries AS q WHERE q.handler = deliveries.handler
                        AND q.ordering_key = deliveries.ordering_key AND q.state = {DeliveryState.WAITING}
                        AND q.event_seq < deliveries.event_seq)))
"""

# a lease that ran out belongs to a process that died or hung: its deliveries are heads again
EXPIRE_LEASES = (
    f"UPDATE deliveries SET state = {DeliveryState.READY}, lease_owner = NULL, lease_until = NULL "
    f"WHERE state = {DeliveryState.CLAIMED} AND lease_until < ?"
)
CLAIM = (
    f"UPDATE deliveries SET state = {DeliveryState.CLAIMED}, lease_owner = ?, lease_until = ? "
    "WHERE event_seq = ? AND handler = ?"
)
# stays the head of its queue, so later events of its key wait for it
RETRY = (
    f"UPDATE deliveries SET state = {DeliveryState.READY}, attempts = ?, due_at = ?, last_error = ?, "
    "lease_owner = NULL, lease_until = NULL WHERE event_seq = ? AND handler = ?"
)
DEAD_LETTER = (
    f"UPDATE deliveries SET state = {DeliveryState.DEAD}, attempts = ?, last_error = ?, finished_at = ?, "
    f"lease_owner = NULL, lease_until = NULL WHERE event_seq = ? AND handler = ? AND state IN {HEAD_STATES} "
    "RETURNING ordering_key"
)
DEAD_LETTERS = (
    "SELECT d.event_seq, e.id, e.source, e.type, d.handler, d.attempts, d.last_error, d.finished_at "
    f"FROM deliveries AS d JOIN events AS e ON e.seq = d.event_seq WHERE d.state = {DeliveryState.DEAD} "
    "ORDER BY d.event_seq LIMIT ?"
)
# REPAIR_HEADS then makes the heads among them READY
REPLAY_ALL = (
    f"UPDATE deliveries SET state = {DeliveryState.WAITING}, attempts = 0, due_at = ? "
    f"WHERE state = {DeliveryState.DEAD}"
)
RELEASE = (
    f"UPDATE deliveries SET state = {DeliveryState.READY}, lease_owner = NULL, lease_until = NULL "
    f"WHERE state = {DeliveryState.CLAIMED} AND lease_owner = ?"
)
OPEN_DELIVERIES = f"SELECT count(*) FROM deliveries WHERE state IN {OPEN_STATES}"


@dataclass(slots=True)
class SQLiteDelivery(Delivery):
    """A delivery with its ordering key, which its completion needs to move the key's queue on."""

    ordering_key: str | None = None


class SQLiteBus:
    """EventBus on SQLite. `memory://` gives a private in-memory database with the same SQL."""

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "normal",
        lease_seconds: float = 60.0,
        dedup_retention_seconds: float = 7 * 24 * 3600,
    ) -> None:
        self.path = path
        self._synchronous = synchronous.upper()
        self._lease_seconds = lease_seconds
        self._retention = dedup_retention_seconds
        self._owner = uuid.uuid4().hex
        # the checkpoint thread gets its own connection: it copies the WAL into the database file and fsyncs it. It
        # opens the file the loop's connection made and never makes one: a thread that starts late, after the file
        # was deleted, would otherwise create an empty store at the path (and hide the deletion).
        self._store = LoopStore(
            self._connect, None if path == ":memory:" else functools.partial(self._open, create=False)
        )
        self._work = WorkSignal()
        self._last_purge = 0.0
        self._file_identity: tuple[int, int] | None = None
        self._gone: str | None = None
        self._last_file_check = 0.0
        self._owner_locks = None if path == ":memory:" else OwnerLocks(Path(f"{path}.owners"), self._owner)
        self._last_owner_check = 0.0

    @property
    def store_path(self) -> Path | None:
        """The store file, for the free-space reserve (None in memory)."""
        return None if self.path == ":memory:" else Path(self.path)

    @classmethod
    def from_settings(cls, settings: Settings) -> SQLiteBus:
        url = settings.bus_url
        path = ":memory:" if url.startswith("memory://") else url.removeprefix("sqlite:///")
        return cls(
            path,
            synchronous=settings.sqlite_synchronous,
            lease_seconds=settings.lease_seconds,
            dedup_retention_seconds=settings.dedup_retention_seconds,
        )

    def _open(self, *, create: bool = True) -> sqlite3.Connection:
        target, uri = (self.path, False) if create else (f"file:{urllib.parse.quote(self.path)}?mode=rw", True)
        connection = sqlite3.connect(target, isolation_level=None, check_same_thread=False, uri=uri)
        connection.execute("PRAGMA busy_timeout = 5000")
        # NORMAL: a commit survives a crash of the process; FULL also a power loss (docs/event-bus.md).
        connection.execute(f"PRAGMA synchronous = {self._synchronous}")
        return connection

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        connection = self._open()
        connection.execute("PRAGMA journal_mode = WAL")
        # Checkpoints (the fsyncs) run in the store's checkpoint thread, not in a commit on the event loop. A commit
        # checkpoints only past 256 MiB of WAL, the last resort should that thread stop: once past the bound, each
        # commit runs one, 35-40 ms at ~40,000 events/s (docs/performance.md, run 8). The file is cut back to
        # 64 MiB once it starts over.
        connection.execute("PRAGMA wal_autocheckpoint = 65536")
        connection.execute("PRAGMA journal_size_limit = 67108864")
        # the key index takes inserts all over the file when a backlog builds: keep its pages in memory (64 MiB)
        connection.execute("PRAGMA cache_size = -65536")
        # The fan-out's window function and ORDER BY sort in temporary b-trees: kept in a file (the default), they
        # cost ~100 us per claim whatever the number of events, kept in memory ~10 us. The sorts hold at most
        # FAN_OUT_LIMIT events' deliveries (docs/performance.md, run 9).
        connection.execute("PRAGMA temp_store = MEMORY")
        try:
            _prepare_layout(connection, self.path)
        except BaseException:
            connection.close()
            raise
        connection.execute(REPAIR_HEADS)
        if self.path != ":memory:":
            self._file_identity = _identity(os.stat(self.path))
        return connection

    async def open(self) -> None:
        self._store.start()
        if self._owner_locks is not None:
            self._owner_locks.hold()
            await self._release_dead_owners()
        await self.ping()

    async def close(self) -> None:
        released = False
        try:
            await self._store.call(_release, self._owner)
            released = True
        finally:
            await self._store.stop()
            if self._owner_locks is not None:
                # claims not released: the lock file stays, unlocked, so the next process releases them at once
                self._owner_locks.drop(remove=released)

    def _check_file(self, *, always: bool = False) -> None:
        """Raise StoreGone once the path no longer names the file opened; a stat at most every FILE_CHECK_SECONDS
        (or now, `always`)."""
        if self._gone is None and self._file_identity is not None:
            now = time.monotonic()
            if always or now - self._last_file_check >= FILE_CHECK_SECONDS:
                self._last_file_check = now
                try:
                    identity = _identity(os.stat(self.path))
                except FileNotFoundError:
                    self._gone = f"the store file {self.path} was deleted while the service ran"
                else:
                    if identity != self._file_identity:
                        self._gone = f"the store file {self.path} was replaced while the service ran"
                if self._gone is not None:
                    log.error("store_file_gone", detail=self._gone)
        if self._gone is not None:
            raise StoreGone(f"{self._gone}: restart the service once the right file is back")

    async def _release_dead_owners(self) -> None:
        assert self._owner_locks is not None
        self._last_owner_check = time.monotonic()
        for owner, release_lock in self._owner_locks.dead_owners():
            try:
                released = await self._store.call(_release, owner)
            finally:
                release_lock()
            if released:
                log.info("dead_owner_claims_released", owner=owner, deliveries=released)
                self._work.wake()

    async def _call(self, job: Callable[..., ResultT], *args: object) -> ResultT:
        try:
            return await self._store.call(job, *args)
        except sqlite3.Error as error:
            raise StoreUnavailable(f"the SQLite store failed: {type(error).__name__}: {error}") from error

    async def append(self, events: Sequence[NewEvent]) -> list[int | None]:
        self._check_file()
        positions = await self._call(_append, events, time.time())
        if any(position is not None for position in positions):
            self._work.wake()
        return positions

    async def claim(self, limit: int) -> list[Delivery]:
        now = time.time()
        purge_before = None
        # purge at least twice per retention window, so a short window is honoured closely
        if now - self._last_purge > min(PURGE_EVERY_SECONDS, self._retention / 2):
            self._last_purge = now
            purge_before = now - self._retention
        if self._owner_locks is not None and time.monotonic() - self._last_owner_check >= OWNER_CHECK_SECONDS:
            await self._release_dead_owners()
        return await self._call(_claim, self._owner, limit, now, now + self._lease_seconds, purge_before)

    async def complete(self, delivery: Delivery) -> None:
        if not isinstance(delivery, SQLiteDelivery):
            raise TypeError("the SQLite bus only takes back deliveries it handed out")
        try:
            await self._store.call_grouped(_complete, (delivery.position, delivery.handler, delivery.ordering_key))
        except sqlite3.Error as error:
            raise StoreUnavailable(f"the SQLite store failed: {type(error).__name__}: {error}") from error
        self._work.wake()  # the next event of this delivery's ordering key may be due now

    async def retry(self, delivery: Delivery, error: str, delay_seconds: float) -> None:
        await self._call(
            _retry,
            delivery.position,
            delivery.handler,
            delivery.attempts + 1,
            time.time() + delay_seconds,
            error,
        )

    async def dead_letter(self, delivery: Delivery, error: str) -> None:
        await self._call(_dead_letter, delivery.position, delivery.handler, delivery.attempts + 1, error, time.time())
        self._work.wake()

    async def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        return await self._store.call(_dead_letters, limit)

    async def replay(self, event_ids: Sequence[str] | None) -> int:
        replayed = await self._store.call(_replay, None if event_ids is None else list(event_ids), time.time())
        if replayed:
            self._work.wake()
        return replayed

    async def pending_count(self) -> int:
        return await self._store.call(_pending_count)

    async def ping(self) -> None:
        """A write, not only a read: a store that reads but cannot write (full, read-only) is not ready."""
        self._check_file(always=True)  # readiness asks rarely: look every time
        await self._call(_ping)

    async def wait_for_work(self, timeout: float) -> None:
        await self._work.wait(timeout)


INSERT_EVENT = (
    "INSERT OR IGNORE INTO events (source, id, type, body, received_at, ordering_key, handlers) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _append(connection: sqlite3.Connection, events: Sequence[NewEvent], now: float) -> list[int | None]:
    # only the event is written here: its deliveries are made in bulk by the next claim (_fan_out)
    rows = [
        (
            new.event.source,
            new.event.id,
            new.event.type,
            new.body,
            now,
            new.event.ordering_key,
            _handler_list(new.handlers),
        )
        for new in events
    ]
    if len(rows) == 1:  # a single event, the common request: one statement
        cursor = connection.execute(INSERT_EVENT, rows[0])
        return [cursor.lastrowid if cursor.rowcount else None]
    inserted = connection.executemany(INSERT_EVENT, rows).rowcount
    if inserted == 0:
        return [None] * len(rows)
    # The write lock is held, so the new rows took consecutive seqs (SQLite's rowid is max + 1), the last one
    # known: with no duplicate among them, the positions follow without reading anything back.
    (last_seq,) = connection.execute("SELECT last_insert_rowid()").fetchone()
    first_seq = last_seq - inserted + 1
    if inserted == len(rows):
        return list(range(first_seq, last_seq + 1))
    stored = {
        (source, event_id): seq
        for seq, source, event_id in connection.execute(
            "SELECT seq, source, id FROM events WHERE seq >= ?", (first_seq,)
        )
    }
    # a repeated id within the request: only its first copy was stored
    return [stored.pop((source, event_id), None) for source, event_id, *_ in rows]


@functools.lru_cache(maxsize=256)
def _handler_list(handlers: tuple[str, ...]) -> str:
    return json.dumps(handlers)


def _fan_out(connection: sqlite3.Connection, limit: int) -> None:
    """Turn up to `limit` stored events into their deliveries, oldest first."""
    (up_to,) = connection.execute(
        "SELECT max(seq) FROM (SELECT seq FROM events WHERE handlers IS NOT NULL ORDER BY seq LIMIT ?)", (limit,)
    ).fetchone()
    if up_to is not None:
        connection.execute(FAN_OUT, (up_to,))
        connection.execute("UPDATE events SET handlers = NULL WHERE handlers IS NOT NULL AND seq <= ?", (up_to,))


def _purge(connection: sqlite3.Connection, before: float) -> None:
    """Forget events received before `before` whose deliveries are all done: their ids may be accepted again.

    Events are stamped in the order they are stored, so the old ones are the lowest seqs, and a bisection over seq
    finds where they end. An index on received_at would do the same, at the cost of one more index insert per event.
    """
    cut = _last_seq_received_before(connection, before)
    if cut is not None:
        # received_at is checked again: should the clock have stepped back, nothing younger than the window goes
        connection.execute(
            "DELETE FROM events WHERE seq <= ? AND received_at < ? AND handlers IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM deliveries WHERE deliveries.event_seq = events.seq)",
            (cut, before),
        )


def _last_seq_received_before(connection: sqlite3.Connection, before: float) -> int | None:
    low, high = connection.execute("SELECT min(seq), max(seq) FROM events").fetchone()
    cut = None
    while low is not None and low <= high:
        middle = (low + high) // 2
        # seqs have gaps (purged events): look at the first stored event from the middle on
        row = connection.execute(
            "SELECT seq, received_at FROM events WHERE seq >= ? ORDER BY seq LIMIT 1", (middle,)
        ).fetchone()
        if row is not None and row[1] < before:
            cut, low = row[0], row[0] + 1
        else:
            high = middle - 1
    return cut


def _claim(
    connection: sqlite3.Connection,
    owner: str,
    limit: int,
    now: float,
    lease_until: float,
    purge_before: float | None,
) -> list[Delivery]:
    connection.execute(EXPIRE_LEASES, (now,))
    if purge_before is not None:
        _purge(connection, purge_before)
    rows = connection.execute(CLAIMABLE, (now, limit)).fetchall()
    if len(rows) < limit:
        # Fan out only when the heads run short. Ahead of the handlers, a backlog would move from the events table
        # (appended in order) into the deliveries table, whose key index takes each insert anywhere. Every head
        # is older than any event not fanned out yet, so the claim takes the same deliveries either way.
        _fan_out(connection, FAN_OUT_LIMIT)
        rows = connection.execute(CLAIMABLE, (now, limit)).fetchall()
    connection.executemany(CLAIM, [(owner, lease_until, seq, handler) for seq, handler, _, _, _ in rows])
    return [
        SQLiteDelivery(position=seq, handler=handler, attempts=attempts, body=body, ordering_key=key)
        for seq, handler, attempts, body, key in rows
    ]


def _complete(connection: sqlite3.Connection, finished: list[tuple[int, str, str | None]]) -> None:
    """Remove the deliveries of one turn of the loop and move their keys' queues on: two statements, not two per
    delivery (docs/performance.md, run 10)."""
    connection.executemany(
        "DELETE FROM deliveries WHERE event_seq = ? AND handler = ?", [(seq, handler) for seq, handler, _ in finished]
    )
    # A late completion may remove a row dead-lettered meanwhile, or one another process claimed again: PROMOTE_NEXT
    # adds no head where the queue has one.
    keyed = [(handler, key) for _, handler, key in finished if key is not None]
    if keyed:
        connection.executemany(PROMOTE_NEXT, keyed)


def _promote_next(connection: sqlite3.Connection, handler: str, ordering_key: str | None) -> None:
    """A delivery of a (handler, key) queue just left it: the next delivery of that key moves up if need be."""
    if ordering_key is not None:
        connection.execute(PROMOTE_NEXT, (handler, ordering_key))


def _retry(connection: sqlite3.Connection, seq: int, handler: str, attempts: int, due_at: float, error: str) -> None:
    connection.execute(RETRY, (attempts, due_at, error, seq, handler))


def _dead_letter(connection: sqlite3.Connection, seq: int, handler: str, attempts: int, error: str, now: float) -> None:
    finished = connection.execute(DEAD_LETTER, (attempts, error, now, seq, handler)).fetchone()
    if finished is not None:
        _promote_next(connection, handler, finished[0])


def _dead_letters(connection: sqlite3.Connection, limit: int) -> list[DeadLetter]:
    rows = connection.execute(DEAD_LETTERS, (limit,)).fetchall()
    return [DeadLetter(*row) for row in rows]


def _replay(connection: sqlite3.Connection, event_ids: list[str] | None, now: float) -> int:
    if event_ids is None:
        cursor = connection.execute(REPLAY_ALL, (now,))
    else:
        marks = ", ".join("?" for _ in event_ids)  # only placeholders: the ids are bound
        cursor = connection.execute(
            f"{REPLAY_ALL} AND event_seq IN (SELECT seq FROM events WHERE id IN ({marks}))", (now, *event_ids)
        )
    replayed = cursor.rowcount
    connection.execute(REPAIR_HEADS)
    return replayed


def _release(connection: sqlite3.Connection, owner: str) -> int:
    return connection.execute(RELEASE, (owner,)).rowcount


def _pending_count(connection: sqlite3.Connection) -> int:
    (open_deliveries,) = connection.execute(OPEN_DELIVERIES).fetchone()
    (not_fanned_out,) = connection.execute(
        "SELECT coalesce(sum(json_array_length(handlers)), 0) FROM events WHERE handlers IS NOT NULL"
    ).fetchone()
    return int(open_deliveries) + int(not_fanned_out)


class StoreVersionError(RuntimeError):
    """The store file was written by a newer runtime, whose layout this one does not know."""


def _prepare_layout(connection: sqlite3.Connection, path: str) -> None:
    """Make a new store at SCHEMA_VERSION, or bring an older one there step by step, in one transaction.

    The write lock is taken first, so processes starting together on one file upgrade it once, one after the other.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"{path}: the store has schema version {version}, newer than this runtime's {SCHEMA_VERSION} "
                f"(event-runtime {__version__}): a newer release wrote it, so run that release or a later one"
            )
        if version < SCHEMA_VERSION:
            if _is_empty(connection):
                for statement in SCHEMA:
                    connection.execute(statement)
            else:
                for step_version, step in MIGRATIONS:
                    if step_version > version:
                        step(connection)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _is_empty(connection: sqlite3.Connection) -> bool:
    return connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchone() is None


def _upgrade_unversioned(connection: sqlite3.Connection) -> None:
    """Version 1, for a store of a release that kept no version (before 0.1.0, up to commit 48f70ce): the layout
    the last of them had, and made of any older store on open."""
    # before the fan-out step
    columns = {row[1] for row in connection.execute("PRAGMA table_info(events)")}
    for column in FAN_OUT_COLUMNS:
        if column not in columns:
            connection.execute(f"ALTER TABLE events ADD COLUMN {column} TEXT")
    connection.execute(FAN_OUT_INDEX)
    # before the purge bisected over seq: nothing reads this index any more (see _purge), and it costs every insert
    connection.execute("DROP INDEX IF EXISTS events_by_received_at")
    # before the key index held no state
    connection.execute(KEY_INDEX)
    connection.execute(f"DROP INDEX IF EXISTS {STATEFUL_KEY_INDEX}")
    # every release made this one; made here should it be missing, as each of their opens did
    connection.execute(STATE_INDEX)


# The layout's version, kept in the file's user_version (0 in a file of a release before it was kept): each step
# takes a store from the version before it to its own. A store newer than the last is refused (StoreVersionError).
MIGRATIONS: tuple[tuple[int, Callable[[sqlite3.Connection], None]], ...] = ((1, _upgrade_unversioned),)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def _ping(connection: sqlite3.Connection) -> None:
    # rewriting the header's user_version (to the value it has) writes a page to the WAL: the cheapest real write
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    connection.execute(f"PRAGMA user_version = {int(version)}")


def _identity(status: os.stat_result) -> tuple[int, int]:
    return status.st_dev, status.st_ino
