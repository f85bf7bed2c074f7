"""One service process: the bus, the workers and the checks that turn incoming events into stored ones."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from .backlog import Backlog
from .bus import EventBus, NewEvent, open_bus
from .bus.base import DiskReserveReached, StoreUnavailable
from .cloudevents import CloudEvent, EventRejected, RejectionReason
from .disk_reserve import DiskReserve
from .logs import get_logger
from .metrics import Metrics
from .redaction import configured_secrets, redact
from .registry import HandlerRegistry, NonRetryableError, Publisher
from .retry import RetryPolicy
from .settings import Settings
from .store_health import StoreHealth
from .tracing import Tracing, end_spans, tracing_for
from .worker import HandlerOutcome, Workers

log = get_logger(__name__)
_ERROR_PATH = re.compile(r"^(?P<message>.*?)(?: - at `(?P<path>[^`]*)`)?$")
RETRY_AFTER_SECONDS = 1  # what a refusal over SERVICE_MAX_PENDING, or while draining, asks the sender to wait
# Follow-up ids are name-based UUIDs (v5) in this namespace, the runtime's own: changing it would give the follow-ups
# of a delivery retried across an upgrade new ids, and dedup would no longer recognise them.
FOLLOW_UP_NAMESPACE = uuid.UUID("bacfa98b-bd52-46ea-bca4-4eabe4d07947")
_encode_json = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Accepted:
    """What happened to the events of one request."""

    accepted: int
    duplicates: int
    outcomes: list[HandlerOutcome] | None = None  # set when the client waited and every handler finished


class Service:
    """Built from an explicit handler registry and settings; the ASGI app and the CLI both drive one of these."""

    def __init__(
        self,
        registry: HandlerRegistry,
        settings: Settings,
        bus: EventBus | None = None,
        *,
        version: str = "0.0.0+source",
        tracing: Tracing | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.version = version  # the service's own release; /healthz and /readyz show it beside the runtime's
        self.tracing = tracing or tracing_for(
            settings.tracing_endpoint, settings.event_source.strip("/") or "event-service", version
        )
        self.metrics = Metrics((s.handler_name, s.event_type) for s in registry.subscriptions())
        self.bus = bus or open_bus(settings)
        self.store_health = StoreHealth()
        self.disk_reserve = DiskReserve(getattr(self.bus, "store_path", None), settings.min_free_bytes)
        self.workers = Workers(
            self.bus,
            registry,
            self.metrics,
            RetryPolicy(settings.max_attempts, settings.retry_base_seconds, settings.retry_max_seconds),
            self.publisher_for,
            concurrency=settings.worker_concurrency,
            handler_timeout=settings.handler_timeout_seconds,
            poll_seconds=settings.poll_seconds,
            health=self.store_health,
            tracing=self.tracing,
        )
        self.backlog = Backlog(self.bus, settings.max_pending)
        self.draining = False
        self.started = False
        self._run_workers = True

    async def start(self, *, run_workers: bool = True) -> None:
        await self.bus.open()
        self.backlog.start()
        self._run_workers = run_workers
        if run_workers:
            self.workers.start()
        self.started = True
        log.info(
            "service_started",
            bus=redact(self.settings.bus_url),
            handlers=self.registry.handler_names,
            workers=run_workers,
        )

    def begin_drain(self) -> None:
        """Stop taking events; readiness fails so a load balancer stops sending."""
        if not self.draining:
            self.draining = True
            log.info("service_draining")

    async def stop(self) -> None:
        self.begin_drain()
        if not self.started:
            return
        await self.workers.stop(self.settings.shutdown_timeout_seconds)
        await self.backlog.stop()
        await self.bus.close()
        self.tracing.shutdown()
        self.started = False
        log.info("service_stopped")

    async def readiness(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining"
        if not self.started:
            return False, "starting"
        if self._run_workers and not self.workers.running:
            return False, "workers stopped"
        if self.disk_reserve.low:
            return False, self._disk_detail()
        try:
            # the bus's ping writes: a store that reads but cannot write is not ready
            await asyncio.wait_for(self.bus.ping(), 2.0)
        except Exception as error:  # noqa: BLE001 - any store failure means not ready
            # a store's error may quote its URL, password and all
            detail = f"store unreachable: {type(error).__name__}: {error}"
            return False, redact(detail, configured_secrets(self.settings))
        problem = self.store_health.problem  # a write of the service's own failed since the last one that landed
        if problem is not None:
            return False, redact(f"store writes failing: {problem}", configured_secrets(self.settings))
        return True, "ready"

    def _disk_detail(self) -> str:
        return (
            f"{self.disk_reserve.free_bytes} bytes free on the store's filesystem, under SERVICE_MIN_FREE_BYTES "
            f"({self.disk_reserve.min_free_bytes}): new events are refused so accepted ones can complete"
        )

    def admit(self) -> None:
        """Whether this process takes a request now; ingress asks before reading the body, so refusing costs next to
        nothing. Raises EventRejected (503) while draining or while more deliveries are pending than
        SERVICE_MAX_PENDING, and DiskReserveReached (503 `disk_full`) below SERVICE_MIN_FREE_BYTES."""
        if self.draining:
            raise EventRejected(
                RejectionReason.DRAINING,
                "draining",
                "the service is shutting down; retry on another instance",
                headers={"retry-after": str(RETRY_AFTER_SECONDS)},
                retry_after_seconds=RETRY_AFTER_SECONDS,
            )
        if self.disk_reserve.low:
            raise DiskReserveReached(self._disk_detail())
        if self.backlog.full:
            raise self._backlog_full()

    def _backlog_full(self) -> EventRejected:
        return EventRejected(
            RejectionReason.BACKLOG_FULL,
            "backlog_full",
            f"{self.backlog.estimate} deliveries are pending or being stored, SERVICE_MAX_PENDING is "
            f"{self.backlog.max_pending}; nothing was stored: retry later",
            headers={"retry-after": str(RETRY_AFTER_SECONDS)},
            retry_after_seconds=RETRY_AFTER_SECONDS,
        )

    def prepare(self, events: Sequence[CloudEvent], bodies: Sequence[bytes] | None = None) -> list[NewEvent]:
        """Check every event against the registry; raise EventRejected (422) before anything is stored."""
        prepared = []
        for index, event in enumerate(events):
            subscriptions = self.registry.for_type(event.type)
            if not subscriptions:
                raise EventRejected(
                    RejectionReason.UNKNOWN_TYPE,
                    "unknown_type",
                    f"no handler is registered for type {event.type!r}",
                    type=event.type,
                    **_where(index, events),
                )
            try:
                subscriptions[0].decode(event.data)
            except msgspec.ValidationError as error:
                raise EventRejected(
                    RejectionReason.INVALID_DATA,
                    "invalid_data",
                    f"data of {event.type!r} does not match its schema",
                    errors=[_field_error(str(error))],
                    **_where(index, events),
                ) from None
            body = bodies[index] if bodies is not None else event.to_json()
            prepared.append(NewEvent(event, body, self.registry.handler_names_for(event.type)))
        return prepared

    async def accept(
        self,
        events: Sequence[CloudEvent],
        bodies: Sequence[bytes] | None = None,
        wait_seconds: float = 0.0,
        *,
        bounded: bool = False,
    ) -> Accepted:
        """Validate, de-duplicate and durably store events; optionally wait for their handlers.

        `bounded` (ingress): refused with 503 `backlog_full` when the pending deliveries, with what other requests
        are storing right now, are over SERVICE_MAX_PENDING. A store failure raises
        StoreUnavailable: nothing was stored."""
        prepared = self.prepare(events, bodies)
        deliveries = sum(len(new.handlers) for new in prepared)
        if bounded and self.backlog.full:  # again: others may have been let in while this body was read
            raise self._backlog_full()
        received = self._traced(prepared) if self.tracing.enabled else ()
        with self.backlog.storing(deliveries) as stored_deliveries:
            try:
                with self.tracing.store(received):
                    positions = await self.bus.append(prepared)
            except Exception as error:
                end_spans(received, error)
                self.store_health.failed("append", error)
                if isinstance(error, StoreUnavailable):
                    raise
                raise StoreUnavailable(f"the store failed: {type(error).__name__}: {error}") from error
            self.store_health.succeeded("append")
            end_spans(received)
            pairs = zip(positions, prepared, strict=True)
            stored_deliveries(sum(len(new.handlers) for position, new in pairs if position is not None))
        stored = [(position, new) for position, new in zip(positions, prepared, strict=True) if position is not None]
        accepted, duplicates = len(stored), len(prepared) - len(stored)
        if log.is_enabled_for(logging.DEBUG):  # a line per event's state change; checked once, not per event
            _log_stored(positions, prepared)
        self.metrics.accepted.inc(accepted)
        if duplicates:
            self.metrics.duplicates.inc(duplicates)
        if wait_seconds <= 0 or not stored or not self._run_workers:
            return Accepted(accepted, duplicates)
        return Accepted(accepted, duplicates, await self._wait(stored, wait_seconds))

    def _traced(self, prepared: list[NewEvent]) -> list[Any]:
        """A receive span per event; an event without a `traceparent` is given its span's (tracing.py)."""
        received = []
        for index, new in enumerate(prepared):
            span = self.tracing.start_receive(new.event)
            received.append(span)
            if "traceparent" not in new.event.extensions:
                extensions = {**new.event.extensions, **self.tracing.traceparent_of(span)}
                event = msgspec.structs.replace(new.event, extensions=extensions)
                prepared[index] = NewEvent(event, event.to_json(), new.handlers)
        return received

    async def _wait(self, stored: list[tuple[int, NewEvent]], wait_seconds: float) -> list[HandlerOutcome] | None:
        positions = [position for position, _ in stored]
        waiter = self.workers.wait_for(positions, [len(new.handlers) for _, new in stored])
        try:
            await asyncio.wait_for(waiter.done.wait(), min(wait_seconds, self.settings.max_wait_seconds))
        except TimeoutError:
            return None
        finally:
            self.workers.forget(positions)
        return waiter.outcomes

    def publisher_for(self, cause: CloudEvent, handler: str) -> Publisher:
        """What `context.publish` calls in one handler call for `cause`: follow-up events go through the same checks
        as ingress.

        Made for each delivery attempt. The n-th publish of an attempt gets the same id on every attempt (see
        `follow_up_id`), so what a failed attempt published is dropped as a duplicate when the retry publishes it
        again. A follow-up the registry refuses (a type nobody handles, data failing its schema) fails the handler
        for good: trying again cannot help. A store failure stays retryable.
        """
        published = 0

        async def publish(type: str, data: Any, *, subject: str | None = None) -> str:
            nonlocal published
            published += 1
            event = CloudEvent(
                id=follow_up_id(cause, handler, published),
                source=self.settings.event_source,
                type=type,
                subject=subject if subject is not None else cause.subject,
                datacontenttype="application/json",
                data=msgspec.to_builtins(data),
                extensions={"causationid": cause.id, **self.tracing.traceparent_of()},
            )
            try:
                await self.accept([event])
            except EventRejected as rejection:
                raise NonRetryableError(f"follow-up event refused: {_described(rejection)}") from rejection
            return event.id

        return publish


def _log_stored(positions: Sequence[int | None], prepared: Sequence[NewEvent]) -> None:
    for position, new in zip(positions, prepared, strict=True):
        event = new.event
        if position is None:
            log.debug("event_duplicate", event_id=event.id, event_type=event.type, source=event.source)
        else:
            log.debug(
                "event_stored", event_id=event.id, event_type=event.type, handlers=list(new.handlers), position=position
            )


def follow_up_id(cause: CloudEvent, handler: str, ordinal: int) -> str:
    """The id of the `ordinal`-th (from 1) follow-up `handler` publishes for `cause`: the same on every attempt,
    different for another cause, handler or ordinal."""
    # a JSON array keeps the parts apart whatever characters a source or id holds
    name = _encode_json([cause.source, cause.id, handler, ordinal]).decode()
    return str(uuid.uuid5(FOLLOW_UP_NAMESPACE, name))


def _where(index: int, events: Sequence[CloudEvent]) -> dict[str, Any]:
    """Which event of a batch an error is about; a single event needs no index."""
    return {"index": index} if len(events) > 1 else {}


def _field_error(message: str) -> dict[str, str]:
    match = _ERROR_PATH.match(message)
    path = (match.group("path") if match else None) or "$"
    return {"path": path, "message": match.group("message") if match else message}


def _described(rejection: EventRejected) -> str:
    """A rejection as one line for a dead letter's last_error: its detail and the fields at fault."""
    errors = rejection.body.get("errors", [])
    fields = "; ".join(f"{error['path']}: {error['message']}" for error in errors)
    return f"{rejection}: {fields}" if fields else str(rejection)
