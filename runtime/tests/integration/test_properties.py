"""Properties over any mix of keys and duplicate deliveries: each event once per handler, keys in order."""

import asyncio

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_runtime.registry import HandlerRegistry
from event_runtime.testing import BusHarness, EventFactory, RecordingHandler

PING = "test.ping"


class Ping(msgspec.Struct):
    n: int


# each item: (ordering key, id number); repeated id numbers are re-sent duplicates
sends = st.lists(st.tuples(st.sampled_from(["a", "b", "c", None]), st.integers(0, 25)), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sends=sends, batch_size=st.integers(1, 10))
def test_every_distinct_event_is_handled_once_and_each_key_in_first_arrival_order(
    sends: list[tuple[str | None, int]], batch_size: int
) -> None:
    first, second = RecordingHandler("first"), RecordingHandler("second")
    registry = HandlerRegistry()
    registry.on(PING, Ping)(first)
    registry.on(PING, Ping)(second)
    factory = EventFactory()
    # an id keeps the key it was first sent with, as a producer re-sending the same event would
    key_of: dict[int, str | None] = {}
    events = []
    for key, number in sends:
        key = key_of.setdefault(number, key)
        events.append(factory.event(PING, {"n": number}, event_id=f"id-{number}", subject=key))

    async def run() -> None:
        async with BusHarness(registry, worker_concurrency=4) as bus:
            for start in range(0, len(events), batch_size):
                await bus.publish(*events[start : start + batch_size])
            await bus.drain()

    asyncio.run(run())
    distinct_in_arrival_order = list(dict.fromkeys(number for _, number in sends))
    for handler in (first, second):
        handled = [data.n for data, _ in handler.calls]
        assert sorted(handled) == sorted(distinct_in_arrival_order)
        for key in ("a", "b", "c"):
            expected = [n for n in distinct_in_arrival_order if key_of[n] == key]
            assert [data.n for data, context in handler.calls if context.event.subject == key] == expected
