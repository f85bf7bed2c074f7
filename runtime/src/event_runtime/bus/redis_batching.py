"""Group commit for Redis calls: requests that arrive while one round trip is out share the next one.

Per-request round trips make the Python client, not Redis, the bottleneck (docs/event-bus.md), so the hot paths
(appending events, acknowledging deliveries) queue their items here and one flush carries all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class Batcher(Generic[ItemT, ResultT]):
    """`await submit(items)` -> their results; `flush(all queued items)` runs once per round, no linger."""

    def __init__(self, flush: Callable[[list[ItemT]], Awaitable[list[ResultT]]], max_items: int = 1000) -> None:
        self._flush = flush
        self._max_items = max_items
        self._queue: list[tuple[Sequence[ItemT], asyncio.Future[list[ResultT]]]] = []
        self._running: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[ItemT]) -> list[ResultT]:
        future: asyncio.Future[list[ResultT]] = asyncio.get_running_loop().create_future()
        self._queue.append((items, future))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            round_: list[tuple[Sequence[ItemT], asyncio.Future[list[ResultT]]]] = []
            size = 0
            while self._queue and (not round_ or size + len(self._queue[0][0]) <= self._max_items):
                items, future = self._queue.pop(0)
                round_.append((items, future))
                size += len(items)
            flat = [item for items, _ in round_ for item in items]
            try:
                results = await self._flush(flat)
            except BaseException as error:  # every waiter of this round sees the failure
                for _, future in round_:
                    if not future.done():
                        future.set_exception(error if isinstance(error, Exception) else RuntimeError(str(error)))
                if not isinstance(error, Exception):
                    raise
                continue
            start = 0
            for items, future in round_:
                if not future.done():
                    future.set_result(results[start : start + len(items)])
                start += len(items)
