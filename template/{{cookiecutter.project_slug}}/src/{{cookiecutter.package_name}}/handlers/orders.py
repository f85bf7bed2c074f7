"""Example handlers for the order events. Two handlers subscribe to one type: each is retried on its own."""

from typing import Any

from event_runtime import HandlerContext, HandlerRegistry, NonRetryableError

from ..events import ORDER_CANCELLED, ORDER_PLACED, OrderCancelled, OrderPlaced

handlers = HandlerRegistry()

SUPPORTED_CURRENCIES = frozenset({"EUR", "USD", "GBP"})


@handlers.on(ORDER_PLACED, OrderPlaced)
async def reserve_stock(order: OrderPlaced, context: HandlerContext) -> dict[str, Any]:
    if order.currency not in SUPPORTED_CURRENCIES:
        # retrying cannot make an unsupported currency supported: dead-letter it for a person to look at
        raise NonRetryableError(f"currency {order.currency} is not supported")
    return {"reserved_for": order.order_id, "attempt": context.attempt}


@handlers.on(ORDER_PLACED, OrderPlaced)
async def send_order_confirmation(order: OrderPlaced, context: HandlerContext) -> dict[str, Any]:
    amount = f"{order.amount_cents / 100:.2f} {order.currency}"
    return {"to": order.customer_id, "message": f"Order {order.order_id} confirmed: {amount}"}


@handlers.on(ORDER_CANCELLED, OrderCancelled)
async def release_stock(cancellation: OrderCancelled, context: HandlerContext) -> dict[str, Any]:
    return {"released_for": cancellation.order_id, "reason": cancellation.reason or "not given"}
