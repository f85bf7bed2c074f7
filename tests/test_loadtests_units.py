"""The load-test kit's own logic, without a service: event mix, thresholds, metrics, shapes, delivery check."""

from __future__ import annotations

import http.server
import json
import random
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

LOADTESTS = Path(__file__).resolve().parent.parent / "loadtests"
sys.path.insert(0, str(LOADTESTS))

from loadtest_kit.delivery_check import check_delivery  # noqa: E402
from loadtest_kit.event_mix import EventMixError, load_event_mix  # noqa: E402
from loadtest_kit.ledger import EventLedger  # noqa: E402
from loadtest_kit.progress import progress_line  # noqa: E402
from loadtest_kit.prometheus import MetricsSnapshot, parse_metrics, read_metrics  # noqa: E402
from loadtest_kit.shape_curves import users_at  # noqa: E402
from loadtest_kit.thresholds import RunTotals, Thresholds, ThresholdsError, load_thresholds, performance_breaches  # noqa: E402

PLACED = "com.example.order.placed"
CANCELLED = "com.example.order.cancelled"


def write_mix(tmp_path: Path, events: list) -> Path:
    path = tmp_path / "mix.json"
    path.write_text(json.dumps({"source": "/test", "events": events}))
    return path


def test_shipped_event_mix_makes_valid_example_events():
    mix = load_event_mix(ordering_keys=10)
    events = [mix.next_event() for _ in range(500)]
    assert {event["type"] for event in events} == {PLACED, CANCELLED}
    assert len({event["id"] for event in events}) == 500
    for event in events:
        assert event["specversion"] == "1.0"
        assert event["subject"] == event["data"]["order_id"]
        if event["type"] == PLACED:
            assert set(event["data"]) == {"order_id", "customer_id", "amount_cents", "currency"}
            assert isinstance(event["data"]["amount_cents"], int) and event["data"]["amount_cents"] >= 0
            assert event["data"]["currency"] in {"EUR", "USD", "GBP"}
        else:
            assert set(event["data"]) == {"order_id", "reason"}


def test_event_mix_follows_weights_and_ordering_key_cardinality(tmp_path):
    mix = load_event_mix(
        write_mix(
            tmp_path,
            [
                {"type": "a", "weight": 9, "ordering_key_field": "k", "data": {}},
                {"type": "b", "weight": 1, "data": {"n": "{int:5:5}", "s": "x-{choice:p|q}-{int:1:1}"}},
            ],
        ),
        ordering_keys=3,
    )
    mix._rng = random.Random(1)
    events = [mix.next_event() for _ in range(2000)]
    share_a = sum(event["type"] == "a" for event in events) / len(events)
    assert 0.85 < share_a < 0.95
    assert {event["subject"] for event in events} == {"key-0", "key-1", "key-2"}
    b = next(event for event in events if event["type"] == "b")
    assert b["data"]["n"] == 5 and b["data"]["s"] in {"x-p-1", "x-q-1"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"weight": 1}, "needs a 'type'"),
        ({"type": "a", "weight": 0}, "'weight' must be a positive number"),
        ({"type": "a", "data": {"n": "{int:x:2}"}}, "bad generator"),
        ({"type": "a", "handlers": "h"}, "'handlers' must be a list"),
    ],
)
def test_event_mix_errors_name_the_entry(tmp_path, entry, message):
    with pytest.raises(EventMixError, match=message) as error:
        load_event_mix(write_mix(tmp_path, [entry]))
    assert "events[0]" in str(error.value)


def test_thresholds_file_is_read_and_flags_override_it(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("max_p99_ms = 500\nmax_failure_ratio = 0.01\nmin_requests_per_second = 0\n")
    thresholds = load_thresholds(path, {"max_p99_ms": 20.0, "max_p95_ms": None})
    assert thresholds.max_p99_ms == 20.0
    assert thresholds.max_failure_ratio == 0.01
    assert thresholds.max_p95_ms is None
    assert thresholds.min_requests_per_second is None  # 0 means no minimum
    assert thresholds.max_lost_events == 0  # nothing lost is checked even when the file omits it


def test_shipped_thresholds_file_loads():
    thresholds = load_thresholds(LOADTESTS / "thresholds.toml", {})
    assert thresholds.max_p99_ms is not None and thresholds.max_lost_events == 0


def test_unknown_threshold_is_refused(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text("max_p98_ms = 1\n")
    with pytest.raises(ThresholdsError, match=r"unknown threshold.*max_p98_ms"):
        load_thresholds(path, {})


def test_each_broken_threshold_gives_one_line():
    thresholds = Thresholds(
        max_p95_ms=100, max_p99_ms=200, max_failure_ratio=0.01, min_requests_per_second=1000, min_events_per_second=5000
    )
    totals = RunTotals(
        requests=1000, failures=50, p95_ms=150, p99_ms=250, requests_per_second=100, events_per_second=100
    )
    breaches = performance_breaches(thresholds, totals)
    assert len(breaches) == 5
    assert breaches[0] == "p95 latency 150 ms > max_p95_ms 100 ms"
    assert breaches[2].startswith("failure ratio 0.0500 (50 of 1000 requests) > max_failure_ratio 0.01")
    assert all("\n" not in line for line in breaches)


def test_run_within_thresholds_has_no_breach():
    totals = RunTotals(requests=10, failures=0, p95_ms=5, p99_ms=9, requests_per_second=50, events_per_second=50)
    assert performance_breaches(Thresholds(max_p95_ms=10, max_p99_ms=10, max_failure_ratio=0), totals) == []


def test_run_without_requests_breaches():
    totals = RunTotals(requests=0, failures=0, p95_ms=0, p99_ms=0, requests_per_second=0, events_per_second=0)
    assert performance_breaches(Thresholds(), totals) == [
        "no requests were made: is the host up and the locustfile sending?"
    ]


METRICS_TEXT = """# HELP events_processed_total Handler calls that succeeded
# TYPE events_processed_total counter
events_processed_total{handler="reserve_stock",type="com.example.order.placed"} 10.0
events_processed_total{handler="release_stock",type="com.example.order.cancelled"} 4.0
events_dead_lettered_total{handler="reserve_stock",type="com.example.order.placed"} 1.0
events_processed_created{handler="reserve_stock",type="com.example.order.placed"} 1.7e9
events_duplicates_total 3.0
bus_pending_events 2.0
"""


def test_metrics_of_several_instances_add_up():
    snapshot = MetricsSnapshot()
    parse_metrics(METRICS_TEXT, snapshot, "http://a/metrics")
    parse_metrics(METRICS_TEXT, snapshot, "http://b/metrics")
    assert snapshot.handler_count("events_processed_total", "reserve_stock", PLACED) == 20
    assert snapshot.handler_count("events_dead_lettered_total", "reserve_stock", PLACED) == 2
    assert snapshot.totals["events_duplicates_total"] == 6
    assert snapshot.pending == {"http://a/metrics": 2.0, "http://b/metrics": 2.0}
    assert snapshot.handlers_of(PLACED) == {"reserve_stock"}


def snapshot_with(processed: dict, dead: dict | None = None, duplicates: float = 0) -> MetricsSnapshot:
    snapshot = MetricsSnapshot(pending={"u": 0.0})
    lines = [f'events_processed_total{{handler="{h}",type="{t}"}} {n}' for (h, t), n in processed.items()]
    lines += [f'events_dead_lettered_total{{handler="{h}",type="{t}"}} {n}' for (h, t), n in (dead or {}).items()]
    lines.append(f"events_duplicates_total {duplicates}")
    parse_metrics("\n".join(lines), snapshot, "u")
    return snapshot


def ledger_with(accepted: dict, duplicates_sent: int = 0, duplicates_reported: int = 0) -> EventLedger:
    ledger = EventLedger()
    for event_type, count in accepted.items():
        ledger.count(event_type, "accepted", count)
    ledger.count(PLACED, "duplicates_sent", duplicates_sent)
    ledger.count_reply(sum(accepted.values()), duplicates_reported)
    return ledger


def test_delivery_check_passes_when_every_handler_did_every_accepted_event():
    mix = load_event_mix()
    before = snapshot_with({("reserve_stock", PLACED): 5, ("send_order_confirmation", PLACED): 5})
    after = snapshot_with(
        {("reserve_stock", PLACED): 105, ("send_order_confirmation", PLACED): 103, ("release_stock", CANCELLED): 7},
        dead={("send_order_confirmation", PLACED): 2},
    )
    report = check_delivery(before, after, True, ledger_with({PLACED: 100, CANCELLED: 7}), mix, Thresholds(), 1.0)
    assert report.breaches == []


def test_delivery_check_names_lost_events_per_handler():
    mix = load_event_mix()
    after = snapshot_with({("reserve_stock", PLACED): 100, ("send_order_confirmation", PLACED): 97})
    report = check_delivery(
        MetricsSnapshot(pending={"u": 0.0}), after, True, ledger_with({PLACED: 100}), mix, Thresholds(), 1.0
    )
    assert report.breaches == [
        "lost: 3 of 100 accepted com.example.order.placed events in handler send_order_confirmation "
        "(processed 97, dead-lettered 0)"
    ]


def test_delivery_check_flags_undrained_bus_dead_letters_and_unskipped_duplicates():
    mix = load_event_mix()
    after = snapshot_with(
        {("reserve_stock", PLACED): 8, ("send_order_confirmation", PLACED): 8}, dead={("reserve_stock", PLACED): 2}
    )
    after.pending = {"u": 5.0}
    report = check_delivery(
        MetricsSnapshot(pending={"u": 0.0}),
        after,
        False,
        ledger_with({PLACED: 10}, duplicates_sent=4, duplicates_reported=1),
        mix,
        Thresholds(max_dead_lettered_events=0),
        3.0,
    )
    assert report.breaches[0] == "bus not drained: bus_pending_events still non-zero 3 s after the run (u=5)"
    assert any(line.startswith("still unprocessed (bus not drained): 2 of 10") for line in report.breaches)
    assert (
        "2 com.example.order.placed events dead-lettered by handler reserve_stock > max_dead_lettered_events 0"
        in report.breaches
    )
    assert "service took 3 of 4 deliberate duplicates as new events" in report.breaches


class MetricsEndpoints:
    """Two service instances' /metrics on 127.0.0.1 and a round-robin balancer in front of them, in threads."""

    def __init__(self) -> None:
        self.processed = {"a": 0, "b": 0}  # events_processed_total of reserve_stock on each instance
        self._turn = -1  # the first request through the balancer goes to instance a
        self._servers = [self._serve(self._instance("a")), self._serve(self._instance("b")), self._serve(self._balance)]

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self._servers[index].server_address[1]}/metrics"

    def _instance(self, name: str):
        return lambda: f'events_processed_total{{handler="reserve_stock",type="{PLACED}"}} {self.processed[name]}\n'

    def _balance(self) -> str:
        self._turn += 1
        with urllib.request.urlopen(self.url(self._turn % 2), timeout=5) as response:
            return response.read().decode()

    @staticmethod
    def _serve(body) -> http.server.ThreadingHTTPServer:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                payload = body().encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


def test_gate_behind_a_balancer_vouches_only_for_the_metrics_of_every_instance(tmp_path):
    mix = load_event_mix(write_mix(tmp_path, [{"type": PLACED, "handlers": ["reserve_stock"], "data": {}}]))
    endpoints = MetricsEndpoints()
    try:
        endpoints.processed.update(a=2531, b=2412)  # what each instance did before the run
        instances = [endpoints.url(0), endpoints.url(1)]
        before_instances, before_balancer = read_metrics(instances), read_metrics([endpoints.url(2)])
        endpoints.processed["a"] += 60  # the run: 100 accepted events, the balancer spread them over both
        endpoints.processed["b"] += 40
        after_instances, after_balancer = read_metrics(instances), read_metrics([endpoints.url(2)])
    finally:
        endpoints.close()
    ledger = ledger_with({PLACED: 100})

    through_balancer = check_delivery(before_balancer, after_balancer, True, ledger, mix, Thresholds(), 1.0)
    every_instance = check_delivery(before_instances, after_instances, True, ledger, mix, Thresholds(), 1.0)

    # the balancer answered "before" from one instance and "after" from the other: 2531 -> 2452
    assert any(line.startswith("counters went down between the readings") for line in through_balancer.breaches)
    assert any("make loadtest ENV=<env>" in line for line in through_balancer.breaches)
    assert every_instance.breaches == []
    assert [(row["accepted"], row["processed"], row["lost"]) for row in every_instance.per_handler] == [(100, 100, 0)]


def test_ledger_reports_move_from_workers_to_master():
    worker, master = EventLedger(), EventLedger()
    worker.count(PLACED, "accepted", 3)
    worker.count_reply(3, 1)
    master.add(worker.take())
    master.add(worker.take())  # a second report carries only what came after the first
    assert master.total("accepted") == 3 and master.total("reported_duplicates") == 1
    assert worker.total("accepted") == 0


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("constant", [10, 10, 10, 10, 10]),
        ("ramp", [1, 3, 5, 7, 9]),
        ("step", [2, 4, 6, 8, 10]),
        ("spike", [2, 2, 10, 2, 2]),
        ("soak", [1, 10, 10, 10, 10]),
    ],
)
def test_load_shapes_over_a_run(shape, expected):
    # users at 0 %, 20 %, ... 80 % (plus a hair) of a 100 s run peaking at 10 users
    assert [users_at(shape, elapsed, 100, 10, steps=5) for elapsed in (0.01, 20.01, 40.01, 60.01, 80.01)] == expected


@pytest.mark.slow  # needs the session's baked venv (its ruff), built once in about a minute
def test_copied_loadtests_pass_the_bakes_own_lint(bake_project, baked_python):
    # a bake's `make lint` runs ruff over the whole project, loadtests/ included, with the bake's rules
    project = bake_project()
    ruff = Path(baked_python).parent / "ruff"
    for command in ([str(ruff), "check", "loadtests"], [str(ruff), "format", "--check", "loadtests"]):
        result = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_progress_line_says_how_far_the_run_got_of_its_run_time() -> None:
    line = progress_line(20.4, 60, 20, 1234, 0, 61.66)
    assert line == "loadtest: 20 s of 60 s, 20 users, 1,234 requests (61.7/s), 0 failed"
    assert progress_line(5, None, 3, 10, 1, 2.0) == "loadtest: 5 s, 3 users, 10 requests (2.0/s), 1 failed"
