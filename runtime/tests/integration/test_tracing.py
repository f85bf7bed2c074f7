"""Tracing with OpenTelemetry's in-memory exporter: one event with a follow-up makes one connected trace, from the
event's own `traceparent` through receive, store and process, to the follow-up, which carries the new context."""

from __future__ import annotations

import asyncio

import msgspec
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from event_runtime.cloudevents import CloudEvent
from event_runtime.registry import HandlerContext, HandlerRegistry
from event_runtime.service import Service
from event_runtime.settings import Settings
from event_runtime.tracing import Tracing, tracing_for

ORDER = "test.order.placed"
RESERVED = "test.stock.reserved"
PRODUCER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN = "00f067aa0ba902b7"


class Order(msgspec.Struct):
    sku: str


def registry_with_a_follow_up(seen: list[CloudEvent]) -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.on(ORDER, Order)
    async def reserve(data: Order, context: HandlerContext) -> None:
        await context.publish(RESERVED, Order(sku=data.sku))

    @registry.on(RESERVED, Order)
    async def confirm(data: Order, context: HandlerContext) -> None:
        seen.append(context.event)

    return registry


async def traced_run(event: CloudEvent) -> tuple[dict[str, ReadableSpan], list[CloudEvent]]:
    """The finished spans by name (each request's `store` span under `store <first event type>`), and the
    follow-ups the second handler saw."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen: list[CloudEvent] = []
    service = Service(
        registry_with_a_follow_up(seen), Settings(bus_url="memory://", poll_seconds=0.01), tracing=Tracing(provider)
    )
    await service.start()
    try:
        await service.accept([event])
        for _ in range(500):
            if seen and len(exporter.get_finished_spans()) >= 6:  # 2 x (receive, store, process)
                break
            await asyncio.sleep(0.01)
    finally:
        await service.stop()
    finished = exporter.get_finished_spans()
    by_id = {span_id(span): span for span in finished}
    spans = {}
    for span in finished:
        name = span.name
        if name == "store":  # one per request: named here after the receive span it belongs to
            parent = span.parent
            assert parent is not None
            name = "store " + by_id[format(parent.span_id, "016x")].name.removeprefix("receive ")
        assert name not in spans, f"two spans named {name!r}"
        spans[name] = span
    return spans, seen


def parent_span_id(span: ReadableSpan) -> str | None:
    return None if span.parent is None else format(span.parent.span_id, "016x")


def span_id(span: ReadableSpan) -> str:
    return format(span.context.span_id, "016x")


async def test_one_event_and_its_follow_up_make_one_trace_continued_from_the_events_traceparent() -> None:
    event = CloudEvent(
        id="o-1",
        source="/shop",
        type=ORDER,
        data={"sku": "A"},
        extensions={"traceparent": f"00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01"},
    )
    spans, seen = await traced_run(event)

    assert sorted(spans) == sorted(
        f"{step} {kind}" for step in ("receive", "store", "process") for kind in (ORDER, RESERVED)
    )
    assert {format(span.context.trace_id, "032x") for span in spans.values()} == {PRODUCER_TRACE}
    receive, store, process = spans[f"receive {ORDER}"], spans[f"store {ORDER}"], spans[f"process {ORDER}"]
    assert parent_span_id(receive) == PRODUCER_SPAN
    assert parent_span_id(store) == span_id(receive)
    assert parent_span_id(process) == PRODUCER_SPAN  # the context travels with the event
    assert process.attributes is not None
    assert process.attributes["event.handler"] == "reserve"
    assert process.attributes["cloudevents.event_id"] == "o-1"

    (follow_up,) = seen
    assert follow_up.extensions["traceparent"] == f"00-{PRODUCER_TRACE}-{span_id(process)}-01"
    assert parent_span_id(spans[f"receive {RESERVED}"]) == span_id(process)
    assert parent_span_id(spans[f"process {RESERVED}"]) == span_id(process)


async def test_an_event_without_a_traceparent_is_given_its_receive_spans_so_its_handler_joins_the_trace() -> None:
    spans, _ = await traced_run(CloudEvent(id="o-2", source="/shop", type=ORDER, data={"sku": "B"}))
    receive, process = spans[f"receive {ORDER}"], spans[f"process {ORDER}"]
    assert receive.parent is None
    assert receive.context.trace_id == process.context.trace_id
    assert parent_span_id(process) == span_id(receive)


def test_tracing_is_off_without_an_endpoint_and_on_with_one() -> None:
    assert not tracing_for("", "svc", "1.0").enabled
    tracing = tracing_for("http://127.0.0.1:9/v1/traces", "svc", "1.0")
    try:
        assert tracing.enabled
    finally:
        tracing.shutdown()
