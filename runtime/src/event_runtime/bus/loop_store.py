"""One SQLite connection used on the event loop's own thread; every job queued in one turn of the loop commits in
one transaction.

Why not a thread: on one core a store thread costs more in hand-offs and GIL switches than SQLite costs in work
(docs/performance.md). A WAL commit with synchronous=NORMAL is a write() without fsync, so it is cheap enough to run
on the loop. The fsyncs happen in checkpoints, which a thread runs on its own connection: PASSIVE rounds copy the
WAL into the database without waiting for the writer, and once the copy has caught up and the WAL is large, one
RESTART lets the next commit start the file over (or, should the copy keep lagging, once the WAL is very large).
A checkpoint inside a commit, SQLite's default, stalled the loop for ~35 ms every few seconds at half load
(docs/performance.md, run 5).

A RESTART keeps writers out while it copies and fsyncs. The loop does not wait for it inside SQLite, whose busy
handler sleeps in steps of up to 25 ms past the end: it sees the RESTART's lock taken and tries again a
millisecond later, parsing requests meanwhile (docs/performance.md, run 7). So that the loop waits next to nothing,
the thread RESTARTs a caught-up WAL only when none of the loop's transactions ran since the round that caught up
began: the RESTART then has nothing to copy or fsync, and only starts the file over. A RESTART that copies holds
commits for the copy and two fsyncs (milliseconds), long enough to be the slowest requests' tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..logs import get_logger

log = get_logger(__name__)
ResultT = TypeVar("ResultT")
Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]
# At ~40,000 events/s a commit per loop turn adds ~16,000 frames a second: checked every 0.5 s, the WAL passed the
# bound past which each commit checkpoints on the event loop (docs/performance.md, run 8).
CHECKPOINT_EVERY_SECONDS = 0.1
CATCH_UP_ROUNDS = 3
RESTART_AFTER_FRAMES = 4096
# Caught up, but no moment came without a commit on the loop (a busy loop has none): RESTART anyway, copying what
# came since the last round, rather than let the WAL grow to the forced bound.
LATE_RESTART_AFTER_FRAMES = 8192
# Past this the copy has fallen behind for many rounds: RESTART anyway, which holds commits back while it copies
# the rest, rather than leave the WAL to grow until a commit checkpoints it on the event loop (sqlite.py).
FORCE_RESTART_AFTER_FRAMES = 16384
RETRY_WHILE_RESTARTING_SECONDS = 0.001
# How much nicer than the process the checkpoint thread runs: on a shared core its copies and fsyncs then wait for
# the loop's pauses more than they cut into its requests (docs/performance.md, run 11). Not nice 19: that gets too
# little of a busy core, and the WAL grows until commits checkpoint on the loop.
CHECKPOINT_NICENESS = 10


class LoopStore:
    """Runs `job(connection, *args)` calls in batches, one transaction per turn of the event loop."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        checkpoint_connect: Callable[[], sqlite3.Connection] | None = None,
    ) -> None:
        self._connect = connect
        self._checkpoint_connect = checkpoint_connect
        self._connection: sqlite3.Connection | None = None
        self._pending: list[Job] = []
        # grouped jobs queued in this turn: their items so far and the future all their callers await
        self._groups: dict[Callable[..., Any], tuple[list[Any], asyncio.Future[Any]]] = {}
        self._flush_scheduled = False
        self._stop_checkpoints = threading.Event()
        self._checkpointer: threading.Thread | None = None
        # held by a transaction on the loop, or by the checkpoint thread for a RESTART; the loop never blocks on it
        self._restart_lock = threading.Lock()
        # the loop's transactions so far, counted under that lock: the thread reads it to tell whether any ran
        self._transactions = 0

    def start(self) -> None:
        if self._connection is None:
            self._connection = self._connect()
            if self._checkpoint_connect is not None:
                self._stop_checkpoints.clear()
                self._checkpointer = threading.Thread(
                    target=self._checkpoint_loop, args=(self._checkpoint_connect,), name="wal-checkpoint", daemon=True
                )
                self._checkpointer.start()

    async def call(self, job: Callable[..., ResultT], *args: Any) -> ResultT:
        return await self._enqueue(job, args)  # type: ignore[no-any-return]

    async def call_grouped(self, job: Callable[[sqlite3.Connection, list[Any]], ResultT], item: Any) -> ResultT:
        """Queue `item` for `job`: the calls of one turn of the loop run `job(connection, items)` once, together.

        For work done per delivery at high rates (completions): one statement over many rows in place of one per row.
        The group runs where its first item was queued; every caller gets its result, or its error.
        """
        group = self._groups.get(job)
        if group is None:
            items: list[Any] = []
            group = self._groups[job] = (items, self._enqueue(job, (items,)))
        group[0].append(item)
        return await group[1]  # type: ignore[no-any-return]

    def _enqueue(self, job: Callable[..., Any], args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue one job for this turn's transaction; the future its result or error is set on."""
        if self._connection is None:
            raise sqlite3.ProgrammingError("the store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((job, args, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    async def stop(self) -> None:
        if self._checkpointer is not None:  # first, so no RESTART holds back the last flush
            self._stop_checkpoints.set()
            await asyncio.get_running_loop().run_in_executor(None, self._checkpointer.join)
            self._checkpointer = None
        if self._pending:
            self._flush()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _flush(self) -> None:
        if not self._restart_lock.acquire(blocking=False):  # a RESTART checkpoint is running: come back shortly
            asyncio.get_running_loop().call_later(RETRY_WHILE_RESTARTING_SECONDS, self._flush)
            return
        try:
            self._flush_batch()
        finally:
            self._transactions += 1
            self._restart_lock.release()

    def _flush_batch(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        self._groups = {}
        connection = self._connection
        if connection is None:
            error = sqlite3.ProgrammingError("the store was closed")
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, _, future), (ok, value) in zip(batch, self._run_batch(connection, batch), strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _run_batch(self, connection: sqlite3.Connection, batch: list[Job]) -> list[tuple[bool, Any]]:
        try:
            connection.execute("BEGIN IMMEDIATE")
            outcomes = [(True, job(connection, *args)) for job, args, _ in batch]
            connection.execute("COMMIT")
            return outcomes
        except Exception:  # noqa: BLE001 - isolate the failing job: run each in its own transaction
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            return [self._run_alone(connection, job, args) for job, args, _ in batch]

    @staticmethod
    def _run_alone(connection: sqlite3.Connection, job: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any]:
        try:
            connection.execute("BEGIN IMMEDIATE")
            result = job(connection, *args)
            connection.execute("COMMIT")
            return True, result
        except Exception as error:  # noqa: BLE001 - handed to the coroutine that awaits this job
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            return False, error

    def _checkpoint_loop(self, connect: Callable[[], sqlite3.Connection]) -> None:
        # Nicer than the loop, but not the nicest: this thread holds the lock commits wait for while it RESTARTs
        # (nearly always one with nothing to copy), so it must still get the core soon when it needs it.
        _run_nicer_by(CHECKPOINT_NICENESS)
        try:
            connection = connect()
        except sqlite3.Error:  # the file went away before the thread began: the loop's own checks report it
            log.exception("wal_checkpoint_failed")
            return
        try:
            while not self._stop_checkpoints.wait(CHECKPOINT_EVERY_SECONDS):
                # Repeat while commits keep adding frames: each round copies only what came during the last one,
                # so it soon finishes between two commits. A WAL copied to its end lets the next commit start the
                # file over; otherwise the WAL only grows.
                for _ in range(CATCH_UP_ROUNDS):
                    transactions_before = self._transactions
                    wal_frames, caught_up = self._checkpoint(connection)
                    if caught_up and self._transactions == transactions_before:
                        break
                restarted = (
                    caught_up
                    and wal_frames > RESTART_AFTER_FRAMES
                    and self._restart_if_all_copied(connection, transactions_before)
                )
                restart_anyway_past = LATE_RESTART_AFTER_FRAMES if caught_up else FORCE_RESTART_AFTER_FRAMES
                if not restarted and wal_frames > restart_anyway_past:
                    with self._restart_lock:
                        self._checkpoint(connection, "RESTART")
            self._checkpoint(connection)
        finally:
            connection.close()

    def _restart_if_all_copied(self, connection: sqlite3.Connection, transactions_before: int) -> bool:
        """RESTART, holding commits back, only if none of the loop's transactions ran since the round that copied
        the whole WAL began: then there is nothing left to copy and fsync. Otherwise a later round tries again.

        Writers in other processes are not counted: should one have committed meanwhile, the RESTART copies its
        frames as any RESTART would, only holding the loop for longer."""
        with self._restart_lock:
            if self._transactions != transactions_before:
                return False
            self._checkpoint(connection, "RESTART")
            return True

    @staticmethod
    def _checkpoint(connection: sqlite3.Connection, mode: str = "PASSIVE") -> tuple[int, bool]:
        """One checkpoint (PASSIVE never waits for the writer): the WAL's frames, and whether all are copied."""
        try:
            ((_, wal_frames, copied_frames),) = connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        except sqlite3.Error:
            log.exception("wal_checkpoint_failed")
            return 0, True
        return wal_frames, copied_frames >= wal_frames


def _run_nicer_by(niceness: int) -> None:
    """Lower the calling thread's CPU priority by `niceness` (Linux gives every thread a nice value of its own).

    Relative to what the thread has, so in a service started under `nice` it still runs below the loop. Elsewhere,
    or where the system refuses, the thread keeps the loop's priority: slower tails, nothing else changes.
    """
    if sys.platform != "linux":  # other systems take a thread id for a process id here
        return
    thread_id = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, thread_id, min(19, os.getpriority(os.PRIO_PROCESS, thread_id) + niceness))
