"""A thread that owns one SQLite connection and commits whatever was queued during the last commit at once.

Group commit is what makes the embedded bus fast (docs/performance.md): a request waits for the transaction that
carries it, and many requests share one.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

ResultT = TypeVar("ResultT")
Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class StoreThread:
    """Runs `job(connection, *args)` calls in batches, one transaction per batch."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], name: str = "event-store") -> None:
        self._connect = connect
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    async def call(self, job: Callable[..., ResultT], *args: Any) -> ResultT:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        self._jobs.put((job, args, future, loop))
        return await future

    async def stop(self) -> None:
        if self._started:
            self._jobs.put(None)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
            self._started = False

    def _run(self) -> None:
        try:
            connection = self._connect()
        except Exception as error:  # noqa: BLE001 - every job must learn why the store is unusable
            self._fail_all(error)
            return
        try:
            while (first := self._jobs.get()) is not None:
                batch = [first]
                stopping = False
                while True:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stopping = True
                        break
                    batch.append(job)
                self._settle(batch, self._run_batch(connection, batch))
                if stopping:
                    break
        finally:
            connection.close()

    def _run_batch(self, connection: sqlite3.Connection, batch: list[Job]) -> list[tuple[bool, Any]]:
        try:
            connection.execute("BEGIN IMMEDIATE")
            outcomes = [(True, job(connection, *args)) for job, args, _, _ in batch]
            connection.execute("COMMIT")
            return outcomes
        except Exception:  # noqa: BLE001 - isolate the failing job: run each in its own transaction
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            return [self._run_alone(connection, job, args) for job, args, _, _ in batch]

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

    @staticmethod
    def _settle(batch: list[Job], outcomes: list[tuple[bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for (_, _, future, loop), (ok, value) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, ok, value))
        for loop, settled in by_loop.items():
            # one wake-up of the event loop per batch, not per job
            loop.call_soon_threadsafe(_resolve, settled)

    def _fail_all(self, error: Exception) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            _, _, future, loop = job
            loop.call_soon_threadsafe(_resolve, [(future, False, error)])


def _resolve(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in settled:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
