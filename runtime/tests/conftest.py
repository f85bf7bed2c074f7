"""The runtime's tests serve the sample service through the testing kit's fixtures (its pytest11 plugin)."""

import pytest

from event_runtime import HandlerRegistry

from .sample_service import registry


@pytest.fixture
def handler_registry() -> HandlerRegistry:
    return registry
