"""The testing kit's fixtures (`api`, `event_factory`) come with the runtime; they serve this service's handlers."""

import pytest
from event_runtime import HandlerRegistry

from {{ cookiecutter.package_name }}.handlers import registry


@pytest.fixture
def handler_registry() -> HandlerRegistry:
    return registry
