"""The testing kit: event factories, fake handlers and an in-memory bus, so handlers and the bus are tested
without a broker. Use the fixtures by adding `pytest_plugins = ["{{ cookiecutter.package_name }}.testing.plugin"]`
to your conftest.py."""

from .bus import BusHarness, service_client
from .factories import EventFactory
from .fakes import (
    AlwaysFailingHandler,
    FlakyHandler,
    PoisonHandler,
    RecordingHandler,
    RecordingPublisher,
    make_context,
)

__all__ = [
    "AlwaysFailingHandler",
    "BusHarness",
    "EventFactory",
    "FlakyHandler",
    "PoisonHandler",
    "RecordingHandler",
    "RecordingPublisher",
    "make_context",
    "service_client",
]
