"""What the logs say about an event: JSON fields an operator can search by."""

import msgspec
from structlog.testing import capture_logs

from event_runtime.registry import HandlerRegistry
from event_runtime.testing import BusHarness, EventFactory, FlakyHandler, PoisonHandler

PING = "test.ping"


class Ping(msgspec.Struct):
    n: int


async def test_retries_and_dead_letters_are_logged_with_event_type_handler_and_attempt() -> None:
    registry = HandlerRegistry()
    registry.on(PING, Ping)(FlakyHandler(failures=1))
    registry.on(PING, Ping)(PoisonHandler())
    event = EventFactory().event(PING, {"n": 1}, event_id="logged-1")
    with capture_logs() as entries:
        async with BusHarness(registry) as bus:
            await bus.publish(event)
            await bus.drain()
    fields = ("event", "event_id", "event_type", "handler", "attempt")
    seen = [tuple(entry.get(field) for field in fields) for entry in entries if "event_id" in entry]
    assert ("event_retry_scheduled", "logged-1", PING, "flaky", 1) in seen
    assert ("event_dead_lettered", "logged-1", PING, "poison", 1) in seen
    assert ("event_processed", "logged-1", PING, "flaky", 2) in seen


async def test_at_debug_every_state_change_of_an_event_is_one_line_with_its_id_type_handler_and_attempt() -> None:
    registry = HandlerRegistry()
    registry.on(PING, Ping)(FlakyHandler(failures=1))
    secret_payload = 424242
    event = EventFactory().event(PING, {"n": secret_payload}, event_id="states-1")
    with capture_logs() as entries:
        async with BusHarness(registry) as bus:
            await bus.publish(event)
            await bus.publish(event)  # a duplicate
            await bus.drain()
    states = [
        (entry["event"], entry.get("handler"), entry.get("attempt"))
        for entry in entries
        if entry.get("event_id") == "states-1"
    ]
    assert states == [
        ("event_stored", None, None),
        ("event_duplicate", None, None),
        ("event_delivering", "flaky", 1),
        ("event_retry_scheduled", "flaky", 1),
        ("event_delivering", "flaky", 2),
        ("event_processed", "flaky", 2),
    ]
    assert all(entry.get("event_type") == PING for entry in entries if entry.get("event_id") == "states-1")
    assert str(secret_payload) not in repr(entries)  # no payload by default
