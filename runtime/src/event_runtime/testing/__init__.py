"""The testing kit: event factories, fake handlers and an in-memory bus, so handlers and the bus are tested
without a broker. Its pytest fixtures (`api`, `event_factory`) load by themselves wherever the runtime is installed;
`api` serves the registry your conftest.py's `handler_registry` fixture returns."""

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
