"""Handler deadlines: one watcher cuts off the calls that overran and leaves every other call and task alone."""

from __future__ import annotations

import asyncio
import time

import pytest

from event_runtime.deadlines import Deadlines


async def returns_after(seconds: float, value: str) -> str:
    await asyncio.sleep(seconds)
    return value


async def test_a_call_within_its_deadline_returns_its_result_and_the_watcher_stops_after_it() -> None:
    deadlines = Deadlines(0.5)
    assert await deadlines.run(returns_after(0.01, "done")) == "done"
    await asyncio.sleep(0.1)  # past the watcher's next check, which finds nothing running
    assert not any(task.get_name() == "handler-deadlines" for task in asyncio.all_tasks())


async def test_an_overrunning_call_raises_timeout_error_soon_after_its_deadline() -> None:
    deadlines = Deadlines(0.1)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await deadlines.run(returns_after(5, "late"))
    took = time.monotonic() - started
    assert 0.1 <= took < 0.5
    # the cancellation was the deadline's own: the task carries on as if nothing cancelled it
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    await asyncio.sleep(0.01)


async def test_only_the_calls_that_overran_are_cut_off() -> None:
    deadlines = Deadlines(0.2)
    outcomes = await asyncio.gather(
        deadlines.run(returns_after(0.01, "fast")),
        deadlines.run(returns_after(5, "slow")),
        deadlines.run(returns_after(0.05, "fast too")),
        return_exceptions=True,
    )
    assert outcomes[0] == "fast"
    assert isinstance(outcomes[1], TimeoutError)
    assert outcomes[2] == "fast too"


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines(5)
    call = asyncio.create_task(deadlines.run(returns_after(5, "never")))
    await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await deadlines.close()


async def test_a_call_that_swallows_the_cut_off_returns_and_leaves_its_task_uncancelled() -> None:
    async def ignores_cancellation() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return "swallowed"
        return "slept"

    deadlines = Deadlines(0.05)
    assert await deadlines.run(ignores_cancellation()) == "swallowed"
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    await asyncio.sleep(0.01)  # no cancellation left pending for the next await


async def test_close_stops_the_watcher_while_a_call_runs() -> None:
    deadlines = Deadlines(5)
    call = asyncio.create_task(deadlines.run(returns_after(0.2, "done")))
    await asyncio.sleep(0.01)
    assert any(task.get_name() == "handler-deadlines" for task in asyncio.all_tasks())
    await deadlines.close()
    assert not any(task.get_name() == "handler-deadlines" for task in asyncio.all_tasks())
    assert await call == "done"
