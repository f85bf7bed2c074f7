"""Backpressure: over SERVICE_MAX_PENDING pending deliveries, POST /events answers 503 and stores nothing."""

import asyncio
import time
from collections.abc import Callable

import httpx
import msgspec
import pytest

from event_runtime import backlog
from event_runtime.registry import HandlerContext, HandlerRegistry
from event_runtime.testing import EventFactory, service_client

PING = "test.ping"
STRUCTURED = {"content-type": "application/cloudevents+json"}
BATCH = {"content-type": "application/cloudevents-batch+json"}


class Ping(msgspec.Struct):
    n: int


def held_registry(release: asyncio.Event) -> HandlerRegistry:
    """One handler that finishes only once `release` is set: its deliveries stay pending until then."""
    registry = HandlerRegistry()

    @registry.on(PING, Ping)
    async def held(data: Ping, context: HandlerContext) -> None:
        await release.wait()

    return registry


async def post(client: httpx.AsyncClient, events: list[dict[str, object]]) -> httpx.Response:
    body = events[0] if len(events) == 1 else events
    return await client.post(
        "/events", content=msgspec.json.encode(body), headers=STRUCTURED if len(events) == 1 else BATCH
    )


async def until(condition_met: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition_met():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_over_the_bound_new_events_get_503_with_retry_after_until_the_handlers_catch_up(
    event_factory: EventFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backlog, "REFRESH_EVERY_SECONDS", 0.01)
    release = asyncio.Event()
    async with service_client(held_registry(release), max_pending=2) as (client, service):
        first = [event_factory.event(PING, {"n": n}) for n in range(3)]
        assert (await post(client, first)).status_code == 202
        await until(lambda: service.backlog.full)  # the background count saw 3 pending, over 2

        refused = await post(client, [event_factory.event(PING, {"n": 3})])

        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"] == "backlog_full"
        assert "SERVICE_MAX_PENDING" in refused.json()["detail"]
        assert service.metrics.rejected_by_reason["backlog_full"]._value.get() == 1
        assert await service.bus.pending_count() == 3  # nothing of the refused request was stored
        release.set()
        await until(lambda: not service.backlog.full)
        assert (await post(client, [event_factory.event(PING, {"n": 3})])).status_code == 202


async def test_with_the_bound_at_zero_events_are_always_accepted(event_factory: EventFactory) -> None:
    release = asyncio.Event()
    async with service_client(held_registry(release), max_pending=0) as (client, service):
        assert (await post(client, [event_factory.event(PING, {"n": n}) for n in range(3)])).status_code == 202
        await service.backlog.refresh()

        assert (await post(client, [event_factory.event(PING, {"n": 3})])).status_code == 202
        assert await service.bus.pending_count() == 4
        release.set()
