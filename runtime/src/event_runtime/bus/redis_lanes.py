"""What one process holds of the partitions it owns: per (partition, handler) the entries read but not yet done.

Pure bookkeeping, no I/O: which entries are due and may run now without overtaking an earlier event of the
same ordering key for the same handler.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .base import Delivery


@dataclass(slots=True)
class RedisDelivery(Delivery):
    """A Delivery that knows where its stream entry is, so it can be acknowledged."""

    partition: int = 0
    entry_id: str = ""


@dataclass(slots=True)
class Entry:
    """A stream entry owed to one handler, read into this process."""

    entry_id: str
    seq: int
    key: str | None
    body: bytes
    attempts: int = 0
    due_at: float = 0.0
    in_flight: bool = False


@dataclass
class Lane:
    """The open entries of one handler on one partition, in stream order."""

    partition: int
    handler: str
    entries: dict[str, Entry] = field(default_factory=dict)
    in_flight: int = 0  # kept as a count: claim asks for it on every lane, every round

    def add(self, entry: Entry) -> None:
        if entry.entry_id in self.entries:
            return
        last = next(reversed(self.entries), None)
        self.entries[entry.entry_id] = entry
        self.in_flight += entry.in_flight
        if last is not None and stream_order(entry.entry_id) < stream_order(last):
            # a pending entry claimed from an earlier owner is older than what was read: keep stream order
            self.entries = dict(sorted(self.entries.items(), key=lambda item: stream_order(item[0])))

    @property
    def waiting(self) -> int:
        return len(self.entries) - self.in_flight

    def take_due(self, now: float, limit: int) -> Iterator[Entry]:
        """Mark up to `limit` entries in flight: due, and no earlier entry of their key still open."""
        if limit <= 0 or self.waiting == 0:
            return
        held_keys: set[str] = set()
        taken = 0
        # the caller adds nothing to this lane between items, so the dict is walked in place, not copied
        for entry in self.entries.values():
            if taken >= limit:
                return
            runnable = not entry.in_flight and entry.due_at <= now
            if entry.key is not None:
                if entry.key in held_keys:
                    continue
                held_keys.add(entry.key)  # this entry is open: later ones of its key wait for it
            if runnable:
                entry.in_flight = True
                self.in_flight += 1
                taken += 1
                yield entry

    def finish(self, entry_id: str) -> None:
        entry = self.entries.pop(entry_id, None)
        if entry is not None and entry.in_flight:
            self.in_flight -= 1

    def reschedule(self, entry_id: str, attempts: int, due_at: float) -> None:
        entry = self.entries.get(entry_id)
        if entry is not None:
            if entry.in_flight:
                self.in_flight -= 1
            entry.attempts, entry.due_at, entry.in_flight = attempts, due_at, False


def stream_order(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)
