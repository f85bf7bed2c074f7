"""pytest fixtures of the testing kit (enable with `pytest_plugins = ["{{ cookiecutter.package_name }}.testing.plugin"]`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from ..handlers import registry as project_registry
from ..runtime.service import Service
from .bus import service_client
from .factories import EventFactory

TEST_TOKEN = "test-token"  # noqa: S105 - a fixture value, not a secret


@pytest.fixture
def event_factory() -> EventFactory:
    return EventFactory()


@pytest.fixture
async def api(event_factory: EventFactory) -> AsyncIterator[tuple[httpx.AsyncClient, Service]]:
    """(client, service) for the project's own handlers on the in-memory bus, token `test-token` required."""
    async with service_client(project_registry, auth_tokens=TEST_TOKEN) as (client, service):
        client.headers["authorization"] = f"Bearer {TEST_TOKEN}"
        yield client, service
