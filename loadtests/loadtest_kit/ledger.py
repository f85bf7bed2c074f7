"""Counts of events the load test sent and the service accepted, per event type.

Each Locust process keeps one ledger. Workers ship what they counted since their last report with Locust's own
stats messages (so counts and request stats arrive together) and the master adds them up; a local run just keeps
its ledger.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# What is counted per event type:
#   sent            events put in a request, whatever the answer
#   accepted        new (not deliberately duplicated) events in requests answered 202 (or 200 under Prefer: wait):
#                   the service must process them
#   duplicates_sent events deliberately re-sent in requests answered 202/200: the service must skip them
#   rejected        events in requests answered with anything else
COUNTS = ("sent", "accepted", "duplicates_sent", "rejected")
# What the service said in its 202/200 bodies, over all types.
REPORTED = ("reported_accepted", "reported_duplicates")


@dataclass
class EventLedger:
    per_type: dict[str, Counter[str]] = field(default_factory=dict)
    reported: Counter[str] = field(default_factory=Counter)

    def count(self, event_type: str, what: str, amount: int = 1) -> None:
        self.per_type.setdefault(event_type, Counter())[what] += amount

    def count_reply(self, accepted: int, duplicates: int) -> None:
        self.reported["reported_accepted"] += accepted
        self.reported["reported_duplicates"] += duplicates

    def total(self, what: str) -> int:
        if what in REPORTED:
            return self.reported[what]
        return sum(counts[what] for counts in self.per_type.values())

    def take(self) -> dict:
        """Everything counted so far as plain data, and start again from zero (what a worker reports)."""
        data = {"per_type": {t: dict(c) for t, c in self.per_type.items()}, "reported": dict(self.reported)}
        self.per_type = {}
        self.reported = Counter()
        return data

    def add(self, data: dict) -> None:
        """Add a report taken from another process's ledger."""
        for event_type, counts in data.get("per_type", {}).items():
            self.per_type.setdefault(event_type, Counter()).update(counts)
        self.reported.update(data.get("reported", {}))

    def as_dict(self) -> dict:
        return {
            "per_type": {t: {what: c[what] for what in COUNTS} for t, c in sorted(self.per_type.items())},
            "reported": {what: self.reported[what] for what in REPORTED},
        }
