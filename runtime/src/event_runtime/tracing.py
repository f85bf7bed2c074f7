"""Tracing: OpenTelemetry spans for an event's way through the service, off unless SERVICE_TRACING_ENDPOINT is set.

A trace continues from the event's CloudEvents distributed-tracing extension (`traceparent`, `tracestate`):
- `receive <type>` (ingress, per event): a child of the event's `traceparent`; an event that arrives without one
  is given the receive span's, so the rest of its way joins the same trace;
- `store` (the append of one request's events): a child of the first event's receive span, linked to the others;
- `process <type>` (one handler call): a child of the stored event's `traceparent`, as OpenTelemetry's messaging
  conventions have it (the context travels with the message, not with the request that brought it);
- a follow-up event a handler publishes carries the `process` span's context as its `traceparent`.

With tracing off every call here is a no-op returning None, and the service tests `enabled` before doing any work
for it, so the hot path pays one attribute read. OpenTelemetry is imported only when tracing is on (the `tracing`
extra).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .cloudevents import CloudEvent

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
INSTRUMENTATION_NAME = "event_runtime"


class Tracing:
    """Spans through `provider`, or nothing at all when `provider` is None."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self._provider = provider
        self.enabled = provider is not None
        if provider is None:
            return
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._tracer = provider.get_tracer(INSTRUMENTATION_NAME)
        self._propagator = TraceContextTextMapPropagator()

    def start_receive(self, event: CloudEvent) -> Span | None:
        """A receive span for `event`, started but not current; `end_spans` ends it once the store has answered."""
        if not self.enabled:
            return None
        from opentelemetry.trace import SpanKind

        return self._tracer.start_span(
            f"receive {event.type}",
            context=self._context_of(event),
            kind=SpanKind.CONSUMER,
            attributes=_attributes(event),
        )

    @contextlib.contextmanager
    def store(self, received: Sequence[Span | None]) -> Iterator[None]:
        spans = [span for span in received if span is not None]
        if not self.enabled or not spans:
            yield
            return
        from opentelemetry import trace
        from opentelemetry.trace import Link

        parent = trace.set_span_in_context(spans[0])
        links = [Link(span.get_span_context()) for span in spans[1:]]
        with self._tracer.start_as_current_span("store", context=parent, links=links):
            yield

    @contextlib.contextmanager
    def process(self, event: CloudEvent, handler: str, attempt: int) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        from opentelemetry.trace import SpanKind

        attributes: dict[str, str | int] = {**_attributes(event), "event.handler": handler, "event.attempt": attempt}
        with self._tracer.start_as_current_span(
            f"process {event.type}", context=self._context_of(event), kind=SpanKind.CONSUMER, attributes=attributes
        ):
            yield

    def traceparent_of(self, span: Span | None = None) -> dict[str, str]:
        """The `traceparent` (and `tracestate`) extension values of `span`, or of the current span; empty when off."""
        if not self.enabled:
            return {}
        from opentelemetry import trace

        carrier: dict[str, str] = {}
        context = trace.set_span_in_context(span) if span is not None else None
        self._propagator.inject(carrier, context=context)
        return carrier

    def shutdown(self) -> None:
        """Send what is buffered; called once at the service's stop."""
        if self._provider is not None:
            self._provider.shutdown()

    def _context_of(self, event: CloudEvent) -> Any:
        carrier = {
            name: value for name in (TRACEPARENT, TRACESTATE) if isinstance(value := event.extensions.get(name), str)
        }
        return self._propagator.extract(carrier) if carrier else None


def end_spans(spans: Sequence[Span | None], error: BaseException | None = None) -> None:
    """End the receive spans of one request, marking them failed when the store refused the events."""
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

    for span in spans:
        if span is None:
            continue
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()


def tracing_for(endpoint: str, service_name: str, service_version: str) -> Tracing:
    """Tracing to the OTLP/HTTP `endpoint` (e.g. http://collector:4318/v1/traces), or off when it is empty."""
    if not endpoint:
        return Tracing()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as error:  # a setting asks for what the install lacks: say which extra brings it
        raise RuntimeError(
            "SERVICE_TRACING_ENDPOINT is set but OpenTelemetry is not installed: depend on event-runtime[tracing]"
        ) from error
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name, "service.version": service_version})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return Tracing(provider)


def _attributes(event: CloudEvent) -> dict[str, str]:
    # the semantic conventions' CloudEvents attributes; no payload, no subject (it may carry personal data)
    return {
        "cloudevents.event_id": event.id,
        "cloudevents.event_source": event.source,
        "cloudevents.event_type": event.type,
    }
