"""Cost of one event through a baked service's ASGI app, in process: no network, no load generator.

Drives the app's POST /events with N prepared requests (single events, 25 in flight, or batches of 100) against a
fresh SQLite store, as `serve --no-workers` would take them, and prints the CPU time per event. Mode `drain` posts
single events the same way, then runs the workers until every handler has processed every event: its figure less
`single`'s is the handlers' side (fan-out, claim, handler, complete) per event. With --callgrind it
runs itself twice under valgrind (N and 2N requests) and prints the instructions per event from the difference,
which leaves out start-up and, unlike seconds, barely moves with what else the machine is doing: the figure to
compare two versions of the service by on a shared machine (docs/performance.md).

Run with a python that has the runtime (event-runtime) and the bake's other dependencies installed, the bake's src
on PYTHONPATH (the Makefile's app-cost target): the app is the bake's `app.service`, run by the installed runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

from event_runtime.ingress import IngressApp
from event_runtime.logs import configure_logging
from event_runtime.server import freeze_startup_heap

TOKEN = "app-cost-token"  # noqa: S105  (a throwaway token for an in-process service)
IN_FLIGHT = 25  # single events: requests awaited together, so the store commits several per loop turn, as under load
BATCH_SIZE = 100
EVENT_TYPE = "com.example.order.placed"


def event_json(number: int, random_id: bool) -> str:
    """The bench's event (cloudevents.lua): com.example.order.placed with the bench's id schemes."""
    event_id = str(uuid.uuid4()) if random_id else f"app-cost-{number}"
    order = number % 1000
    return (
        f'{{"specversion":"1.0","id":"{event_id}","source":"/bench/app-cost","type":"{EVENT_TYPE}",'
        f'"subject":"order-{order}","datacontenttype":"application/json","data":{{"order_id":"order-{order}",'
        f'"customer_id":"customer-{number % 5000}","amount_cents":{number % 100000},"currency":"EUR"}}}}'
    )


def request_bodies(requests: int, per_request: int, random_id: bool) -> list[bytes]:
    numbers = iter(range(requests * per_request))
    if per_request == 1:
        return [event_json(next(numbers), random_id).encode() for _ in range(requests)]
    return [
        ("[" + ",".join(event_json(next(numbers), random_id) for _ in range(per_request)) + "]").encode()
        for _ in range(requests)
    ]


async def drive(package: str, bodies: list[bytes], batch: bool, drain: bool = False) -> float:
    """Post every body through the app (then, with `drain`, run the workers until each handler processed every
    event); the CPU seconds it took. Raises unless every answer is 202."""
    spec = importlib.import_module(f"{package}.app").service  # the EventService whose `serve` the bench runs
    settings = spec.settings()
    configure_logging(settings.log_level)
    app = IngressApp(spec.build(settings), run_workers=False)
    await app.service.start(run_workers=False)
    freeze_startup_heap()  # what `serve` does once it has started
    content_type = b"application/cloudevents-batch+json" if batch else b"application/cloudevents+json"
    statuses: list[int] = []

    async def post(body: bytes) -> None:
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return messages.pop()

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        headers = [
            (b"content-type", content_type),
            (b"authorization", f"Bearer {TOKEN}".encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await app({"type": "http", "path": "/events", "method": "POST", "headers": headers}, receive, send)

    in_flight = 1 if batch else IN_FLIGHT
    started = time.process_time()
    for start in range(0, len(bodies), in_flight):
        await asyncio.gather(*(post(body) for body in bodies[start : start + in_flight]))
    if drain:
        await processed_by_every_handler(app.service, len(bodies))
    cpu_seconds = time.process_time() - started
    await app.service.stop()
    if statuses.count(202) != len(bodies):
        raise RuntimeError(f"not every request was accepted: statuses {sorted(set(statuses))}")
    return cpu_seconds


async def processed_by_every_handler(service: Any, events: int) -> None:
    """Start the workers and wait until each of their handler series counted `events` (the bench's one type)."""
    service.workers.start()
    subscriptions = service.registry.for_type(EVENT_TYPE)
    counters = [service.metrics.series(s.handler_name, EVENT_TYPE).processed for s in subscriptions]
    deadline = time.monotonic() + 600
    while sum(counter._value.get() for counter in counters) < events * len(counters):
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not process every event within 600 s")
        await asyncio.sleep(0.01)


def run_on_serves_loop(main: Any) -> float:
    """Run `main` on the loop `serve` runs on (event_runtime/server.py): uvloop where it is installed. Until run 9
    this script used asyncio's own loop, whose timers and callbacks cost more (docs/performance.md, run 9)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def run_in_process(args: argparse.Namespace) -> float:
    """CPU microseconds per event for args.requests requests."""
    per_request = BATCH_SIZE if args.mode == "batch" else 1
    bodies = request_bodies(args.requests, per_request, args.ids == "uuid4")
    with tempfile.TemporaryDirectory(prefix="app-cost-") as store_dir:
        os.environ.update(
            SERVICE_AUTH_TOKENS=TOKEN,
            SERVICE_LOG_LEVEL="WARNING",
            SERVICE_BUS_URL=f"sqlite:///{store_dir}/events.db",
            # no workers run while the requests are posted: past the backpressure bound (two deliveries an event)
            # the service would answer 503, as run_bench.py's servers would without the same setting
            SERVICE_MAX_PENDING="0",
        )
        cpu_seconds = run_on_serves_loop(drive(args.package, bodies, args.mode == "batch", drain=args.mode == "drain"))
    return cpu_seconds / (args.requests * per_request) * 1e6


def instructions(args: argparse.Namespace, requests: int) -> int:
    """Instructions valgrind counts for a whole run of this script with `requests` requests."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        args.mode,
        "--requests",
        str(requests),
        "--ids",
        args.ids,
        "--package",
        args.package,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=3600).stderr
    match = re.search(r"Collected : (\d+)", output)
    if not match:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{output[-2000:]}")
    return int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("single", "batch", "drain"))
    parser.add_argument(
        "--requests",
        type=int,
        help="requests to post (default: 20,000 single events or 1,000 batches; with --callgrind 2,000 or 100)",
    )
    parser.add_argument("--ids", choices=("sequential", "uuid4"), default="sequential")
    parser.add_argument("--package", default="event_service", help="import package of the baked service")
    parser.add_argument(
        "--callgrind", action="store_true", help="instructions per event under valgrind (N and 2N requests)"
    )
    args = parser.parse_args(argv)
    if args.requests is None:  # valgrind runs the interpreter ~50 times slower
        args.requests = (100 if args.mode == "batch" else 2000) * (1 if args.callgrind else 10)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    per_request = BATCH_SIZE if args.mode == "batch" else 1
    if args.callgrind:
        if not shutil.which("valgrind"):
            parser.error("--callgrind needs valgrind on PATH (apt-get install valgrind)")
        extra_events = args.requests * per_request
        per_event = (instructions(args, 2 * args.requests) - instructions(args, args.requests)) / extra_events
        print(f"{args.mode}, {args.ids} ids: {per_event:,.0f} instructions per event (callgrind, {extra_events:,} events)")
    else:
        print(f"{args.mode}, {args.ids} ids: {run_in_process(args):.2f} CPU µs per event ({args.requests:,} requests)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
