"""The bus contract with fake handlers: routing, fan-out, retries, dead letters, replay, dedup, ordering."""

import asyncio
import contextvars
import os
import random
import threading
import time

import msgspec

from event_runtime.registry import HandlerContext, HandlerRegistry
from event_runtime.testing import (
    AlwaysFailingHandler,
    BusHarness,
    EventFactory,
    FlakyHandler,
    PoisonHandler,
    RecordingHandler,
)

PING = "test.ping"
PONG = "test.pong"


class Ping(msgspec.Struct):
    n: int


def registry_with(*handlers_by_type: tuple[str, object]) -> HandlerRegistry:
    registry = HandlerRegistry()
    for event_type, handler in handlers_by_type:
        registry.on(event_type, Ping)(handler)  # type: ignore[arg-type]
    return registry


async def test_each_event_reaches_only_the_handlers_of_its_type(bus_url: str, event_factory: EventFactory) -> None:
    pings, pongs = RecordingHandler("pings"), RecordingHandler("pongs")
    async with BusHarness(registry_with((PING, pings), (PONG, pongs)), bus_url=bus_url) as bus:
        await bus.publish(event_factory.event(PING, {"n": 1}), event_factory.event(PONG, {"n": 2}))
        await bus.drain()
    assert [data.n for data, _ in pings.calls] == [1]
    assert [data.n for data, _ in pongs.calls] == [2]


async def test_fan_out_gives_every_subscriber_each_event_once(bus_url: str, event_factory: EventFactory) -> None:
    first, second = RecordingHandler("first"), RecordingHandler("second")
    events = event_factory.many(20, PING, lambda n: {"n": n})
    async with BusHarness(registry_with((PING, first), (PING, second)), bus_url=bus_url) as bus:
        await bus.publish(*events)
        await bus.drain()
    expected = sorted(event["id"] for event in events)
    assert sorted(first.event_ids) == expected
    assert sorted(second.event_ids) == expected


async def test_a_failing_handler_is_retried_until_it_succeeds(bus_url: str, event_factory: EventFactory) -> None:
    flaky, steady = FlakyHandler(failures=2), RecordingHandler("steady")
    async with BusHarness(registry_with((PING, flaky), (PING, steady)), bus_url=bus_url, max_attempts=5) as bus:
        await bus.publish(event_factory.event(PING, {"n": 1}))
        await bus.drain()
        metrics = bus.service.metrics
        assert metrics.retried.labels("flaky", PING)._value.get() == 2
        assert metrics.processed.labels("flaky", PING)._value.get() == 1
        assert await bus.dead_letters() == []
    assert [context.attempt for _, context in flaky.calls] == [3]
    assert len(steady.calls) == 1  # the other subscriber was not run again


async def test_after_max_attempts_the_delivery_is_dead_lettered_with_its_last_error(
    bus_url: str, event_factory: EventFactory
) -> None:
    failing, steady = AlwaysFailingHandler(), RecordingHandler("steady")
    event = event_factory.event(PING, {"n": 1})
    async with BusHarness(registry_with((PING, failing), (PING, steady)), bus_url=bus_url, max_attempts=3) as bus:
        await bus.publish(event)
        await bus.drain()
        letters = await bus.dead_letters()
    assert failing.attempts == 3
    assert [(letter.event_id, letter.handler, letter.attempts) for letter in letters] == [
        (event["id"], "always_failing", 3)
    ]
    assert letters[0].last_error == "RuntimeError: downstream is down"
    assert steady.event_ids == [event["id"]]


async def test_a_non_retryable_error_goes_straight_to_the_dead_letters(
    bus_url: str, event_factory: EventFactory
) -> None:
    poison = PoisonHandler()
    async with BusHarness(registry_with((PING, poison)), bus_url=bus_url, max_attempts=5) as bus:
        await bus.publish(event_factory.event(PING, {"n": 1}))
        await bus.drain()
        letters = await bus.dead_letters()
    assert poison.attempts == 1
    assert letters[0].attempts == 1
    assert letters[0].last_error.startswith("NonRetryableError")


async def test_a_handler_slower_than_its_timeout_is_cut_off_and_dead_lettered(
    bus_url: str, event_factory: EventFactory
) -> None:
    calls = 0

    async def hangs(data: Ping, context: HandlerContext) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(5)

    registry = HandlerRegistry()
    registry.on(PING, Ping, name="hangs")(hangs)
    async with BusHarness(registry, bus_url=bus_url, max_attempts=2, handler_timeout_seconds=0.05) as bus:
        await bus.publish(event_factory.event(PING, {"n": 1}))
        await bus.drain(timeout=3)
        letters = await bus.dead_letters()
    assert calls == 2
    assert [letter.handler for letter in letters] == ["hangs"]
    assert letters[0].last_error.startswith("TimeoutError: the handler took longer than")


async def test_replayed_dead_letters_are_delivered_again(bus_url: str, event_factory: EventFactory) -> None:
    # fails its first 2 tries per event, so with max_attempts=2 it dead-letters, and succeeds once replayed
    recovering = FlakyHandler(failures=2, name="recovering")
    events = event_factory.many(3, PING, lambda n: {"n": n})
    async with BusHarness(registry_with((PING, recovering)), bus_url=bus_url, max_attempts=2) as bus:
        await bus.publish(*events)
        await bus.drain()
        assert len(await bus.dead_letters()) == 3
        assert await bus.replay([events[0]["id"]]) == 1
        await bus.drain()
        assert [letter.event_id for letter in await bus.dead_letters()] == [events[1]["id"], events[2]["id"]]
        assert await bus.replay(None) == 2
        await bus.drain()
        assert await bus.dead_letters() == []
    assert sorted(recovering.event_ids) == sorted(event["id"] for event in events)


async def test_an_event_seen_before_is_skipped_by_source_and_id(bus_url: str, event_factory: EventFactory) -> None:
    handler = RecordingHandler()
    original = event_factory.event(PING, {"n": 1}, event_id="same-id", source="/a")
    async with BusHarness(registry_with((PING, handler)), bus_url=bus_url) as bus:
        first = await bus.publish(original)
        again = await bus.publish(original, {**original, "data": {"n": 2}})
        other_source = await bus.publish({**original, "source": "/b"})
        await bus.drain()
    assert (first.accepted, first.duplicates) == (1, 0)
    assert (again.accepted, again.duplicates) == (0, 2)
    assert (other_source.accepted, other_source.duplicates) == (1, 0)
    assert sorted(data.n for data, _ in handler.calls) == [1, 1]


async def test_events_of_one_key_are_handled_in_arrival_order(bus_url: str, event_factory: EventFactory) -> None:
    seen: dict[str, list[int]] = {}

    async def slow_and_uneven(data: Ping, context: HandlerContext) -> None:
        await asyncio.sleep(random.uniform(0, 0.003))
        seen.setdefault(context.event.subject or "", []).append(data.n)

    registry = HandlerRegistry()
    registry.on(PING, Ping, name="uneven")(slow_and_uneven)
    events = event_factory.many(60, PING, lambda n: {"n": n}, subject_for=lambda n: f"key-{n % 4}")
    async with BusHarness(registry, bus_url=bus_url, worker_concurrency=8) as bus:
        await bus.publish(*events[:30])
        await bus.publish(*events[30:])
        await bus.drain()
    assert {key: order for key, order in seen.items()} == {
        f"key-{k}": [n for n in range(60) if n % 4 == k] for k in range(4)
    }


async def test_a_retried_event_holds_back_later_events_of_its_key(bus_url: str, event_factory: EventFactory) -> None:
    order: list[int] = []
    failures = {0: 2}

    async def fails_first_event_twice(data: Ping, context: HandlerContext) -> None:
        if failures.get(data.n, 0) > 0:
            failures[data.n] -= 1
            raise ConnectionError("not yet")
        order.append(data.n)

    registry = HandlerRegistry()
    registry.on(PING, Ping, name="strict")(fails_first_event_twice)
    events = event_factory.many(5, PING, lambda n: {"n": n}, subject_for=lambda _: "one-key")
    async with BusHarness(registry, bus_url=bus_url, worker_concurrency=8) as bus:
        await bus.publish(*events)
        await bus.drain()
    assert order == [0, 1, 2, 3, 4]


async def test_a_handler_publishes_follow_up_events_through_its_context(
    bus_url: str, event_factory: EventFactory
) -> None:
    pongs = RecordingHandler("pongs")

    async def answer(data: Ping, context: HandlerContext) -> None:
        await context.publish(PONG, Ping(n=data.n + 1))

    registry = HandlerRegistry()
    registry.on(PING, Ping, name="answer")(answer)
    registry.on(PONG, Ping)(pongs)
    ping = event_factory.event(PING, {"n": 1}, subject="k")
    async with BusHarness(registry, bus_url=bus_url) as bus:
        await bus.publish(ping)
        await bus.drain()
    [(data, context)] = pongs.calls
    assert data.n == 2
    assert context.event.extensions["causationid"] == ping["id"]
    assert context.event.subject == "k"


async def test_a_sync_handler_runs_in_a_worker_thread_not_on_the_event_loop(
    bus_url: str, event_factory: EventFactory
) -> None:
    threads: list[str] = []

    def blocking(data: Ping, context: HandlerContext) -> int:
        threads.append(threading.current_thread().name)
        return data.n

    registry = HandlerRegistry()
    registry.on(PING, Ping, name="blocking")(blocking)
    async with BusHarness(registry, bus_url=bus_url) as bus:
        await bus.publish(event_factory.event(PING, {"n": 1}))
        await bus.drain()
    assert len(threads) == 1
    assert threads[0] != threading.main_thread().name


REQUEST_LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("request_label", default="unset")


async def test_a_sync_handler_sees_the_context_variables_of_the_task_that_delivers_to_it(
    event_factory: EventFactory,
) -> None:
    seen: list[str] = []

    def reads_the_label(data: Ping, context: HandlerContext) -> None:
        seen.append(REQUEST_LABEL.get())

    registry = HandlerRegistry()
    registry.on(PING, Ping, name="reads_the_label")(reads_the_label)
    REQUEST_LABEL.set("set by the caller")  # the harness's delivery tasks start from this task's context
    async with BusHarness(registry) as bus:
        await bus.publish(event_factory.event(PING, {"n": 1}))
        await bus.drain()
    assert seen == ["set by the caller"]


async def test_sync_handlers_in_flight_each_get_a_thread_so_no_call_waits_out_its_deadline(
    event_factory: EventFactory,
) -> None:
    # more calls than asyncio's shared pool has threads (6 on 2 cores): there, the last ones waited for a thread,
    # and their deadline, counted from the call, ran out before they ended
    calls = min(32, (os.cpu_count() or 1) + 4) + 2
    running = peak = 0
    lock = threading.Lock()

    def slow(data: Ping, context: HandlerContext) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.3)
        with lock:
            running -= 1
        return data.n

    registry = HandlerRegistry()
    registry.on(PING, Ping, name="slow")(slow)
    events = event_factory.many(calls, PING, lambda n: {"n": n})
    async with BusHarness(registry, worker_concurrency=calls, handler_timeout_seconds=0.5, max_attempts=1) as bus:
        await bus.publish(*events)
        await bus.drain()
        assert await bus.dead_letters() == []
    assert peak == calls


async def test_an_id_is_accepted_again_once_its_dedup_window_has_passed(
    bus_url: str, event_factory: EventFactory
) -> None:
    handler = RecordingHandler()
    event = event_factory.event(PING, {"n": 1}, event_id="short-lived")
    async with BusHarness(registry_with((PING, handler)), bus_url=bus_url, dedup_retention_seconds=0.2) as bus:
        assert (await bus.publish(event)).accepted == 1
        assert (await bus.publish(event)).duplicates == 1
        await bus.drain()
        await asyncio.sleep(0.5)
        await bus.drain()  # the workers' next round forgets ids older than the window
        assert (await bus.publish(event)).accepted == 1
        await bus.drain()
    assert handler.event_ids == ["short-lived", "short-lived"]


async def test_a_handlers_own_max_attempts_overrides_the_default(bus_url: str, event_factory: EventFactory) -> None:
    impatient = AlwaysFailingHandler("impatient")
    registry = HandlerRegistry()
    registry.on(PING, Ping, name="impatient", max_attempts=2)(impatient)
    async with BusHarness(registry, bus_url=bus_url, max_attempts=6) as bus:
        await bus.publish(event_factory.event(PING, {"n": 1}))
        await bus.drain()
        [letter] = await bus.dead_letters()
    assert impatient.attempts == 2
    assert letter.attempts == 2
