"""pytest fixtures of the testing kit, loaded by the `event_runtime` pytest11 entry point wherever it is installed.

A service's tests hand it their registry by overriding one fixture in their conftest.py:

    @pytest.fixture
    def handler_registry() -> HandlerRegistry:
        return registry
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from ..registry import HandlerRegistry
from ..service import Service
from .bus import service_client
from .factories import EventFactory

TEST_TOKEN = "test-token"  # noqa: S105 - a fixture value, not a secret


@pytest.fixture
def handler_registry() -> HandlerRegistry:
    """The registry the `api` fixture serves: override it in your conftest.py to return your service's registry."""
    raise pytest.UsageError(
        "the `api` fixture needs your handlers: define a `handler_registry` fixture in conftest.py that returns "
        "your service's HandlerRegistry"
    )


@pytest.fixture
def event_factory() -> EventFactory:
    return EventFactory()


@pytest.fixture
async def api(handler_registry: HandlerRegistry) -> AsyncIterator[tuple[httpx.AsyncClient, Service]]:
    """(client, service) for `handler_registry` on the in-memory bus, token `test-token` required."""
    async with service_client(handler_registry, auth_tokens=TEST_TOKEN) as (client, service):
        client.headers["authorization"] = f"Bearer {TEST_TOKEN}"
        yield client, service
