"""A real service on the in-memory bus (or a SQLite file), driven step by step from a test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx

from ..bus import DeadLetter
from ..cloudevents import CloudEvent, event_from_mapping
from ..ingress import IngressApp
from ..registry import HandlerRegistry
from ..service import Accepted, Service
from ..settings import Settings

# fast retries and polling so tests do not sleep; every value can be overridden per harness
TEST_SETTINGS: dict[str, Any] = {
    "bus_url": "memory://",
    "retry_base_seconds": 0.001,
    "retry_max_seconds": 0.01,
    "poll_seconds": 0.01,
    "shutdown_drain_seconds": 0.0,
    "lease_seconds": 30.0,
}


class BusHarness:
    """`publish` events, then `drain` until every delivery is done; workers run only inside `drain`."""

    def __init__(self, registry: HandlerRegistry, **settings: Any) -> None:
        self.service = Service(registry, Settings(**{**TEST_SETTINGS, **settings}))

    async def __aenter__(self) -> BusHarness:
        await self.service.start(run_workers=False)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.service.stop()

    async def publish(self, *events: dict[str, Any] | CloudEvent) -> Accepted:
        parsed = [event if isinstance(event, CloudEvent) else event_from_mapping(event) for event in events]
        return await self.service.accept(parsed)

    async def drain(self, timeout: float = 5.0) -> None:
        """Run the workers until nothing is pending (retries included); TimeoutError if that takes too long."""
        deadline = time.monotonic() + timeout
        while True:
            ran = await self.service.workers.run_once()
            if not ran:
                if await self.service.bus.pending_count() == 0:
                    return
                await asyncio.sleep(0.002)  # a retry is not due yet
            if time.monotonic() > deadline:
                pending = await self.service.bus.pending_count()
                raise TimeoutError(f"{pending} deliveries still pending after {timeout}s")

    async def dead_letters(self) -> list[DeadLetter]:
        return await self.service.bus.dead_letters()

    async def replay(self, event_ids: Sequence[str] | None = None) -> int:
        return await self.service.bus.replay(event_ids)


@asynccontextmanager
async def service_client(
    registry: HandlerRegistry, **settings: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Service]]:
    """An HTTP client wired to a running service (workers on) without a socket."""
    service = Service(registry, Settings(**{**TEST_SETTINGS, **settings}))
    await service.start(run_workers=True)
    transport = httpx.ASGITransport(app=IngressApp(service))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
            yield client, service
    finally:
        await service.stop()
