"""The event-service runtime: CloudEvents ingress, the durable bus, workers, settings and metrics.

A service is its author's handler registry handed to `EventService`; the runtime never imports the service.
"""

from .__about__ import __version__
from .application import EventService
from .registry import HandlerContext, HandlerRegistry, NonRetryableError

__all__ = ["EventService", "HandlerContext", "HandlerRegistry", "NonRetryableError", "__version__"]
