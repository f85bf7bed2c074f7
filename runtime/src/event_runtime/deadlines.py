"""Handler deadlines: one watcher per process cancels the calls that overran, in place of a timer per call.

A timer per delivery (asyncio.timeout) cost ~10 % of the handlers' side at high event rates: it is made, scheduled
and cancelled for every call, though nearly every call ends long before it (docs/performance.md, run 10). Here a
call costs a dict entry, and one watcher wakes every tenth of the deadline (at most every second) while calls run.
A call is therefore cut off between its deadline and a tenth later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

ResultT = TypeVar("ResultT")
MAX_CHECK_SECONDS = 1.0


class Deadlines:
    """Runs awaitables under a deadline of `seconds` each; an overrun raises TimeoutError in the awaiting task."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._check_every = min(MAX_CHECK_SECONDS, seconds / 10)
        self._due: dict[asyncio.Task[object], float] = {}
        self._overran: set[asyncio.Task[object]] = set()
        self._watcher: asyncio.Task[None] | None = None

    async def run(self, call: Awaitable[ResultT]) -> ResultT:
        task = asyncio.current_task()
        if task is None:  # not in a task: nothing to cancel, so no deadline can be kept
            raise RuntimeError("Deadlines.run must be awaited inside a task")
        loop = asyncio.get_running_loop()
        self._due[task] = loop.time() + self.seconds
        if self._watcher is None:
            self._watcher = loop.create_task(self._watch(), name="handler-deadlines")
        try:
            return await call
        except asyncio.CancelledError:
            if task in self._overran:
                raise TimeoutError(f"the call took longer than {self.seconds} s") from None
            raise  # cancelled by someone else (shutdown): it stays cancelled
        finally:
            del self._due[task]
            if task in self._overran:  # our cancellation ends here, whether the call raised it or swallowed it
                self._overran.discard(task)
                task.uncancel()

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._due:  # stops when no call runs; the next call starts it again
                await asyncio.sleep(self._check_every)
                now = loop.time()
                for task, due in list(self._due.items()):
                    if due <= now and task not in self._overran:
                        self._overran.add(task)
                        task.cancel()
        finally:
            if self._watcher is asyncio.current_task():
                self._watcher = None
