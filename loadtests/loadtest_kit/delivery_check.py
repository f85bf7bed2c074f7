"""The "nothing lost" check: accepted events against what the handlers did, read from the service's metrics.

For every event type T the run got accepted, and every handler h that handles T, the increase over the run of
`events_processed_total{handler=h,type=T}` plus `events_dead_lettered_total{handler=h,type=T}` must equal the
number of accepted (non-duplicate) events of type T, once `bus_pending_events` is 0 on every instance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .event_mix import EventMix
from .ledger import EventLedger
from .prometheus import MetricsSnapshot, read_metrics
from .thresholds import Thresholds


@dataclass
class DeliveryReport:
    breaches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # informative lines: duplicates, extra processing
    per_handler: list[dict] = field(default_factory=list)


def wait_until_drained(
    urls: list[str],
    timeout: float,
    read: Callable[[list[str]], MetricsSnapshot] = read_metrics,
    poll_seconds: float = 0.25,
) -> tuple[MetricsSnapshot, bool]:
    """Read the metrics until every instance reports `bus_pending_events` 0 or `timeout` runs out.

    Returns the last snapshot and whether the bus drained. Reading errors propagate.
    """
    deadline = time.monotonic() + timeout
    while True:
        snapshot = read(urls)
        drained = all(snapshot.pending.get(url) == 0 for url in urls)
        if drained or time.monotonic() >= deadline:
            return snapshot, drained
        time.sleep(poll_seconds)


def check_delivery(
    before: MetricsSnapshot,
    after: MetricsSnapshot,
    drained: bool,
    ledger: EventLedger,
    mix: EventMix,
    thresholds: Thresholds,
    drain_seconds: float,
) -> DeliveryReport:
    """Compare what the service accepted with what its handlers processed or dead-lettered during the run."""
    report = DeliveryReport()
    went_down = _counters_that_went_down(before, after)
    if went_down:
        # counters only grow: a smaller reading is another process's (a balancer picked another host) or a restart's
        report.breaches.append(
            f"counters went down between the readings before and after the run ({', '.join(went_down)}): they come "
            "from another instance or a restarted one, so nothing can be vouched for; behind a balancer read every "
            "instance (make loadtest ENV=<env>, or --metrics-url URL1,URL2)"
        )
    if not drained:
        stuck = {url: after.pending.get(url) for url in sorted(set(after.pending) | set(before.pending))}
        detail = ", ".join(
            f"{url}={'missing' if value is None else format(value, 'g')}" for url, value in stuck.items() if value != 0
        )
        report.breaches.append(
            f"bus not drained: bus_pending_events still non-zero {drain_seconds:g} s after the run "
            f"({detail or 'bus_pending_events missing'})"
        )
    for event_type, counts in sorted(ledger.per_type.items()):
        accepted = counts["accepted"]
        kind = mix.kind_of(event_type)
        handlers = set(after.handlers_of(event_type)) | set(before.handlers_of(event_type))
        if kind is not None and kind.handlers is not None:
            handlers |= set(kind.handlers)
        if not handlers:
            if accepted and not (kind is not None and kind.handlers == ()):
                report.breaches.append(
                    f"cannot verify {accepted} accepted {event_type} events: no handler metrics for this type "
                    "(list its handlers in the event mix, or [] if it has none)"
                )
            continue
        for handler in sorted(handlers):
            processed = _increase(before, after, "events_processed_total", handler, event_type)
            dead = _increase(before, after, "events_dead_lettered_total", handler, event_type)
            lost = accepted - (processed + dead)
            report.per_handler.append(
                {
                    "type": event_type,
                    "handler": handler,
                    "accepted": accepted,
                    "processed": processed,
                    "dead_lettered": dead,
                    "lost": max(lost, 0),
                }
            )
            if thresholds.max_lost_events is not None and lost > thresholds.max_lost_events:
                what = "lost" if drained else "still unprocessed (bus not drained)"
                report.breaches.append(
                    f"{what}: {lost:g} of {accepted} accepted {event_type} events in handler {handler} "
                    f"(processed {processed:g}, dead-lettered {dead:g})"
                )
            elif lost < 0:
                report.notes.append(
                    f"handler {handler} did {-lost:g} more {event_type} events than this run got accepted "
                    "(other traffic, or requests cut off at the end of the run)"
                )
            if dead and thresholds.max_dead_lettered_events is not None and dead > thresholds.max_dead_lettered_events:
                report.breaches.append(
                    f"{dead:g} {event_type} events dead-lettered by handler {handler} "
                    f"> max_dead_lettered_events {thresholds.max_dead_lettered_events}"
                )
    _check_duplicates(before, after, ledger, report)
    return report


def _check_duplicates(
    before: MetricsSnapshot, after: MetricsSnapshot, ledger: EventLedger, report: DeliveryReport
) -> None:
    sent = ledger.total("duplicates_sent")
    skipped_in_replies = ledger.total("reported_duplicates")
    skipped_in_metrics = after.totals["events_duplicates_total"] - before.totals["events_duplicates_total"]
    report.notes.append(
        f"duplicates: sent {sent}, skipped by the service {skipped_in_replies} (202 bodies), "
        f"events_duplicates_total +{skipped_in_metrics:g}"
    )
    if skipped_in_replies < sent:
        report.breaches.append(
            f"service took {sent - skipped_in_replies} of {sent} deliberate duplicates as new events"
        )


def _counters_that_went_down(before: MetricsSnapshot, after: MetricsSnapshot) -> list[str]:
    lower = [
        f"{metric}{{handler={handler},type={event_type}}} {count:g} -> {now:g}"
        for metric, counts in sorted(before.per_handler.items())
        for (handler, event_type), count in sorted(counts.items())
        if (now := after.handler_count(metric, handler, event_type)) < count
    ]
    lower += [
        f"{name} {count:g} -> {after.totals[name]:g}"
        for name, count in sorted(before.totals.items())
        if after.totals[name] < count
    ]
    return lower


def _increase(before: MetricsSnapshot, after: MetricsSnapshot, metric: str, handler: str, event_type: str) -> float:
    return after.handler_count(metric, handler, event_type) - before.handler_count(metric, handler, event_type)
