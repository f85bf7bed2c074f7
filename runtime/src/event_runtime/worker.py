"""Workers: take due deliveries from the bus, run the handler, then complete, retry or dead-letter them.

The write that settles a delivery (its completion, retry or dead letter) is tried until it lands, whatever the
error, with a backoff of at most SETTLE_RETRY_MAX_SECONDS: a delivery whose settling failed once and was given up
stayed claimed, and every later event of its ordering key waited behind it, while the process ran. At a stop, a
settle still failing is cut off with the other in-flight work, and the delivery is released (or its lease runs out).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .bus import Delivery, EventBus
from .cloudevents import CloudEvent
from .deadlines import Deadlines
from .logs import get_logger
from .metrics import Metrics
from .registry import HandlerContext, HandlerRegistry, NonRetryableError, Publisher, Subscription
from .retry import RetryPolicy
from .store_health import StoreHealth
from .tracing import Tracing

log = get_logger(__name__)
SETTLE_RETRY_FIRST_SECONDS = 0.05
SETTLE_RETRY_MAX_SECONDS = 2.0

PublishFactory = Callable[[CloudEvent, str], Publisher]  # (cause, handler name): a publisher for one attempt


@dataclass
class HandlerOutcome:
    """What one handler did with one event, as returned to a client that asked to wait."""

    event_id: str
    handler: str
    status: str  # "processed" or "dead_lettered"
    result: Any = None
    error: str | None = None


@dataclass
class _Waiter:
    expected: int
    outcomes: list[HandlerOutcome] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Workers:
    """Runs up to `concurrency` handler calls at a time in this process."""

    def __init__(
        self,
        bus: EventBus,
        registry: HandlerRegistry,
        metrics: Metrics,
        retry: RetryPolicy,
        publish_for: PublishFactory,
        *,
        concurrency: int = 64,
        handler_timeout: float = 30.0,
        poll_seconds: float = 0.2,
        health: StoreHealth | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._bus = bus
        self._registry = registry
        self._metrics = metrics
        self._retry = retry
        self._publish_for = publish_for
        self._concurrency = concurrency
        self._deadlines = Deadlines(handler_timeout)
        self._threads: ThreadPoolExecutor | None = None  # for sync handlers, made at the first sync call
        self._poll_seconds = poll_seconds
        self._health = health or StoreHealth()
        self._tracing = tracing or Tracing()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._waiters: dict[int, _Waiter] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    def start(self) -> None:
        self._stopping = False
        self._loop_task = asyncio.create_task(self._run(), name="workers")

    async def stop(self, timeout: float) -> None:
        """Take no new work; give in-flight handlers `timeout` seconds, then cancel them (they are redelivered)."""
        self._stopping = True
        self._slot_freed.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._in_flight:
            _, unfinished = await asyncio.wait(self._in_flight, timeout=timeout)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        await self._deadlines.close()
        if self._threads is not None:  # a sync call cut off by its deadline may still run: do not wait for it
            self._threads.shutdown(wait=False)
            self._threads = None

    async def run_once(self) -> int:
        """Claim and run one round of due deliveries to completion; returns how many ran (testing kit)."""
        deliveries = await self._bus.claim(self._concurrency)
        await asyncio.gather(*(self._deliver(delivery) for delivery in deliveries))
        return len(deliveries)

    def wait_for(self, positions: list[int], handlers_per_event: list[int]) -> _Waiter:
        """Register interest in the outcomes of freshly appended events (Prefer: wait)."""
        waiter = _Waiter(expected=sum(handlers_per_event))
        for position in positions:
            self._waiters[position] = waiter
        return waiter

    def forget(self, positions: list[int]) -> None:
        for position in positions:
            self._waiters.pop(position, None)

    async def _run(self) -> None:
        while not self._stopping:
            free = self._concurrency - len(self._in_flight)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                deliveries = await self._bus.claim(free)
            except Exception:  # the store may come back; readiness reports it meanwhile
                log.exception("claim_failed")
                await asyncio.sleep(self._poll_seconds)
                continue
            for delivery in deliveries:
                task = asyncio.create_task(self._deliver(delivery))
                self._in_flight.add(task)
                task.add_done_callback(self._finished)
            if not deliveries:
                await self._bus.wait_for_work(self._poll_seconds)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            await self._deliver_once(delivery)
        except Exception as error:  # a runtime bug (settles retry their own errors): kept for a person
            log.exception("delivery_interrupted", handler=delivery.handler, position=delivery.position)
            message = f"the runtime failed to deliver it: {_describe(error)}"
            await self._settle_write("dead_letter", lambda: self._bus.dead_letter(delivery, message))

    async def _settle_write(self, operation: str, write: Callable[[], Awaitable[None]]) -> None:
        """Run `write` until it lands: every error kind is retried, with a backoff bounded by
        SETTLE_RETRY_MAX_SECONDS; readiness fails meanwhile (StoreHealth). Only a stop's cancellation ends it."""
        delay = SETTLE_RETRY_FIRST_SECONDS
        while True:
            try:
                await write()
            except Exception as error:  # noqa: BLE001 - whatever failed, the delivery must not stay claimed
                self._health.failed(operation, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, SETTLE_RETRY_MAX_SECONDS)
                continue
            self._health.succeeded(operation)
            return

    async def _deliver_once(self, delivery: Delivery) -> None:
        event = delivery.event
        subscription = self._registry.by_name(delivery.handler)
        if subscription is None:
            # stored by a release that had this handler; keep it for a later release or a replay
            await self._give_up(delivery, event, f"no handler named {delivery.handler!r} in this release")
            return
        attempt = delivery.attempts + 1
        series = self._metrics.series(delivery.handler, event.type)
        log.debug(
            "event_delivering", event_id=event.id, event_type=event.type, handler=delivery.handler, attempt=attempt
        )
        started = time.perf_counter()
        try:
            result = await self._call(subscription, event, attempt)
        except Exception as error:  # noqa: BLE001 - any handler failure is retried or dead-lettered
            series.duration.observe(time.perf_counter() - started)
            series.failed.inc()
            await self._failed(delivery, event, subscription, error)
            return
        series.duration.observe(time.perf_counter() - started)
        await self._settle_write("complete", lambda: self._bus.complete(delivery))
        series.processed.inc()
        # no bind() here: on the hot path a filtered-out debug call must cost next to nothing
        log.debug(
            "event_processed", event_id=event.id, event_type=event.type, handler=delivery.handler, attempt=attempt
        )
        self._settle(delivery, HandlerOutcome(event.id, delivery.handler, "processed", result=result))

    async def _call(self, subscription: Subscription, event: CloudEvent, attempt: int) -> Any:
        try:
            data = subscription.decode(event.data)
        except msgspec.ValidationError as error:
            raise NonRetryableError(f"data no longer matches the schema: {error}") from error
        if not self._tracing.enabled:  # the hot path: no span, no context manager
            return await self._call_handler(subscription, event, data, attempt)
        with self._tracing.process(event, subscription.handler_name, attempt):
            return await self._call_handler(subscription, event, data, attempt)

    async def _call_handler(self, subscription: Subscription, event: CloudEvent, data: Any, attempt: int) -> Any:
        handler = subscription.handler_name
        # a publisher per attempt: it numbers this call's publishes, which the follow-ups' ids are made from
        context = HandlerContext(
            event=event, handler=handler, attempt=attempt, publish=self._publish_for(event, handler)
        )
        if subscription.is_async:
            call: Awaitable[Any] = subscription.function(data, context)
        else:
            # Sync handlers run in a thread so they cannot stall ingress, in a pool with a thread per call in flight:
            # in asyncio's shared pool (6 threads on 2 cores) they queued, and their deadline counted the wait.
            # The context is copied, as asyncio.to_thread does: the handler sees the delivering task's context
            # variables (structlog's bound fields among them).
            run_in_context = functools.partial(contextvars.copy_context().run, subscription.function, data, context)
            call = asyncio.get_running_loop().run_in_executor(self._thread_pool(), run_in_context)
        return await self._deadlines.run(call)

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="sync-handler")
        return self._threads

    async def _failed(
        self, delivery: Delivery, event: CloudEvent, subscription: Subscription, error: Exception
    ) -> None:
        message = _describe(error)
        # bound here, not per delivery: successful deliveries are the hot path and log nothing
        bound = log.bind(
            event_id=event.id, event_type=event.type, handler=delivery.handler, attempt=delivery.attempts + 1
        )
        failed_attempts = delivery.attempts + 1
        if isinstance(error, NonRetryableError) or self._retry.gives_up_after(
            failed_attempts, subscription.max_attempts
        ):
            bound.error("event_dead_lettered", error=message)
            await self._give_up(delivery, event, message)
            return
        delay = self._retry.delay(failed_attempts)
        bound.warning("event_retry_scheduled", error=message, retry_in_seconds=round(delay, 3))
        await self._settle_write("retry", lambda: self._bus.retry(delivery, message, delay))
        self._metrics.series(delivery.handler, event.type).retried.inc()

    async def _give_up(self, delivery: Delivery, event: CloudEvent, message: str) -> None:
        await self._settle_write("dead_letter", lambda: self._bus.dead_letter(delivery, message))
        self._metrics.series(delivery.handler, event.type).dead_lettered.inc()
        self._settle(delivery, HandlerOutcome(event.id, delivery.handler, "dead_lettered", error=message))

    def _settle(self, delivery: Delivery, outcome: HandlerOutcome) -> None:
        waiter = self._waiters.get(delivery.position)
        if waiter is not None:
            waiter.outcomes.append(outcome)
            if len(waiter.outcomes) >= waiter.expected:
                waiter.done.set()


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "TimeoutError: the handler took longer than SERVICE_HANDLER_TIMEOUT_SECONDS"
    return f"{type(error).__name__}: {error}"
