"""Backpressure: whether the bus holds more pending deliveries than SERVICE_MAX_PENDING.

Without a bound, a process taking events faster than its handlers finish them keeps accepting: ingest and handlers
share the core, and the more it accepts, the less its handlers get done (docs/performance.md, run 9). Over the
bound, ingress answers 503 with Retry-After, and the sender keeps the event until then.

The count comes from the bus (`pending_count`, the `bus_pending_events` gauge), read in the background a few times
a second rather than per request: on SQLite it reads every event not yet handed to a handler. That count is stale
by up to REFRESH_EVERY_SECONDS of appends, and blind to requests admitted but still storing: checked alone, it let
the backlog overshoot its bound by 36-52 %. So the bound is held against an estimate: the last count, plus every
delivery stored since that count was started, plus those being stored right now. Completions since the count are
not subtracted: the estimate errs high, so the bound holds (refusing a little early for up to half a second).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

from .bus import EventBus
from .logs import get_logger

log = get_logger(__name__)
REFRESH_EVERY_SECONDS = 0.5


class Backlog:
    """Reads the bus's pending count every REFRESH_EVERY_SECONDS; `full` once it is above `max_pending` (0: never)."""

    def __init__(self, bus: EventBus, max_pending: int) -> None:
        self._bus = bus
        self.max_pending = max_pending
        self.pending = 0  # the bus's last count
        self._stored_total = 0  # deliveries stored through this process, ever
        self._stored_at_count = 0  # _stored_total when the last count was started
        self._storing = 0  # deliveries of requests between their check and the end of their append
        self._task: asyncio.Task[None] | None = None

    @property
    def estimate(self) -> int:
        """Pending deliveries, erring high: the last count, what was stored since it began, what is being stored."""
        return self.pending + (self._stored_total - self._stored_at_count) + self._storing

    @property
    def full(self) -> bool:
        """Over the bound: new requests are refused (checked before a body is read, and again once it is parsed).

        A request is taken while the estimate is at most the bound, so the backlog stays within the bound plus
        one request's deliveries; a batch larger than the bound can still get in (refusing it would refuse it for
        good). The check and the count of what it lets in happen in one step of the loop, with no await between:
        concurrent requests see each other."""
        return 0 < self.max_pending < self.estimate

    @contextlib.contextmanager
    def storing(self, deliveries: int) -> Iterator[Callable[[int], None]]:
        """Count `deliveries` as being stored while the block runs; call the yielded function with how many were
        stored (duplicates are not), which then count as stored since the last count."""
        self._storing += deliveries

        def stored(count: int) -> None:
            self._stored_total += count

        try:
            yield stored
        finally:
            self._storing -= deliveries

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
        stored_before = self._stored_total  # what is stored from here on may or may not be in the count: erring high
        try:
            self.pending = await self._bus.pending_count()
            self._stored_at_count = stored_before
        except Exception:  # the last count stands; a failing store fails the requests and readiness anyway
            log.exception("pending_count_failed")

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(REFRESH_EVERY_SECONDS)
