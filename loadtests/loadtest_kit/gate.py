"""The release gate: wired into Locust's events, it decides the exit code of a run.

On the master (or a local run): read thresholds at start, snapshot the service's metrics before the load, and
in the `quitting` hook check latency, errors and throughput from Locust's totals and the nothing-lost delivery
check. Workers only ship their event ledger to the master with their stats reports.

Exit codes: 0 the gate passed, 3 a latency/error/throughput threshold was broken, 4 the delivery check failed
(events lost, bus not drained, dead letters, duplicates taken as new, metrics unreadable). One line per breach
goes to stderr, starting with "loadtest gate: BREACH".
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from locust import events
from locust.runners import WorkerRunner

from . import run_state
from .delivery_check import check_delivery, wait_until_drained
from .options import add_options
from .progress import report_progress
from .prometheus import MetricsSnapshot
from .thresholds import RunTotals, Thresholds, load_thresholds, performance_breaches

EXIT_PASSED = 0
EXIT_PERFORMANCE_BREACH = 3
EXIT_DELIVERY_BREACH = 4

logger = logging.getLogger("loadtest.gate")


class Gate:
    """State of the gate on the process that judges the run."""

    def __init__(self) -> None:
        self.thresholds: Thresholds | None = None
        self.metrics_urls: list[str] = []
        self.before: MetricsSnapshot | None = None
        self.before_error: str | None = None
        self.before_note: str | None = None

    def setup(self, environment) -> None:
        options = environment.parsed_options
        overrides = {name: getattr(options, name, None) for name in Thresholds.names()}
        self.thresholds = load_thresholds(options.thresholds or None, overrides)
        run_state.event_mix(options)  # a broken mix file should stop the run before it starts
        if not options.no_delivery_check:
            # each instance once: a URL given twice would count its events twice
            urls = list(dict.fromkeys(url.strip() for url in options.metrics_url.split(",") if url.strip()))
            if not urls and environment.host:
                urls = [environment.host.rstrip("/") + "/metrics"]
            self.metrics_urls = urls

    def snapshot_before(self, environment) -> None:
        """Metrics before any load, once earlier events have drained (so the diff covers only this run)."""
        if not self.metrics_urls or self.before is not None:
            return
        try:
            self.before, drained = wait_until_drained(self.metrics_urls, timeout=self.thresholds.drain_timeout_seconds)
            if not drained:
                self.before_note = (
                    f"the bus still had {self.before.pending_total:g} pending events before the run: their "
                    "processing is counted as this run's, which can hide losses"
                )
        except (OSError, ValueError) as error:
            self.before_error = f"cannot read metrics before the run from {', '.join(self.metrics_urls)}: {error}"
            logger.error(self.before_error)

    def judge(self, environment) -> None:
        """Decide the exit code: runs in `quitting`, after the last worker reports came in."""
        totals = _run_totals(environment)
        performance = performance_breaches(self.thresholds, totals)
        delivery: list[str] = []
        notes: list[str] = []
        per_handler: list[dict] = []
        if self.metrics_urls:
            if self.before is None:
                delivery.append(self.before_error or "no metrics snapshot was taken before the run")
            else:
                try:
                    after, drained = wait_until_drained(self.metrics_urls, self.thresholds.drain_timeout_seconds)
                except (OSError, ValueError) as error:
                    delivery.append(f"cannot read metrics after the run from {', '.join(self.metrics_urls)}: {error}")
                else:
                    report = check_delivery(
                        self.before,
                        after,
                        drained,
                        run_state.ledger,
                        run_state.event_mix(environment.parsed_options),
                        self.thresholds,
                        self.thresholds.drain_timeout_seconds,
                    )
                    delivery, notes, per_handler = report.breaches, report.notes, report.per_handler
        if self.before_note:
            notes.append(self.before_note)
        if delivery:
            code = EXIT_DELIVERY_BREACH
        elif performance:
            code = EXIT_PERFORMANCE_BREACH
        else:
            code = EXIT_PASSED
        environment.process_exit_code = code
        _print_verdict(totals, performance + delivery, notes, code)
        if environment.parsed_options.gate_report:
            _write_report(
                environment.parsed_options.gate_report, code, totals, performance, delivery, notes, per_handler
            )


def _run_totals(environment) -> RunTotals:
    total = environment.stats.total
    duration = max((total.last_request_timestamp or 0) - (total.start_time or 0), 1e-9)
    accepted = run_state.ledger.total("accepted")
    return RunTotals(
        requests=total.num_requests,
        failures=total.num_failures,
        p95_ms=total.get_response_time_percentile(0.95) or 0.0,
        p99_ms=total.get_response_time_percentile(0.99) or 0.0,
        requests_per_second=total.total_rps,
        events_per_second=accepted / duration if total.num_requests else 0.0,
    )


def _print_verdict(totals: RunTotals, breaches: list[str], notes: list[str], code: int) -> None:
    out = sys.stderr
    for line in notes:
        print(f"loadtest gate: {line}", file=out)
    print(
        f"loadtest gate: {totals.requests} requests, {totals.failures} failed, p95 {totals.p95_ms:.0f} ms, "
        f"p99 {totals.p99_ms:.0f} ms, {totals.requests_per_second:.1f} requests/s, "
        f"{totals.events_per_second:.1f} accepted events/s, {run_state.ledger.total('accepted')} events accepted",
        file=out,
    )
    for line in breaches:
        print(f"loadtest gate: BREACH {line}", file=out)
    print(f"loadtest gate: {'PASSED' if code == EXIT_PASSED else 'FAILED'} (exit code {code})", file=out)
    out.flush()


def _write_report(
    path: str,
    code: int,
    totals: RunTotals,
    performance: list[str],
    delivery: list[str],
    notes: list[str],
    per_handler: list[dict],
) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "passed": code == EXIT_PASSED,
        "exit_code": code,
        "performance_breaches": performance,
        "delivery_breaches": delivery,
        "notes": notes,
        "totals": totals.__dict__,
        "events": run_state.ledger.as_dict(),
        "delivery": per_handler,
    }
    target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


_gate = Gate()


@events.init_command_line_parser.add_listener
def _register_options(parser) -> None:
    add_options(parser)


@events.init.add_listener
def _on_init(environment, runner=None, **_kwargs) -> None:
    if isinstance(runner, WorkerRunner):
        # Workers ship their counts with each stats report; the master adds them up.
        environment.events.report_to_master.add_listener(
            lambda client_id, data: data.__setitem__("event_ledger", run_state.ledger.take())
        )
        # Report as soon as the users stopped, ahead of "client_stopped": Locust's own last report (on quit) gets
        # only 0.5 s to reach the master, and a late one would leave events the service accepted uncounted.
        environment.events.test_stop.add_listener(lambda environment, **_: runner._send_stats())
        return
    _gate.setup(environment)
    report_progress(environment)
    environment.events.worker_report.add_listener(
        lambda client_id, data: run_state.ledger.add(data.get("event_ledger", {}))
    )
    environment.events.test_start.add_listener(lambda environment, **_: _gate.snapshot_before(environment))
    environment.events.quitting.add_listener(lambda environment, **_: _gate.judge(environment))
