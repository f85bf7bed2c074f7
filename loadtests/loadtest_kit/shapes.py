"""Load shapes chosen by name with --shape; each peaks at --users and ends at --run-time."""

from __future__ import annotations

from locust import LoadTestShape

from .shape_curves import users_at


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
