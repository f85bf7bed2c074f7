"""Release-gate thresholds: read from a TOML file, overridden by flags, checked against Locust's totals."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

DEFAULT_THRESHOLDS_FILE = Path(__file__).resolve().parent.parent / "thresholds.toml"


class ThresholdsError(ValueError):
    """The thresholds file or a flag holds something the gate can't use."""


@dataclass
class Thresholds:
    """Limits of a passing run; None switches a check off."""

    max_p95_ms: float | None = None
    max_p99_ms: float | None = None
    max_failure_ratio: float | None = None
    min_requests_per_second: float | None = None
    min_events_per_second: float | None = None
    max_lost_events: int | None = 0
    max_dead_lettered_events: int | None = None
    drain_timeout_seconds: float = 30.0

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def load_thresholds(path: Path | str | None, overrides: dict[str, float | None]) -> Thresholds:
    """Thresholds from `path` (if given), then every override that is not None."""
    values: dict[str, object] = {}
    if path:
        path = Path(path)
        try:
            values.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ThresholdsError(f"{path}: {error}") from error
        unknown = sorted(set(values) - set(Thresholds.names()))
        if unknown:
            raise ThresholdsError(
                f"{path}: unknown threshold(s) {', '.join(unknown)}; known: {', '.join(Thresholds.names())}"
            )
    values.update({name: value for name, value in overrides.items() if value is not None})
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ThresholdsError(f"threshold {name} must be a number >= 0, got {value!r}")
    thresholds = Thresholds(**values)  # type: ignore[arg-type]
    # 0 for a minimum means "no minimum": keeps the file readable (`min_requests_per_second = 0`).
    for name in ("min_requests_per_second", "min_events_per_second"):
        if getattr(thresholds, name) == 0:
            setattr(thresholds, name, None)
    return thresholds


@dataclass(frozen=True)
class RunTotals:
    """What the gate needs from a finished run, independent of Locust's objects."""

    requests: int
    failures: int
    p95_ms: float
    p99_ms: float
    requests_per_second: float
    events_per_second: float


def performance_breaches(thresholds: Thresholds, totals: RunTotals) -> list[str]:
    """One line per latency, error or throughput limit the run broke."""
    if totals.requests == 0:
        return ["no requests were made: is the host up and the locustfile sending?"]
    breaches = []
    failure_ratio = totals.failures / totals.requests
    if thresholds.max_p95_ms is not None and totals.p95_ms > thresholds.max_p95_ms:
        breaches.append(f"p95 latency {totals.p95_ms:.0f} ms > max_p95_ms {thresholds.max_p95_ms:g} ms")
    if thresholds.max_p99_ms is not None and totals.p99_ms > thresholds.max_p99_ms:
        breaches.append(f"p99 latency {totals.p99_ms:.0f} ms > max_p99_ms {thresholds.max_p99_ms:g} ms")
    if thresholds.max_failure_ratio is not None and failure_ratio > thresholds.max_failure_ratio:
        breaches.append(
            f"failure ratio {failure_ratio:.4f} ({totals.failures} of {totals.requests} requests) "
            f"> max_failure_ratio {thresholds.max_failure_ratio:g}"
        )
    if (
        thresholds.min_requests_per_second is not None
        and totals.requests_per_second < thresholds.min_requests_per_second
    ):
        breaches.append(
            f"throughput {totals.requests_per_second:.1f} requests/s "
            f"< min_requests_per_second {thresholds.min_requests_per_second:g}"
        )
    if thresholds.min_events_per_second is not None and totals.events_per_second < thresholds.min_events_per_second:
        breaches.append(
            f"throughput {totals.events_per_second:.1f} accepted events/s "
            f"< min_events_per_second {thresholds.min_events_per_second:g}"
        )
    return breaches
