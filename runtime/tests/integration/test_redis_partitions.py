"""The Redis bus between processes: partitions shared fairly, taken over from a dead owner, trimmed safely."""

import asyncio

import msgspec
import pytest

from event_runtime.bus.redis_bus import RedisBus
from event_runtime.registry import HandlerRegistry
from event_runtime.testing import BusHarness, EventFactory, RecordingHandler

PING = "test.ping"
FAST_LEASE = 0.6  # seconds: maintenance ticks every 0.2 s, a dead owner's partitions free up within 0.6 s

pytestmark = pytest.mark.redis


class Ping(msgspec.Struct):
    n: int


def registry_with(handler: RecordingHandler) -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.on(PING, Ping)(handler)
    return registry


def redis_of(harness: BusHarness) -> RedisBus:
    bus = harness.service.bus
    assert isinstance(bus, RedisBus)
    return bus


async def wait_until(condition: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


async def test_two_consumers_split_the_partitions_between_them(redis_url: str) -> None:
    first = BusHarness(registry_with(RecordingHandler()), bus_url=redis_url, redis_lease_seconds=FAST_LEASE)
    second = BusHarness(registry_with(RecordingHandler()), bus_url=redis_url, redis_lease_seconds=FAST_LEASE)
    async with first, second:
        await first.service.bus.claim(1)
        assert len(redis_of(first)._owned) == redis_of(first).partitions
        await second.service.bus.claim(1)
        await wait_until(
            lambda: (
                len(redis_of(first)._owned) + len(redis_of(second)._owned) == 16 and len(redis_of(second)._owned) == 8
            )
        )
        assert not redis_of(first)._owned & redis_of(second)._owned


async def test_what_a_dead_owner_had_claimed_is_taken_over_after_its_lease(redis_url: str) -> None:
    events = EventFactory().many(30, PING, lambda n: {"n": n}, subject_for=lambda n: f"k{n % 6}")
    crashed = BusHarness(registry_with(RecordingHandler()), bus_url=redis_url, redis_lease_seconds=FAST_LEASE)
    await crashed.service.start(run_workers=False)
    await crashed.publish(*events)
    assert len(await crashed.service.bus.claim(4)) == 4
    dead = redis_of(crashed)
    assert dead._maintenance is not None
    dead._maintenance.cancel()  # dies: no more renewals, nothing released, its claims stay pending
    await dead._client.aclose()

    survivor_handler = RecordingHandler()
    async with BusHarness(
        registry_with(survivor_handler), bus_url=redis_url, redis_lease_seconds=FAST_LEASE
    ) as survivor:
        await survivor.drain(timeout=10)
    by_key: dict[str, list[int]] = {}
    for data, context in survivor_handler.calls:
        by_key.setdefault(context.event.subject or "", []).append(data.n)
    assert sorted(survivor_handler.event_ids) == sorted(event["id"] for event in events)
    assert by_key == {f"k{k}": [n for n in range(30) if n % 6 == k] for k in range(6)}


async def test_streams_are_trimmed_only_behind_what_every_group_acknowledged(redis_url: str) -> None:
    factory = EventFactory()
    async with BusHarness(registry_with(RecordingHandler()), bus_url=redis_url) as harness:
        bus = redis_of(harness)
        await harness.publish(*factory.many(400, PING, lambda n: {"n": n}, subject_for=lambda _: "one"))
        await harness.drain(timeout=20)
        await harness.publish(*factory.many(150, PING, lambda n: {"n": n}, subject_for=lambda _: "one"))
        held = await bus.claim(1)  # the first of the 150 is in flight; the rest wait behind it
        await bus._trim()
        [one_key] = harness.service.prepare([factory.cloud_event(PING, {"n": 0}, subject="one")])
        stream = bus._key("stream", bus.partition_of(one_key))
        length = await bus._client.xlen(stream)
        assert length < 550  # handled entries went
        assert length >= 150  # none of the unhandled ones did
        await bus.complete(held[0])
        await harness.drain(timeout=20)


async def test_a_duplicate_is_recognised_within_the_retention_window_only(redis_url: str) -> None:
    event = EventFactory().event(PING, {"n": 1})
    async with BusHarness(registry_with(RecordingHandler()), bus_url=redis_url, dedup_retention_seconds=0.5) as harness:
        assert (await harness.publish(event)).accepted == 1
        assert (await harness.publish(event)).duplicates == 1
        await asyncio.sleep(0.6)
        assert (await harness.publish(event)).accepted == 1


async def test_a_changed_partition_count_is_refused_while_deliveries_are_open(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with BusHarness(registry_with(RecordingHandler()), bus_url=redis_url) as harness:
        await harness.publish(EventFactory().event(PING, {"n": 1}))
    monkeypatch.setenv("SERVICE_REDIS_PARTITIONS", "4")
    with pytest.raises(RuntimeError, match="SERVICE_REDIS_PARTITIONS=4"):
        async with BusHarness(registry_with(RecordingHandler()), bus_url=redis_url):
            pass
