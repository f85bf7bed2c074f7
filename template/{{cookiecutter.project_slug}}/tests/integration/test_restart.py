"""The SQLite bus across restarts: whatever was stored is handled, whether the process stopped or died."""

import asyncio
from pathlib import Path

import msgspec

from {{ cookiecutter.package_name }}.runtime.registry import HandlerContext, HandlerRegistry
from {{ cookiecutter.package_name }}.testing import BusHarness, EventFactory, RecordingHandler

PING = "test.ping"


class Ping(msgspec.Struct):
    n: int


def recording_registry(handler: object) -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.on(PING, Ping, name="worker")(handler)  # type: ignore[arg-type]
    return registry


async def test_a_graceful_stop_mid_work_hands_unfinished_events_to_the_next_start(tmp_path: Path) -> None:
    bus_url = f"sqlite:///{tmp_path / 'events.db'}"
    events = EventFactory().many(40, PING, lambda n: {"n": n}, subject_for=lambda n: f"k{n % 5}")
    finished: list[str] = []
    release = asyncio.Event()

    async def stalls_after_ten(data: Ping, context: HandlerContext) -> None:
        if len(finished) >= 10:
            await release.wait()  # never set: these calls are still running at shutdown
        finished.append(context.event.id)

    first = BusHarness(recording_registry(stalls_after_ten), bus_url=bus_url, shutdown_timeout_seconds=0.05)
    async with first:
        await first.publish(*events)
        first.service.workers.start()
        for _ in range(200):
            if len(finished) >= 10:
                break
            await asyncio.sleep(0.01)
    assert len(finished) == 10

    second_handler = RecordingHandler("worker")
    async with BusHarness(recording_registry(second_handler), bus_url=bus_url) as second:
        await second.drain()
    assert set(finished) | set(second_handler.event_ids) == {event["id"] for event in events}
    assert not set(finished) & set(second_handler.event_ids)


async def test_claims_of_a_process_that_died_are_handed_out_again_after_their_lease(tmp_path: Path) -> None:
    bus_url = f"sqlite:///{tmp_path / 'events.db'}"
    events = EventFactory().many(12, PING, lambda n: {"n": n})
    crashed = BusHarness(recording_registry(RecordingHandler()), bus_url=bus_url, lease_seconds=0.2)
    await crashed.service.start(run_workers=False)
    await crashed.publish(*events)
    claimed = await crashed.service.bus.claim(5)
    assert len(claimed) == 5
    await crashed.service.bus._store.stop()  # type: ignore[attr-defined]  # dies without releasing its claims

    survivor_handler = RecordingHandler("worker")
    async with BusHarness(recording_registry(survivor_handler), bus_url=bus_url, lease_seconds=0.2) as survivor:
        await survivor.drain(timeout=5)
    assert sorted(survivor_handler.event_ids) == sorted(event["id"] for event in events)
