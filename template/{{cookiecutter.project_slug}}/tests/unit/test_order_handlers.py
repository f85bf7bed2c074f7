"""Each example handler on its own: call it with data and a context, check what it returns or raises."""

import pytest
from event_runtime import NonRetryableError
from event_runtime.testing import EventFactory, make_context

from {{ cookiecutter.package_name }}.events import ORDER_CANCELLED, ORDER_PLACED, OrderCancelled, OrderPlaced
from {{ cookiecutter.package_name }}.handlers.orders import release_stock, reserve_stock, send_order_confirmation

PLACED = OrderPlaced(order_id="o-1", customer_id="c-9", amount_cents=1250, currency="EUR")


def context_for(event_type: str, data: object, attempt: int = 1):  # type: ignore[no-untyped-def]
    return make_context(EventFactory().cloud_event(event_type, data, subject="o-1"), attempt=attempt)


async def test_reserve_stock_reserves_for_the_order_and_reports_the_attempt() -> None:
    result = await reserve_stock(PLACED, context_for(ORDER_PLACED, PLACED, attempt=2))
    assert result == {"reserved_for": "o-1", "attempt": 2}


async def test_reserve_stock_refuses_an_unsupported_currency_for_good() -> None:
    order = OrderPlaced(order_id="o-2", customer_id="c", amount_cents=1, currency="JPY")
    with pytest.raises(NonRetryableError, match="JPY"):
        await reserve_stock(order, context_for(ORDER_PLACED, order))


async def test_send_order_confirmation_formats_the_amount() -> None:
    result = await send_order_confirmation(PLACED, context_for(ORDER_PLACED, PLACED))
    assert result == {"to": "c-9", "message": "Order o-1 confirmed: 12.50 EUR"}


async def test_release_stock_names_the_reason_or_says_none_was_given() -> None:
    with_reason = OrderCancelled(order_id="o-1", reason="customer asked")
    without = OrderCancelled(order_id="o-1")
    assert (await release_stock(with_reason, context_for(ORDER_CANCELLED, with_reason)))["reason"] == "customer asked"
    assert (await release_stock(without, context_for(ORDER_CANCELLED, without)))["reason"] == "not given"
