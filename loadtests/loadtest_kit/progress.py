"""A line of progress on stderr every `--progress-seconds` while a run lasts, on the process that judges it.

locust.conf sets `only-summary` (Locust's full table every 2 s would bury the gate's lines in a pipeline log), so
without this a headless run says nothing until it ends.
"""

from __future__ import annotations

import sys
import time

import gevent


def progress_line(
    elapsed: float,
    run_time: float | None,
    users: int,
    requests: int,
    failures: int,
    requests_per_second: float,
) -> str:
    """`loadtest: 20 s of 60 s, 20 users, 1,234 requests (61.7/s), 0 failed`."""
    of = f" s of {run_time:.0f} s" if run_time else " s"
    return (
        f"loadtest: {elapsed:.0f}{of}, {users} users, {requests:,} requests ({requests_per_second:.1f}/s), "
        f"{failures:,} failed"
    )


def report_progress(environment) -> None:
    """Print progress_line every `--progress-seconds` (0: never) from the run's start to its stop."""
    every = getattr(environment.parsed_options, "progress_seconds", 0)
    if every <= 0:
        return
    running: list[gevent.Greenlet] = []

    def loop(started: float) -> None:
        while True:
            gevent.sleep(every)
            total = environment.runner.stats.total
            print(
                progress_line(
                    time.monotonic() - started,
                    environment.parsed_options.run_time,
                    environment.runner.user_count,
                    total.num_requests,
                    total.num_failures,
                    total.current_rps,
                ),
                file=sys.stderr,
                flush=True,
            )

    def on_start(**_kwargs) -> None:
        running.append(gevent.spawn(loop, time.monotonic()))

    def on_stop(**_kwargs) -> None:
        while running:
            running.pop().kill(block=False)

    environment.events.test_start.add_listener(on_start)
    environment.events.test_stop.add_listener(on_stop)
