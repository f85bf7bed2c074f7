"""How many users each named load shape wants at a moment of the run (pure: no Locust import)."""

from __future__ import annotations

import math

from .options import SHAPES


def users_at(shape: str, elapsed: float, run_time: float, peak: int, steps: int = 5) -> int:
    """Users wanted `elapsed` seconds into a run of `run_time` seconds that peaks at `peak` users."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; one of {', '.join(SHAPES)}")
    progress = min(max(elapsed / run_time, 0.0), 1.0) if run_time > 0 else 1.0
    if shape == "constant":
        return peak
    if shape == "ramp":  # a straight line from one user to the peak: finds where the service bends
        return max(1, math.ceil(peak * progress))
    if shape == "step":  # equal plateaus, each held long enough to read its latency
        step = min(int(progress * steps), steps - 1)
        return max(1, math.ceil(peak * (step + 1) / steps))
    if shape == "spike":  # a fifth of the peak, the full peak in the middle fifth, then back
        return peak if 0.4 <= progress < 0.6 else max(1, math.ceil(peak / 5))
    # soak: reach the peak in the first tenth, then hold it for the long rest of the run
    return max(1, math.ceil(peak * min(progress / 0.1, 1.0)))
