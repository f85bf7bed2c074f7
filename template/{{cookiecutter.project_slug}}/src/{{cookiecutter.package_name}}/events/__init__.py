"""Your event data schemas: one msgspec Struct per event type's `data`. Edit freely."""

from .orders import ORDER_CANCELLED, ORDER_PLACED, OrderCancelled, OrderPlaced

__all__ = ["ORDER_CANCELLED", "ORDER_PLACED", "OrderCancelled", "OrderPlaced"]
