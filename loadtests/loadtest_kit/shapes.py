"""Load shapes chosen by name with --shape; each peaks at --users and ends at --run-time."""

from __future__ import annotations

import math

from locust import LoadTestShape

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


class NamedShape(LoadTestShape):
    """Drives the run with the shape named by --shape, using --users, --spawn-rate and --run-time."""

    use_common_options = True

    def tick(self):
        options = self.runner.environment.parsed_options
        run_time = options.run_time or 0
        elapsed = self.get_run_time()
        if run_time and elapsed >= run_time:
            return None
        users = users_at(options.shape, elapsed, run_time, options.num_users or 1, options.shape_steps)
        # the spike must arrive at once; other shapes spawn at the configured rate
        spawn_rate = max(users, 1) if options.shape == "spike" else (options.spawn_rate or users)
        return users, spawn_rate
