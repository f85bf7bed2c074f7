"""Follow-up events a handler publishes through its context: one per publish whatever the retries, refused ones fail
the handler for good, a store failure is retried."""

import uuid
from typing import Any

import msgspec
import pytest

from event_runtime.bus import NewEvent
from event_runtime.registry import HandlerContext, HandlerRegistry
from event_runtime.testing import BusHarness, EventFactory, RecordingHandler

PING = "test.ping"
PONG = "test.pong"
NOBODY = "test.nobody.listens"


class Ping(msgspec.Struct):
    n: int


def answering_registry(answer: Any, pongs: RecordingHandler) -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.on(PING, Ping, name="answer")(answer)
    registry.on(PONG, Ping)(pongs)
    return registry


async def test_a_handler_that_publishes_then_fails_twice_leaves_one_follow_up_per_publish(
    bus_url: str, event_factory: EventFactory
) -> None:
    pongs = RecordingHandler("pongs")
    attempts: list[int] = []

    async def answer(data: Ping, context: HandlerContext) -> None:
        attempts.append(context.attempt)
        await context.publish(PONG, Ping(n=1))
        await context.publish(PONG, Ping(n=2))
        if context.attempt <= 2:
            raise ConnectionError("downstream is down after publishing")

    async with BusHarness(answering_registry(answer, pongs), bus_url=bus_url, max_attempts=5) as bus:
        await bus.publish(event_factory.event(PING, {"n": 0}))
        await bus.drain()
        metrics = bus.service.metrics

        assert attempts == [1, 2, 3]
        assert sorted(data.n for data, _ in pongs.calls) == [1, 2]
        assert metrics.accepted._value.get() == 3  # the ping and its two follow-ups, each stored once
        assert metrics.duplicates._value.get() == 4  # both follow-ups again on each of the two retries


async def test_follow_ups_of_two_causes_and_of_two_publishes_in_one_call_have_different_ids(
    event_factory: EventFactory,
) -> None:
    pongs = RecordingHandler("pongs")

    async def answer(data: Ping, context: HandlerContext) -> None:
        await context.publish(PONG, Ping(n=data.n))
        await context.publish(PONG, Ping(n=data.n))

    async with BusHarness(answering_registry(answer, pongs)) as bus:
        await bus.publish(event_factory.event(PING, {"n": 1}), event_factory.event(PING, {"n": 2}))
        await bus.drain()

    ids = pongs.event_ids
    assert len(ids) == 4
    assert len(set(ids)) == 4
    assert all(uuid.UUID(event_id).version == 5 for event_id in ids)


async def test_two_handlers_of_one_cause_publish_follow_ups_with_different_ids(event_factory: EventFactory) -> None:
    pongs = RecordingHandler("pongs")

    async def answer(data: Ping, context: HandlerContext) -> None:
        await context.publish(PONG, Ping(n=data.n))

    registry = answering_registry(answer, pongs)
    registry.on(PING, Ping, name="answer_too")(answer)
    async with BusHarness(registry) as bus:
        await bus.publish(event_factory.event(PING, {"n": 1}))
        await bus.drain()

    assert len(set(pongs.event_ids)) == 2


async def test_publishing_an_unknown_type_dead_letters_the_handler_on_its_first_attempt_naming_the_type(
    bus_url: str, event_factory: EventFactory
) -> None:
    async def answer(data: Ping, context: HandlerContext) -> None:
        await context.publish(NOBODY, Ping(n=data.n))

    async with BusHarness(
        answering_registry(answer, RecordingHandler("pongs")), bus_url=bus_url, max_attempts=5
    ) as bus:
        await bus.publish(event_factory.event(PING, {"n": 1}))
        await bus.drain()
        [letter] = await bus.dead_letters()
        rejected = bus.service.metrics.rejected_by_reason

        assert (letter.handler, letter.attempts) == ("answer", 1)
        assert letter.last_error.startswith("NonRetryableError: ")
        assert repr(NOBODY) in letter.last_error
        assert rejected["unknown_type"]._value.get() == 0  # no request was refused: a handler's publish is not one


async def test_publishing_data_that_fails_its_schema_dead_letters_the_handler_naming_the_type_and_field(
    event_factory: EventFactory,
) -> None:
    async def answer(data: Ping, context: HandlerContext) -> None:
        await context.publish(PONG, {"n": "many"})

    async with BusHarness(answering_registry(answer, RecordingHandler("pongs")), max_attempts=5) as bus:
        await bus.publish(event_factory.event(PING, {"n": 1}))
        await bus.drain()
        [letter] = await bus.dead_letters()

    assert letter.attempts == 1
    assert letter.last_error.startswith("NonRetryableError: ")
    assert repr(PONG) in letter.last_error
    assert "$.n: Expected `int`, got `str`" in letter.last_error


async def test_a_store_failure_while_publishing_is_retried_and_the_follow_up_stored_once(
    event_factory: EventFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    pongs = RecordingHandler("pongs")

    async def answer(data: Ping, context: HandlerContext) -> None:
        await context.publish(PONG, Ping(n=data.n))

    async with BusHarness(answering_registry(answer, pongs), max_attempts=5) as bus:
        append = bus.service.bus.append
        failures = [OSError("disk I/O error")]

        async def append_failing_once(events: list[NewEvent]) -> list[int | None]:
            if events[0].event.type == PONG and failures:
                raise failures.pop()
            return await append(events)

        monkeypatch.setattr(bus.service.bus, "append", append_failing_once)
        await bus.publish(event_factory.event(PING, {"n": 1}))
        await bus.drain()

        assert await bus.dead_letters() == []
        assert bus.service.metrics.retried.labels("answer", PING)._value.get() == 1
        assert [data.n for data, _ in pongs.calls] == [1]
