"""The figures of a fault run: what was sent, accepted (202), handled, lost, handled twice, and recovery times."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .load import LoadDriver, Send
from .probe import handled as read_handled


@dataclass
class Tally:
    sends: list[Send]
    handled_counts: collections.Counter[str]
    marks: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, source: LoadDriver | Iterable[Send], handled_counts: collections.Counter[str],
           marks: dict[str, float] | None = None) -> Tally:
        if isinstance(source, LoadDriver):
            return cls(source.snapshot(), handled_counts, dict(source.marks) | (marks or {}))
        return cls(list(source), handled_counts, marks or {})

    @property
    def sent(self) -> int:
        return len({send.event_id for send in self.sends})

    @property
    def requests(self) -> int:
        return len(self.sends)

    @property
    def accepted_ids(self) -> set[str]:
        return {send.event_id for send in self.sends if send.status == 202}

    @property
    def accepted(self) -> int:
        return len(self.accepted_ids)

    @property
    def handled(self) -> int:
        sent = {send.event_id for send in self.sends}
        return sum(1 for event_id in self.handled_counts if event_id in sent)

    @property
    def lost_ids(self) -> set[str]:
        return {event_id for event_id in self.accepted_ids if self.handled_counts[event_id] == 0}

    @property
    def lost(self) -> int:
        return len(self.lost_ids)

    @property
    def twice_ids(self) -> set[str]:
        return {event_id for event_id, count in self.handled_counts.items() if count > 1}

    @property
    def handled_twice(self) -> int:
        return len(self.twice_ids)

    @property
    def codes(self) -> collections.Counter[int]:
        return collections.Counter(send.status for send in self.sends)

    @property
    def error_codes(self) -> collections.Counter[str]:
        return collections.Counter(f"{send.status} {send.error_code}" for send in self.sends if send.error_code)

    @property
    def retry_after_missing(self) -> int:
        return sum(1 for send in self.sends if send.status == 503 and not send.retry_after)

    def recovery_seconds(self, mark: str) -> float | None:
        """From the mark to the answer of the first 202 for a request sent after it; None if none came."""
        at = self.marks[mark]
        answers = [send.finished for send in self.sends if send.status == 202 and send.started >= at]
        return round(min(answers) - at, 3) if answers else None

    def figures(self) -> dict[str, object]:
        out: dict[str, object] = {
            "sent": self.sent, "requests": self.requests, "accepted": self.accepted, "handled": self.handled,
            "lost": self.lost, "handled_twice": self.handled_twice,
            "codes": dict(sorted(self.codes.items())), "errors": dict(sorted(self.error_codes.items())),
            "retry_after_missing": self.retry_after_missing,
        }
        for name in self.marks:
            out[f"recovery_after_{name}"] = self.recovery_seconds(name)
        return out

    def __str__(self) -> str:
        return " ".join(f"{key}={value}" for key, value in self.figures().items())


def wait_all_handled(log: Path, ids: Iterable[str], timeout: float) -> collections.Counter[str]:
    wanted = set(ids)
    deadline = time.monotonic() + timeout
    while True:
        counts = read_handled(log)
        if all(counts[event_id] for event_id in wanted) or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)
