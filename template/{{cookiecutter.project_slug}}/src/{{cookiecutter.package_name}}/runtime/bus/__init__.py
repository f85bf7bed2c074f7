"""Event bus backends behind one interface; `open_bus` picks one from SERVICE_BUS_URL."""

from __future__ import annotations

from ..settings import Settings
from .base import DeadLetter, Delivery, EventBus, NewEvent

__all__ = ["DeadLetter", "Delivery", "EventBus", "NewEvent", "open_bus"]


def open_bus(settings: Settings) -> EventBus:
    """Build (not yet open) the bus SERVICE_BUS_URL names."""
    url = settings.bus_url
    if url.startswith(("sqlite:///", "memory://")):
        from .sqlite import SQLiteBus

        return SQLiteBus.from_settings(settings)
{%- if cookiecutter.event_bus == "redis" %}
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis_bus import RedisBus

        return RedisBus.from_settings(settings)
{%- endif %}
    raise ValueError(f"SERVICE_BUS_URL: unsupported bus {url!r}")
