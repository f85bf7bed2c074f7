#!/usr/bin/env python3
"""Cost of one worker claim on the runtime's SQLite bus as the backlog grows, through the bus's own API.

    python loadtests/bench/claim_cost.py   # with a python that has event-runtime installed: its bus is measured

Appends a backlog of events (two handlers each, spread over a number of ordering keys) to an in-memory SQLiteBus,
then times claim + complete of one batch at a time. A claim that grows with the backlog is what lets a burst of
events starve ingest and handlers alike (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from event_runtime.bus.base import NewEvent
from event_runtime.bus.sqlite import FAN_OUT_LIMIT, SQLiteBus
from event_runtime.cloudevents import CloudEvent

HANDLERS = ("reserve_stock", "send_order_confirmation")
BACKLOGS = ((1_000, 1_000), (10_000, 1_000), (30_000, 1_000), (30_000, 10))  # (pending deliveries, ordering keys)


async def claim_milliseconds(pending: int, keys: int, limit: int, repeat: int = 20) -> float:
    bus = SQLiteBus(":memory:")
    await bus.open()
    try:
        rng = random.Random(7)  # noqa: S311  (test data)
        events = [
            NewEvent(
                event=CloudEvent(
                    id=str(n), source="/bench", type="com.example.order.placed", subject=f"order-{rng.randrange(keys)}"
                ),
                body=b"{}",
                handlers=HANDLERS,
            )
            for n in range(pending // len(HANDLERS))
        ]
        for start in range(0, len(events), 1000):
            await bus.append(events[start : start + 1000])
        # claims also make the deliveries of stored events (the fan-out, FAN_OUT_LIMIT events a claim): make them
        # all first, so the timed claims measure claiming against the backlog, not the fan-out of it
        for _ in range(len(events) // FAN_OUT_LIMIT + 1):
            await bus.claim(0)
        started = time.perf_counter()
        claimed = 0
        for _ in range(repeat):
            deliveries = await bus.claim(limit)
            claimed += len(deliveries)
            for delivery in deliveries:  # settle them, as a worker would, so the next claim sees a moving queue
                await bus.complete(delivery)
        if claimed == 0:
            raise RuntimeError("the bus gave out no delivery: this script no longer matches the bus")
        return 1000 * (time.perf_counter() - started) / repeat
    finally:
        await bus.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=16, help="deliveries per claim (the worker concurrency)")
    args = parser.parse_args()
    print(f"| pending deliveries | ordering keys | ms per claim of {args.limit} and its completions |")
    print("|---:|---:|---:|")
    for pending, keys in BACKLOGS:
        cost = asyncio.run(claim_milliseconds(pending, keys, args.limit))
        print(f"| {pending:,} | {keys:,} | {cost:.1f} |")


if __name__ == "__main__":
    main()
