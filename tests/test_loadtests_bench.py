"""The throughput benchmark still runs end to end (figures are not checked: 1 s per variant is only a smoke run).

Cost: about 20-25 s (seven servers started one after another, 1 s of wrk each), ~5 s for the id schemes,
~30 s for app_cost.py (two short runs under valgrind) and ~40 s for compare.py (four servers, calibrated rates).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from service_process import ServiceProcess
from support import runtime_version

BENCH = Path(__file__).resolve().parent.parent / "loadtests" / "bench" / "run_bench.py"
APP_COST = BENCH.parent / "app_cost.py"
COMPARE = BENCH.parent / "compare.py"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SEQUENTIAL = re.compile(r"^wrk-[0-9]+-1-[0-9]+$")


@pytest.mark.slow
def test_benchmark_measures_baseline_ceiling_and_service_side_by_side(bake_project, baked_python, tmp_path):
    project = bake_project()
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--seconds",
            "1",
            "--warmup",
            "0",
            "--rounds",
            "1",
            "--no-half-rate",
            "--service-dir",
            str(project),
            "--service-python",
            str(baked_python),
            "--json",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "events/s" not in line]
    assert [row.split(" | ")[0] for row in rows] == [
        "| Flask /event sample, gunicorn 1 sync worker (baseline)",
        "| raw ASGI no-op, uvicorn (ceiling)",
        "| baked service, single events",
        "| baked service, batches of 100",
        "| baked service, ingest process, single events",
        "| baked service, ingest process, batches of 100",
        "| baked service, ingest process, batches of 100, random UUIDv4 ids",
    ]
    assert "service-single/baseline = " in result.stdout and "service-single/ceiling = " in result.stdout
    assert "ingest-single/baseline = " in result.stdout and "ingest-single/ceiling = " in result.stdout
    assert all(row.rstrip(" |").endswith("| 0") for row in rows), "a server answered with errors"


def send_with_wrk(url: str, ids: str) -> None:
    subprocess.run(
        ["wrk", "-t1", "-c2", "-d1s", "-s", "cloudevents.lua", url, "--", "/events", "10", "bench-token", "0", ids],
        cwd=BENCH.parent,
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.mark.slow
def test_the_wrk_script_sends_ids_of_the_scheme_asked_never_twice(bake_project, baked_python, tmp_path):
    """Repeated ids would be skipped as duplicates and flatter the figures: the bench's calibration runs wrk again
    and again against one store."""
    store = tmp_path / "events.db"
    # no workers anywhere: past SERVICE_MAX_PENDING the later runs would get 503s, as the bench's servers would
    env = {"SERVICE_AUTH_TOKENS": "bench-token", "SERVICE_BUS_URL": f"sqlite:///{store}", "SERVICE_MAX_PENDING": "0"}
    with ServiceProcess(bake_project(), baked_python, env=env, command=("serve", "--no-workers")) as service:
        service.wait_ready()
        for ids in ("uuid4", "uuid4", "sequential", "sequential"):
            send_with_wrk(service.url, ids)
        received = service.metric("events_received_total")
        assert received > 0
        assert service.metric("events_duplicates_total") == 0
        assert service.metric("events_accepted_total") == received
    with sqlite3.connect(store) as connection:
        ids = [event_id for (event_id,) in connection.execute("SELECT id FROM events")]
    assert len(ids) == received
    assert all(UUID4.match(event_id) or SEQUENTIAL.match(event_id) for event_id in ids)
    assert any(UUID4.match(event_id) for event_id in ids) and any(SEQUENTIAL.match(event_id) for event_id in ids)


@pytest.mark.slow
def test_app_cost_posts_through_a_bakes_app_and_counts_its_instructions(bake_project, baked_python):
    env = {**os.environ, "PYTHONPATH": str(bake_project() / "src")}

    def app_cost(*arguments: str) -> str:
        result = subprocess.run(
            [str(baked_python), str(APP_COST), *arguments], env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    seconds = re.search(r"([0-9.]+) CPU µs per event", app_cost("single", "--requests", "200"))
    assert seconds and float(seconds.group(1)) > 0
    # drain: the same ingest, then the workers until every handler processed every event, so it costs more
    drained = re.search(r"([0-9.]+) CPU µs per event", app_cost("drain", "--requests", "200"))
    assert drained and float(drained.group(1)) > float(seconds.group(1))
    counted = re.search(r"([0-9,]+) instructions per event", app_cost("batch", "--requests", "2", "--callgrind"))
    assert counted and 10_000 < int(counted.group(1).replace(",", "")) < 10_000_000


SLOWED_AUTHORIZE = """

# tests/test_loadtests_bench.py: a known regression, every POST blocks the event loop for {seconds} s
import time as _time

from event_runtime.ingress import IngressApp as _IngressApp

_authorize = _IngressApp._authorize


def _slowed_authorize(self, authorization):
    _time.sleep({seconds})
    return _authorize(self, authorization)


_IngressApp._authorize = _slowed_authorize
"""


def slowed_copy(project: Path, destination: Path, seconds: float, python: Path) -> Path:
    """A copy of a bake whose every POST blocks its event loop for `seconds`: a known regression to find."""
    shutil.copytree(project, destination)
    with (destination / "src" / "event_service" / "app.py").open("a") as app:
        app.write(SLOWED_AUTHORIZE.format(seconds=seconds))
    # the copy's app.py wraps the method, as `serve` imports it: a runtime without `_authorize` fails the import
    authorize_name = "import event_service.app, event_runtime.ingress as i; print(i.IngressApp._authorize.__name__)"
    wrapped = subprocess.run(
        [str(python), "-c", authorize_name],
        env={**os.environ, "PYTHONPATH": str(destination / "src")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrapped.stdout.strip() == "_slowed_authorize", (
        "event_runtime.ingress.IngressApp._authorize changed: update where this test slows the service down\n"
        + wrapped.stderr[-2000:]
    )
    return destination


@pytest.mark.slow
def test_compare_finds_a_slower_version_in_rate_and_half_rate_latency(bake_project, baked_python, tmp_path):
    before = bake_project()
    after = slowed_copy(before, tmp_path / "slowed", 0.004, baked_python)
    result = subprocess.run(
        [
            sys.executable,
            str(COMPARE),
            "--before",
            str(before),
            "--after",
            str(after),
            "--variants",
            "ingest-single",
            "--rounds",
            "2",
            "--seconds",
            "1",
            "--warmup",
            "0",
            "--service-python",
            str(baked_python),
            "--json",
            str(tmp_path / "compare.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    compared = json.loads((tmp_path / "compare.json").read_text())
    assert Path(compared["sources"]["before"]).is_relative_to(before)
    assert Path(compared["sources"]["after"]).is_relative_to(after)
    # both sides run the runtime their python has installed (one python here), not a copy in the bake
    assert [compared["runtimes"][side]["version"] for side in ("before", "after")] == [runtime_version()] * 2
    assert not any(Path(compared["runtimes"][side]["path"]).is_relative_to(tmp_path) for side in ("before", "after"))
    rounds = compared["variants"]["ingest-single"]
    rates = {side: [m["requests_per_second"] for m in rounds[side]["maximum"]] for side in ("before", "after")}
    assert len(rates["before"]) == len(rates["after"]) == 2
    # 4 ms per request caps the slowed copy at 250 requests/s; the original takes thousands
    assert max(rates["after"]) < 300 < min(rates["before"]) / 2
    p99s = {side: sorted(m["p99_ms"] for m in rounds[side]["half_rate"]) for side in ("before", "after")}
    assert min(p99s["after"]) > 4 and min(p99s["after"]) > max(p99s["before"])
    assert rounds["half_rate_target"] == pytest.approx(sum(rates["before"]) / 2 / 2)  # half the median of two
    table = [line for line in result.stdout.splitlines() if line.startswith("| ingest-single |")]
    assert [line.split(" | ")[1] for line in table] == [
        "maximum events/s",
        f"p99 ms at {rounds['half_rate_target']:,.0f} events/s",
        "events/s held at that rate",
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--before", "{bake}", "--after", "{bake}"], "--before and --after are the same directory, run by the same"),
        (
            ["--before", "{bake}", "--after", "{bake}", "--before-python", sys.executable],
            "--before and --after are the same directory, run by the same python",
        ),
        # the same bake with two pythons compares two runtimes: this one stops only at the python that is not there
        (["--before", "{bake}", "--after", "{bake}", "--after-python", "{elsewhere}/python"], "no such python"),
        (["--before", "{bake}", "--after", "{elsewhere}"], "no src/event_service there; is it a baked project?"),
        (["--before", "{bake}", "--after", "{bake}", "--variants", "flask"], "unknown variant(s) flask"),
    ],
)
def test_compare_refuses_what_it_cannot_compare(arguments, message, tmp_path):
    bake = tmp_path / "bake"
    (bake / "src" / "event_service").mkdir(parents=True)
    arguments = [a.format(bake=bake, elsewhere=tmp_path) for a in arguments]
    result = subprocess.run([sys.executable, str(COMPARE), *arguments], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_wrk_run_that_got_no_answer_has_no_latency_of_zero() -> None:
    """wrk prints 0.00us percentiles when nothing was answered in time: that is an infinite latency, not none."""
    sys.path.insert(0, str(BENCH.parent))
    try:
        from run_bench import parse_wrk
    finally:
        sys.path.remove(str(BENCH.parent))
    report = ("  Latency Distribution\n     50%    0.00us\n     99%    0.00us\n"
              "  0 requests in 1.00s, 0.00B read\n  Socket errors: connect 0, read 0, write 0, timeout 10\n"
              "Requests/sec:      0.00\n")
    unanswered = parse_wrk(report)
    assert unanswered.p99_ms == float("inf") and unanswered.errors == 10
    answered = parse_wrk(report.replace("  0 requests", "  120 requests").replace("99%    0.00us", "99%    3.20ms"))
    assert answered.p99_ms == 3.2
