"""Example events: an order placed and an order cancelled. Replace them with your own."""

from typing import Annotated

import msgspec

ORDER_PLACED = "com.example.order.placed"
ORDER_CANCELLED = "com.example.order.cancelled"

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class OrderPlaced(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    order_id: NonEmpty
    customer_id: NonEmpty
    amount_cents: Annotated[int, msgspec.Meta(ge=0)]
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]


class OrderCancelled(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    order_id: NonEmpty
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
