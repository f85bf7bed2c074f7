"""Event bus backends behind one interface; `open_bus` picks one from SERVICE_BUS_URL."""

from __future__ import annotations

from ..settings import REDIS_SCHEMES, SQLITE_SCHEMES, Settings
from .base import DeadLetter, Delivery, EventBus, NewEvent

__all__ = ["DeadLetter", "Delivery", "EventBus", "NewEvent", "open_bus"]


def open_bus(settings: Settings) -> EventBus:
    """Build (not yet open) the bus SERVICE_BUS_URL names."""
    url = settings.bus_url
    if url.startswith(SQLITE_SCHEMES):
        from .sqlite import SQLiteBus

        return SQLiteBus.from_settings(settings)
    if url.startswith(REDIS_SCHEMES):
        try:
            from .redis_bus import RedisBus
        except ImportError as missing:  # the redis extra is not installed
            raise ValueError(
                f"SERVICE_BUS_URL names a Redis bus, but {missing.name!r} is not installed: "
                "install the runtime with its redis extra (event-runtime[redis])"
            ) from None
        return RedisBus.from_settings(settings)
    raise ValueError(f"SERVICE_BUS_URL: unsupported bus {url!r}")
