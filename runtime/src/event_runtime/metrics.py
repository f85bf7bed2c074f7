"""Prometheus metrics of one service process. Names are part of the contract (docs/service-contract.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .cloudevents import RejectionReason

CONTENT_TYPE = CONTENT_TYPE_LATEST

# the *_created series double the scrape size and nothing here reads them
disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class HandlerSeries:
    """The series of one (handler, event type): looked up once, not with labels() on every delivery."""

    processed: Counter
    failed: Counter
    retried: Counter
    dead_lettered: Counter
    duration: Histogram


class Metrics:
    """One registry per service object, so tests can build several services in one process."""

    def __init__(self, handlers: Iterable[tuple[str, str]]) -> None:
        """`handlers` lists (handler name, event type); their series exist from the start, at zero."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.received = Counter("events_received", "Events that arrived in parseable requests", registry=self.registry)
        self.accepted = Counter("events_accepted", "Events stored for the first time", registry=self.registry)
        self.duplicates = Counter(
            "events_duplicates", "Events skipped: (source, id) seen within the window", registry=self.registry
        )
        self.rejected = Counter("events_rejected", "Rejected requests by reason", ["reason"], registry=self.registry)
        self.processed = Counter(
            "events_processed", "Deliveries a handler finished", ["handler", "type"], registry=self.registry
        )
        self.failed = Counter(
            "events_failed", "Handler attempts that raised", ["handler", "type"], registry=self.registry
        )
        self.retried = Counter(
            "events_retried",
            "Deliveries scheduled for another attempt",
            ["handler", "type"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "events_dead_lettered",
            "Deliveries moved to the dead-letter store",
            ["handler", "type"],
            registry=self.registry,
        )
        self.handler_duration = Histogram(
            "handler_duration_seconds", "Time spent in a handler call", ["handler"], registry=self.registry
        )
        self.pending = Gauge(
            "bus_pending_events", "Deliveries not yet completed or dead-lettered", registry=self.registry
        )
        # every reason's series exists from the start, at zero; keyed by label, as the scrape shows them
        self.rejected_by_reason = {reason.label: self.rejected.labels(reason.label) for reason in RejectionReason}
        self._series: dict[tuple[str, str], HandlerSeries] = {}
        for handler, event_type in handlers:
            self.series(handler, event_type)

    def series(self, handler: str, event_type: str) -> HandlerSeries:
        found = self._series.get((handler, event_type))
        if found is None:
            found = self._series[(handler, event_type)] = HandlerSeries(
                processed=self.processed.labels(handler, event_type),
                failed=self.failed.labels(handler, event_type),
                retried=self.retried.labels(handler, event_type),
                dead_lettered=self.dead_lettered.labels(handler, event_type),
                duration=self.handler_duration.labels(handler),
            )
        return found

    def reject(self, reason: RejectionReason) -> None:
        """Count one refused request; ingress calls this once per answer it sends (cloudevents.EventRejected)."""
        self.rejected_by_reason[reason.label].inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
