"""Your handlers. Each module builds its own HandlerRegistry; list every module's registry here.

The service is built from `registry` alone: an event type that no handler here subscribes to is rejected.
"""

from event_runtime import HandlerRegistry

from . import orders

registry = HandlerRegistry().include(orders.handlers)

__all__ = ["registry"]
