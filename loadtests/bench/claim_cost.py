#!/usr/bin/env python3
"""Cost of one worker claim on the SQLite bus as the backlog grows: times the bake's own CLAIMABLE query.

    PYTHONPATH=<bake>/src python loadtests/bench/claim_cost.py [--package event_service]

Fills an in-memory database made with the bake's SCHEMA with pending deliveries (two handlers per event, events
spread over a number of ordering keys) and times the claim of one batch. A claim that grows faster than the backlog
is what lets a burst of events starve ingest and handlers alike (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import importlib
import random
import sqlite3
import time

HANDLERS = ("reserve_stock", "send_order_confirmation")


def claim_milliseconds(schema: str, claimable: str, pending: int, keys: int, limit: int, repeat: int = 20) -> float:
    connection = sqlite3.connect(":memory:")
    connection.executescript(schema)
    rng = random.Random(7)  # noqa: S311  (test data)
    deliveries = []
    for seq in range(1, pending // len(HANDLERS) + 1):
        key = f"order-{rng.randrange(keys)}"
        connection.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", (seq, "/bench", str(seq), "t", b"{}", 0.0))
        deliveries += [(seq, handler, key) for handler in HANDLERS]
    connection.executemany(
        "INSERT INTO deliveries (event_seq, handler, ordering_key, state, attempts, due_at) VALUES (?, ?, ?, 0, 0, 0)",
        deliveries,
    )
    connection.commit()
    started = time.perf_counter()
    for _ in range(repeat):
        connection.execute(claimable, (1.0, limit)).fetchall()
    return 1000 * (time.perf_counter() - started) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="event_service")
    parser.add_argument("--limit", type=int, default=16, help="deliveries per claim (the worker concurrency)")
    args = parser.parse_args()
    bus = importlib.import_module(f"{args.package}.runtime.bus.sqlite")
    print(f"| pending deliveries | ordering keys | ms per claim of {args.limit} |\n|---:|---:|---:|")
    for pending, keys in ((1_000, 1_000), (10_000, 1_000), (30_000, 1_000), (30_000, 10)):
        cost = claim_milliseconds(bus.SCHEMA, bus.CLAIMABLE, pending, keys, args.limit)
        print(f"| {pending:,} | {keys:,} | {cost:.1f} |")


if __name__ == "__main__":
    main()
