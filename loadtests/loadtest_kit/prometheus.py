"""Reading the counters the nothing-lost check needs from one or several `/metrics` endpoints."""

from __future__ import annotations

import re
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

# A sample line: name, optional {labels}, value (an optional timestamp after it is ignored).
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

PER_HANDLER = ("events_processed_total", "events_dead_lettered_total", "events_failed_total")
TOTALS = ("events_received_total", "events_accepted_total", "events_duplicates_total")
PENDING = "bus_pending_events"


@dataclass
class MetricsSnapshot:
    """Counters summed over every instance read; `pending` keeps each instance's queue length."""

    per_handler: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)  # metric -> (handler, type) -> n
    totals: Counter[str] = field(default_factory=Counter)
    pending: dict[str, float] = field(default_factory=dict)  # metrics URL -> bus_pending_events (absent: unknown)

    @property
    def pending_total(self) -> float:
        return sum(self.pending.values())

    def handler_count(self, metric: str, handler: str, event_type: str) -> float:
        return self.per_handler.get(metric, Counter())[(handler, event_type)]

    def handlers_of(self, event_type: str) -> set[str]:
        return {h for counts in self.per_handler.values() for (h, t) in counts if t == event_type}


def parse_metrics(text: str, snapshot: MetricsSnapshot, url: str) -> None:
    """Add the samples of one instance's Prometheus text to `snapshot`."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, labels_text, value_text = match.groups()
        try:
            value = float(value_text)
        except ValueError:
            continue
        if name in PER_HANDLER:
            labels = dict(_LABEL.findall(labels_text or ""))
            key = (labels.get("handler", ""), labels.get("type", ""))
            snapshot.per_handler.setdefault(name, Counter())[key] += value
        elif name in TOTALS:
            snapshot.totals[name] += value
        elif name == PENDING:
            snapshot.pending[url] = snapshot.pending.get(url, 0.0) + value


def read_metrics(urls: list[str], timeout: float = 5.0, headers: dict[str, str] | None = None) -> MetricsSnapshot:
    """Fetch every URL and sum their counters; an unreachable instance raises (the check can't vouch for it)."""
    snapshot = MetricsSnapshot()
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"metrics URL must be http(s): {url}")
        request = urllib.request.Request(url, headers=headers or {})  # noqa: S310  (scheme checked above)
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            parse_metrics(response.read().decode("utf-8", "replace"), snapshot, url)
    return snapshot
