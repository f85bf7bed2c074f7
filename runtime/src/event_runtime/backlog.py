"""Backpressure: whether the bus holds more pending deliveries than SERVICE_MAX_PENDING.

Without a bound, a process taking events faster than its handlers finish them keeps accepting: ingest and handlers
share the core, and the more it accepts, the less its handlers get done (docs/performance.md, run 9). Over the
bound, ingress answers 503 with Retry-After, and the sender keeps the event until then.

The count comes from the bus (`pending_count`, the `bus_pending_events` gauge), read in the background a few times
a second rather than per request: on SQLite it reads every event not yet handed to a handler.
"""

from __future__ import annotations

import asyncio
import contextlib

from .bus import EventBus
from .logs import get_logger

log = get_logger(__name__)
REFRESH_EVERY_SECONDS = 0.5


class Backlog:
    """Reads the bus's pending count every REFRESH_EVERY_SECONDS; `full` once it is above `max_pending` (0: never)."""

    def __init__(self, bus: EventBus, max_pending: int) -> None:
        self._bus = bus
        self.max_pending = max_pending
        self.pending = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def full(self) -> bool:
        return 0 < self.max_pending < self.pending

    def start(self) -> None:
        if self.max_pending > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="backlog")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self) -> None:
        try:
            self.pending = await self._bus.pending_count()
        except Exception:  # the last count stands; a failing store fails the requests and readiness anyway
            log.exception("pending_count_failed")

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(REFRESH_EVERY_SECONDS)
