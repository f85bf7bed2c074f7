"""A small service for the runtime's own tests: two order event types, three handlers, as a bake's example has."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from event_runtime import HandlerContext, HandlerRegistry, NonRetryableError

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


registry = HandlerRegistry()


@registry.on(ORDER_PLACED, OrderPlaced)
async def reserve_stock(order: OrderPlaced, context: HandlerContext) -> dict[str, Any]:
    if order.currency not in {"EUR", "USD", "GBP"}:
        raise NonRetryableError(f"currency {order.currency} is not supported")
    return {"reserved_for": order.order_id, "attempt": context.attempt}


@registry.on(ORDER_PLACED, OrderPlaced)
async def send_order_confirmation(order: OrderPlaced, context: HandlerContext) -> dict[str, Any]:
    return {"to": order.customer_id, "message": f"Order {order.order_id} confirmed"}


@registry.on(ORDER_CANCELLED, OrderCancelled)
async def release_stock(cancellation: OrderCancelled, context: HandlerContext) -> dict[str, Any]:
    return {"released_for": cancellation.order_id, "reason": cancellation.reason or "not given"}
