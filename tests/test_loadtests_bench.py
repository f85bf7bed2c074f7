"""The throughput benchmark still runs end to end (figures are not checked: 1 s per variant is only a smoke run).

Cost: about 20-25 s (seven servers started one after another, 1 s of wrk each), ~5 s for the id schemes and
~30 s for app_cost.py (two short runs under valgrind).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from service_process import ServiceProcess

BENCH = Path(__file__).resolve().parent.parent / "loadtests" / "bench" / "run_bench.py"
APP_COST = BENCH.parent / "app_cost.py"
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
    env = {"SERVICE_AUTH_TOKENS": "bench-token", "SERVICE_BUS_URL": f"sqlite:///{store}"}
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
    counted = re.search(r"([0-9,]+) instructions per event", app_cost("batch", "--requests", "2", "--callgrind"))
    assert counted and 10_000 < int(counted.group(1).replace(",", "")) < 10_000_000
