"""Your handlers on a real bus in memory (the testing kit's BusHarness): retries, dead letters, ordering."""

from event_runtime import HandlerRegistry
from event_runtime.testing import BusHarness, EventFactory, FlakyHandler, RecordingHandler

from {{ cookiecutter.package_name }}.events import ORDER_CANCELLED, ORDER_PLACED, OrderCancelled, OrderPlaced
from {{ cookiecutter.package_name }}.handlers import registry


def order(order_id: str, currency: str = "EUR") -> dict[str, object]:
    return {"order_id": order_id, "customer_id": "c-1", "amount_cents": 1250, "currency": currency}


async def test_an_order_in_an_unsupported_currency_is_dead_lettered_by_reserve_stock_only() -> None:
    events = EventFactory()
    async with BusHarness(registry) as bus:
        await bus.publish(events.event(ORDER_PLACED, order("o-1")), events.event(ORDER_PLACED, order("o-2", "JPY")))
        await bus.drain()
        letters = await bus.dead_letters()
    assert [(letter.handler, letter.attempts) for letter in letters] == [("reserve_stock", 1)]
    assert "JPY" in (letters[0].last_error or "")


async def test_a_handler_that_fails_twice_is_retried_until_it_succeeds() -> None:
    flaky = FlakyHandler(failures=2)
    with_flaky = HandlerRegistry().include(registry)
    with_flaky.on(ORDER_CANCELLED, OrderCancelled)(flaky)
    async with BusHarness(with_flaky) as bus:
        await bus.publish(EventFactory().event(ORDER_CANCELLED, {"order_id": "o-1"}))
        await bus.drain()
        assert await bus.dead_letters() == []
    assert flaky.attempts == {flaky.event_ids[0]: 3}


async def test_events_of_one_order_reach_a_handler_in_the_order_they_were_published() -> None:
    recorder = RecordingHandler()
    recording = HandlerRegistry()
    recording.on(ORDER_PLACED, OrderPlaced)(recorder)
    events = EventFactory()
    published = [events.event(ORDER_PLACED, order(f"o-{n}"), subject="customer-1") for n in range(20)]
    async with BusHarness(recording) as bus:
        await bus.publish(*published)
        await bus.drain()
    assert recorder.ids_for_subject("customer-1") == [event["id"] for event in published]
