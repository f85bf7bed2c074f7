"""How long to wait before the next attempt: exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 0.5
    max_seconds: float = 60.0

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        """Seconds before attempt `failed_attempts + 1`: uniform in [0, min(max, base * 2**(n-1))]."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(failed_attempts - 1, 0))
        # full jitter spreads the retries of many failed events instead of retrying them in lock step
        return (rng or random).uniform(0, ceiling)

    def gives_up_after(self, failed_attempts: int, limit: int | None = None) -> bool:
        return failed_attempts >= (limit or self.max_attempts)
