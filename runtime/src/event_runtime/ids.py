"""Ids for the events the service makes itself from nothing (the `send` command): time-ordered UUIDv7s.

Handlers' follow-ups are not made here: their ids must be the same on every attempt (service.follow_up_id).

Ids that grow with time insert next to each other in the store's dedup index; random UUIDv4s land anywhere in it,
which halves the SQLite bus's batch ingest (docs/event-bus.md). Python's own uuid.uuid7 arrives in 3.14.
"""

from __future__ import annotations

import os
import time
import uuid

_VERSION_7 = 0x7 << 76
_VARIANT_RFC_9562 = 0b10 << 62


def new_event_id() -> str:
    """A UUIDv7 (RFC 9562): Unix time in milliseconds in the first 48 bits, then version, variant and 74 random bits."""
    milliseconds = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    rand_a, rand_b = random_bits >> 68, random_bits & ((1 << 62) - 1)  # 12 and 62 of the 80 random bits
    value = (milliseconds & ((1 << 48) - 1)) << 80 | _VERSION_7 | rand_a << 64 | _VARIANT_RFC_9562 | rand_b
    return str(uuid.UUID(int=value))
