"""The throughput benchmark still runs end to end (figures are not checked: 1 s per variant is only a smoke run).

Cost: about 15-20 s (six servers started one after another, 1 s of wrk each).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "loadtests" / "bench" / "run_bench.py"


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
    ]
    assert "service-single/baseline = " in result.stdout and "service-single/ceiling = " in result.stdout
    assert "ingest-single/baseline = " in result.stdout and "ingest-single/ceiling = " in result.stdout
    assert all(row.rstrip(" |").endswith("| 0") for row in rows), "a server answered with errors"
