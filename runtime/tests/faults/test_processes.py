"""Faults of real processes: a kill -9 whose claims a restart takes back at once (the dead owner's lock is free),
a SIGTERM that drains with Retry-After and exits 0, and log records that stay one a line under many threads."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import httpx
import msgspec

from event_runtime.registry import HandlerContext, HandlerRegistry
from event_runtime.testing import BusHarness, EventFactory

from .process import Served, python

PING = "test.ping"
STRUCTURED = {"content-type": "application/cloudevents+json"}

CLAIM_AND_HANG = """
import asyncio, sys
import msgspec
from event_runtime.registry import HandlerRegistry
from event_runtime.testing import BusHarness, EventFactory

class Ping(msgspec.Struct):
    n: int

async def main() -> None:
    registry = HandlerRegistry()
    registry.on("test.ping", Ping, name="worker")(lambda data, context: None)
    harness = BusHarness(registry, bus_url=sys.argv[1], lease_seconds=600)
    await harness.service.start(run_workers=False)
    await harness.publish(*EventFactory().many(12, "test.ping", lambda n: {"n": n}, subject_for=lambda n: f"k{n % 3}"))
    claimed = await harness.service.bus.claim(5)
    print("claimed", len(claimed), flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


class Ping(msgspec.Struct):
    n: int


def wait_for_text(path: Path, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, path.read_text() if path.exists() else "no output"
        time.sleep(0.05)


async def test_a_restart_takes_back_the_claims_of_a_killed_process_without_waiting_for_their_lease(
    tmp_path: Path,
) -> None:
    bus_url = f"sqlite:///{tmp_path / 'events.db'}"
    output = tmp_path / "crashed.log"
    crashed = python(CLAIM_AND_HANG, bus_url, env={}, log=output)
    try:
        wait_for_text(output, "claimed 3")  # one head per key
    finally:
        crashed.send_signal(signal.SIGKILL)
        crashed.wait(10)
    handled: list[str] = []
    registry = HandlerRegistry()

    @registry.on(PING, Ping, name="worker")
    async def worker(data: Ping, context: HandlerContext) -> None:
        handled.append(context.event.id)

    started = time.monotonic()
    # the claims' lease is 600 s: only proof that their owner died lets them go now
    async with BusHarness(registry, bus_url=bus_url, lease_seconds=600) as survivor:
        await survivor.drain(timeout=10)
    assert len(set(handled)) == 12 and time.monotonic() - started < 10
    assert not any((tmp_path / "events.db.owners").glob("*.lock"))  # the dead owner's file and the survivor's


def test_sigterm_drains_with_retry_after_finishes_in_flight_requests_and_exits_0(tmp_path: Path) -> None:
    env = {
        "SERVICE_BUS_URL": f"sqlite:///{tmp_path / 'events.db'}",
        "SERVICE_SHUTDOWN_DRAIN_SECONDS": "1.0",
        "SERVICE_LOG_LEVEL": "INFO",
    }
    event = EventFactory().event(
        "com.example.order.placed", {"order_id": "o", "customer_id": "c", "amount_cents": 1, "currency": "EUR"}
    )
    with Served(env, tmp_path / "serve.log") as served:
        served.wait_ready()
        assert (
            httpx.post(f"{served.url}/events", content=json.dumps(event), headers=STRUCTURED, timeout=5).status_code
            == 202
        )
        signalled = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        refused = httpx.post(
            f"{served.url}/events", content=json.dumps({**event, "id": "late"}), headers=STRUCTURED, timeout=5
        )
        code = served.process.wait(20)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"] == "draining"
    assert code == 0, (served.log.read_text())[-2000:]
    assert time.monotonic() - signalled < 15
    lines = (tmp_path / "serve.log").read_text().splitlines()
    assert any(json.loads(line)["event"] == "service_stopped" for line in lines)


LOG_FROM_THREADS = """
import logging, sys, threading
from event_runtime.logs import configure_logging, get_logger

configure_logging("INFO")
structured, stdlib = get_logger("t"), logging.getLogger("uvicorn.error")
start = threading.Barrier(8)

def run(number: int) -> None:
    start.wait()
    for n in range(400):
        if number % 2:
            structured.info("structured", thread=number, n=n, pad="x" * (n % 50))
        else:
            stdlib.info("stdlib %s %s %s", number, n, "y" * (n % 50))

threads = [threading.Thread(target=run, args=(number,)) for number in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


def test_every_log_record_is_one_line_when_threads_log_through_structlog_and_the_stdlib_at_once(
    tmp_path: Path,
) -> None:
    output = tmp_path / "threads.log"
    process = python(LOG_FROM_THREADS, env={"PYTHONUNBUFFERED": "1"}, log=output)
    assert process.wait(60) == 0
    lines = output.read_text().split("\n")
    assert lines[-1] == ""
    records = [json.loads(line) for line in lines[:-1]]  # a line with two records, or half of one, fails here
    assert len(records) == 8 * 400


async def test_readiness_and_intake_need_no_lock_file(tmp_path: Path) -> None:
    """A store whose owners directory cannot be made still serves: claims fall back to their lease."""
    (tmp_path / "events.db.owners").write_text("a file where the directory would be\n")
    registry = HandlerRegistry()
    handled: list[str] = []

    @registry.on(PING, Ping, name="worker")
    async def worker(data: Ping, context: HandlerContext) -> None:
        handled.append(context.event.id)

    async with BusHarness(registry, bus_url=f"sqlite:///{tmp_path / 'events.db'}") as harness:
        await harness.publish(EventFactory().event(PING, {"n": 1}, event_id="one"))
        await harness.drain()
    await asyncio.sleep(0)
    assert handled == ["one"]
