#!/usr/bin/env python3
"""Throughput benchmark: the Flask baseline, a raw ASGI no-op and the baked service, side by side in one run.

Every server runs as one process pinned to CPU 0; wrk (one thread, pinned to CPU 1) loads it with CloudEvents.
Prints events/s, p50 and p99 per variant and the ratios the performance targets are stated in; `--markdown`
writes the same as a table for docs/performance.md. See docs/performance.md for how to read the figures.
"""

# A benchmark driver: it starts the servers and tools it names itself (taskset, wrk, py-spy) by design.
# ruff: noqa: S603, S607

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent.parent
sys.path.insert(0, str(BENCH_DIR.parent))
from loadtest_kit.prometheus import MetricsSnapshot, read_metrics  # noqa: E402  (the load tests' metrics reader)

PLACED = "com.example.order.placed"
SERVER_CPU = "0"
LOADGEN_CPU = "1"
TOKEN = "bench-token"  # noqa: S105  (a throwaway token for a local benchmark service)
BATCH_SIZE = 100
# wrk's own default (2 s) counts a slow answer as a socket error; at the maximum rate, 50 connections with 100 events
# each queue for a few hundred ms, and that tail belongs in p99, not in errors. Errors stay: non-2xx and real failures.
WRK_TIMEOUT_SECONDS = 10


@dataclass
class Variant:
    name: str
    events_per_request: int
    path: str
    token: str | None = None
    server: str = ""  # key into the server commands
    ids: str = "sequential"  # or "uuid4": see cloudevents.lua


@dataclass
class Measurement:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers plus socket errors

    def events_per_second(self, variant: Variant) -> float:
        return self.requests_per_second * variant.events_per_request


@dataclass
class Result:
    variant: Variant
    rounds: list[Measurement] = field(default_factory=list)

    @property
    def median(self) -> Measurement:
        ordered = sorted(self.rounds, key=lambda m: m.requests_per_second)
        return ordered[len(ordered) // 2]


VARIANTS = {
    "flask": Variant("Flask /event sample, gunicorn 1 sync worker (baseline)", 1, "/event", server="flask"),
    "noop": Variant("raw ASGI no-op, uvicorn (ceiling)", 1, "/events", server="noop"),
    "service-single": Variant("baked service, single events", 1, "/events", TOKEN, server="service"),
    "service-batch": Variant(f"baked service, batches of {BATCH_SIZE}", BATCH_SIZE, "/events", TOKEN, server="service"),
    # the same service with its workers in another process (`serve --no-workers`): ingest alone on the core
    "ingest-single": Variant("baked service, ingest process, single events", 1, "/events", TOKEN, server="ingest"),
    "ingest-batch": Variant(
        f"baked service, ingest process, batches of {BATCH_SIZE}", BATCH_SIZE, "/events", TOKEN, server="ingest"
    ),
    # the bench's own ids are time-ordered; random ones cost the store an index page per event (docs/performance.md)
    "ingest-batch-uuid4": Variant(
        f"baked service, ingest process, batches of {BATCH_SIZE}, random UUIDv4 ids",
        BATCH_SIZE,
        "/events",
        TOKEN,
        server="ingest",
        ids="uuid4",
    ),
}
SERVICE_SERVERS = ("service", "ingest")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was ready ({url})")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310  (our own http:// URL)
                return
        except urllib.error.HTTPError:
            return  # it answered: ready (the baseline has no GET route)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout:g} s: {url}")


@contextmanager
def running_server(command: list[str], ready_url: str, env: dict[str, str], cwd: Path, log: Path):
    """Start a server pinned to SERVER_CPU in its own process group; stop the group on exit, also on errors."""
    with open(log, "ab") as log_file:
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *command],
            cwd=cwd,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_ready(ready_url, process=process)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def run_wrk(url: str, variant: Variant, seconds: float, connections: int, pause_ms: float = 0.0) -> Measurement:
    script = "cloudevents_paced.lua" if pause_ms > 0 else "cloudevents.lua"
    command = [
        "taskset",
        "-c",
        LOADGEN_CPU,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(seconds, 1):g}s",
        f"--timeout={WRK_TIMEOUT_SECONDS}s",
        "--latency",
        "-s",
        script,
        url,
        "--",
        variant.path,
        str(variant.events_per_request),
        variant.token or "-",
        f"{pause_ms:g}",
        variant.ids,
    ]
    output = subprocess.run(
        command, cwd=BENCH_DIR, capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> Measurement:
    """Requests/s, p50, p99 and errors from wrk's --latency report."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not rate:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    answered = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    if answered and int(answered.group(1)) == 0:  # wrk prints 0.00us percentiles when nothing was answered in time
        return Measurement(float(rate.group(1)), float("inf"), float("inf"), errors)
    return Measurement(float(rate.group(1)), _latency_ms(output, "50%"), _latency_ms(output, "99%"), errors)


def _latency_ms(output: str, percentile: str) -> float:
    match = re.search(rf"^\s+{re.escape(percentile)}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def server_commands(args, service_dir: Path | None) -> dict[str, tuple[list[str], str, dict[str, str], Path]]:
    """Per server key: command, readiness path, environment and working directory."""
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE_")}
    commands = {
        "flask": (
            [
                args.python,
                "-m",
                "gunicorn",
                "--workers",
                "1",
                "--worker-class",
                "sync",
                "--log-level",
                "warning",
                "--bind",
                "127.0.0.1:{port}",
                "flask_event_app:app",
            ],
            "/event",
            base_env,
            BENCH_DIR,
        ),
        "noop": (
            [
                args.python,
                "-m",
                "uvicorn",
                "asgi_noop:app",
                "--port",
                "{port}",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            "/",
            base_env,
            BENCH_DIR,
        ),
    }
    if service_dir is not None:
        env = {
            **base_env,
            "PYTHONPATH": str(service_dir / "src"),
            "SERVICE_AUTH_TOKENS": TOKEN,
            "SERVICE_LOG_LEVEL": "WARNING",
            "SERVICE_BUS_URL": "sqlite:///{workdir}/events.db",
            # the bench measures how many events a process takes; the backpressure bound would answer 503s instead
            # once the handlers fall behind at the maximum (docs/performance.md, run 9)
            "SERVICE_MAX_PENDING": "0",
        }
        serve = [args.service_python, "-m", args.package, "serve", "--port", "{port}"]
        commands["service"] = (serve, "/readyz", env, service_dir)
        commands["ingest"] = ([*serve, "--no-workers"], "/readyz", env, service_dir)
    return commands


def bake_service(workdir: Path) -> Path:
    """Bake the template with its defaults (the service the targets are about)."""
    subprocess.run(
        [sys.executable, "-m", "cookiecutter", str(REPO_ROOT), "--no-input", "-o", str(workdir)],
        check=True,
        capture_output=True,
    )
    return next(path for path in workdir.iterdir() if (path / "src").is_dir())


@contextmanager
def started(key: str, commands, workdir: Path):
    command, ready_path, env, cwd = commands[key]
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    # replace, not str.format: inherited variables (MAKEFLAGS...) may hold braces
    env = {name: value.replace("{workdir}", str(workdir)) for name, value in env.items()}
    if key in SERVICE_SERVERS:  # a fresh store per start: each round measures the same empty-database case
        for leftover in workdir.glob("events.db*"):  # the file, its -wal and -shm, its .owners/ lock folder
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
    with running_server(command, f"http://127.0.0.1:{port}{ready_path}", env, cwd, workdir / f"{key}.log") as proc:
        yield f"http://127.0.0.1:{port}", proc


def pacing_for(url: str, variant: Variant, events_per_second: float, max_connections: int) -> tuple[int, float]:
    """Connections and pause (ms) that hold about `events_per_second` (wrk has no fixed-rate mode).

    Each connection sends, waits for the answer, pauses, sends again: rate = connections / (pause + latency).
    The pause is random, exponential around this mean (cloudevents_paced.lua says why); short calibration runs
    scale the number of connections by asked/achieved until the rate is within 5 %.
    """
    target_rps = events_per_second / variant.events_per_request
    pause_ms = min(max(1000 * 20 / target_rps, 10.0), 500.0)
    connections = max(1, round(target_rps * pause_ms / 1000))
    for _ in range(4):
        probe = run_wrk(url, variant, 3, connections, pause_ms)
        achieved = max(probe.requests_per_second, 1e-9)
        if abs(achieved - target_rps) <= 0.05 * target_rps:
            break
        connections = min(max_connections, max(1, round(connections * target_rps / achieved)))
    return connections, pause_ms


def measure_at_rate(
    url: str, variant: Variant, events_per_second: float, seconds: float, connections: int
) -> Measurement:
    chosen, pause_ms = pacing_for(url, variant, events_per_second, connections * 4)
    return run_wrk(url, variant, seconds, chosen, pause_ms)


def machine_description() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} vCPU, {cpu}, {platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {' '.join(wrk_version[0].split()[:2]) if wrk_version else 'wrk'}; "
        f"load average at the end {load} (other work on the machine skews every variant)"
    )


def add_load_options(parser: argparse.ArgumentParser, half_rate_help: str) -> None:
    """How each server is loaded: the options this script and compare.py share."""
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per server start")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of load before each maximum, discarded")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections for the maximum")
    parser.add_argument("--half-rate", action=argparse.BooleanOptionalAction, default=True, help=half_rate_help)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    add_load_options(parser, half_rate_help="also measure the service's latency at half its maximum rate")
    parser.add_argument(
        "--e2e-seconds",
        type=float,
        default=0,
        help="also run the service at half rate this long and compare accepted and processed rates",
    )
    parser.add_argument(
        "--profile-seconds",
        type=float,
        default=0,
        help="also sample the service with py-spy this long under full single-event load",
    )
    parser.add_argument("--service-dir", type=Path, help="a baked project (default: bake the template now)")
    parser.add_argument("--package", default="event_service", help="import package of the baked service")
    parser.add_argument("--python", default=sys.executable, help="python for the baseline and the ceiling")
    parser.add_argument(
        "--service-python",
        default=sys.executable,
        help="python with event-runtime and the baked service's other dependencies installed, not the bake",
    )
    parser.add_argument("--markdown", type=Path, help="also write the results as a markdown table to this file")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = parser.parse_args(argv)

    chosen = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}")
    if not shutil.which("wrk") or not shutil.which("taskset"):
        parser.error("needs wrk and taskset on PATH (apt-get install wrk util-linux)")

    with tempfile.TemporaryDirectory(prefix="bench-") as temp:
        workdir = Path(temp)
        service_dir = None
        if any(VARIANTS[name].server in SERVICE_SERVERS for name in chosen):
            service_dir = args.service_dir.resolve() if args.service_dir else bake_service(workdir / "bake")
        commands = server_commands(args, service_dir)
        results = {name: Result(VARIANTS[name]) for name in chosen}
        for round_number in range(1, args.rounds + 1):
            for name in chosen:  # interleaved: noise from the shared machine spreads over every variant
                variant = VARIANTS[name]
                with started(variant.server, commands, workdir) as (url, _process):
                    if args.warmup > 0:
                        run_wrk(url, variant, args.warmup, args.connections)
                    measurement = run_wrk(url, variant, args.seconds, args.connections)
                results[name].rounds.append(measurement)
                print(
                    f"round {round_number} {name}: {measurement.events_per_second(variant):,.0f} events/s, "
                    f"p50 {measurement.p50_ms:.1f} ms, p99 {measurement.p99_ms:.1f} ms, errors {measurement.errors}",
                    file=sys.stderr,
                    flush=True,
                )
        half_rate: dict[str, tuple[float, Measurement]] = {}
        if args.half_rate:
            for name in chosen:
                variant = VARIANTS[name]
                if variant.server not in SERVICE_SERVERS:
                    continue
                target = results[name].median.events_per_second(variant) / 2
                with started(variant.server, commands, workdir) as (url, _process):
                    half_rate[name] = (target, measure_at_rate(url, variant, target, args.seconds, args.connections))
        end_to_end = None
        if args.e2e_seconds > 0 and "service-single" in results:
            end_to_end = run_end_to_end(commands, workdir, results["service-single"], args)
        profile = None
        if args.profile_seconds > 0 and "service-single" in results:
            profile = profile_service(commands, workdir, args)
        report = render(results, half_rate, end_to_end, args, machine_description())
        if profile:
            report += "\n\n" + profile
        print(report)
        if args.markdown:
            args.markdown.write_text(report + "\n", encoding="utf-8")
        if args.json:
            args.json.write_text(json.dumps(as_json(results, half_rate, end_to_end), indent=2) + "\n", encoding="utf-8")
        failed = [name for name, result in results.items() if any(m.errors for m in result.rounds)]
        if failed:
            print(
                f"errors (non-2xx or socket errors) in: {', '.join(failed)}: see the logs of that server",
                file=sys.stderr,
            )
            return 1
    return 0


def run_end_to_end(commands, workdir: Path, single: Result, args) -> dict:
    """Half the maximum single-event rate for e2e_seconds: accepted vs processed over the same window."""
    variant = single.variant
    target = single.median.events_per_second(variant) / 2
    with started(variant.server, commands, workdir) as (url, _process):
        metrics_urls = [f"{url}/metrics"]
        connections, pause_ms = pacing_for(url, variant, target, args.connections * 4)
        deadline = time.monotonic() + 60
        while read_metrics(metrics_urls).pending_total > 0 and time.monotonic() < deadline:
            time.sleep(0.2)  # the calibration's events are not this window's
        before = read_metrics(metrics_urls)
        started_at = time.monotonic()
        measurement = run_wrk(url, variant, args.e2e_seconds, connections, pause_ms)
        elapsed = time.monotonic() - started_at
        after = read_metrics(metrics_urls)
        drain_started = time.monotonic()
        while read_metrics(metrics_urls).pending_total > 0 and time.monotonic() - drain_started < 120:
            time.sleep(0.5)
        drained_after = time.monotonic() - drain_started
    accepted = after.totals["events_accepted_total"] - before.totals["events_accepted_total"]
    # wrk sends order.placed only; an event is processed once every handler of that type has done it
    processed = min(_increase(before, after, handler) for handler in after.handlers_of(PLACED))
    return {
        "seconds": elapsed,
        "target_events_per_second": target,
        "wrk": measurement.__dict__,
        "accepted_per_second": accepted / elapsed,
        "processed_per_second": processed / elapsed,
        "pending_at_end": after.pending_total,
        "drain_seconds_after": drained_after,
    }


def profile_service(commands, workdir: Path, args) -> str:
    """Where the service's time goes under full single-event load: py-spy samples, self and total time."""
    if not shutil.which("py-spy"):
        return "(no profile: py-spy is not installed; pip install py-spy)"
    variant = VARIANTS["service-single"]
    raw = workdir / "profile.txt"
    with started(variant.server, commands, workdir) as (url, process):
        load = subprocess.Popen(
            [
                "taskset",
                "-c",
                LOADGEN_CPU,
                "wrk",
                "-t1",
                f"-c{args.connections}",
                f"-d{args.profile_seconds + 2:g}s",
                "-s",
                "cloudevents.lua",
                url,
                "--",
                variant.path,
                "1",
                TOKEN,
            ],
            cwd=BENCH_DIR,
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(1)
            subprocess.run(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(process_pid(process)),
                    "--duration",
                    f"{args.profile_seconds:g}",
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                    "--nonblocking",
                ],
                check=True,
                capture_output=True,
                timeout=args.profile_seconds + 30,
            )
        finally:
            load.wait(timeout=args.profile_seconds + 30)
    return summarize_profile(raw.read_text())


def process_pid(process: subprocess.Popen) -> int:
    """The server's pid: taskset execs the command, so it is the process itself."""
    return process.pid


def summarize_profile(collapsed: str, top: int = 15) -> str:
    self_time: dict[str, int] = {}
    total_time: dict[str, int] = {}
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        samples += int(count)
        self_time[frames[-1]] = self_time.get(frames[-1], 0) + int(count)
        for frame in set(frames):
            total_time[frame] = total_time.get(frame, 0) + int(count)
    if not samples:
        return "(no profile samples)"
    lines = [
        f"py-spy, {samples} samples under full single-event load: functions by own time",
        "",
        "| own % | total % | function |",
        "|---:|---:|---|",
    ]
    for frame, count in sorted(self_time.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"| {100 * count / samples:.1f} | {100 * total_time[frame] / samples:.1f} | `{frame}` |")
    return "\n".join(lines)


def _increase(before: MetricsSnapshot, after: MetricsSnapshot, handler: str) -> float:
    return sum(
        after.handler_count(metric, handler, PLACED) - before.handler_count(metric, handler, PLACED)
        for metric in ("events_processed_total", "events_dead_lettered_total")
    )


def render(results: dict[str, Result], half_rate, end_to_end, args, machine: str) -> str:
    lines = [
        f"Machine: {machine}.",
        f"Command: `python loadtests/bench/run_bench.py --seconds {args.seconds:g} --rounds {args.rounds} "
        f"--connections {args.connections}`; wrk -t1 -c{args.connections}, {args.warmup:g} s warm-up discarded, "
        f"median of {args.rounds} interleaved rounds; server on CPU {SERVER_CPU}, wrk on CPU {LOADGEN_CPU}.",
        "",
        "| variant | events/s | requests/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for result in results.values():
        m = result.median
        lines.append(
            f"| {result.variant.name} | {m.events_per_second(result.variant):,.0f} | "
            f"{m.requests_per_second:,.0f} | {m.p50_ms:.1f} | {m.p99_ms:.1f} | "
            f"{sum(r.errors for r in result.rounds)} |"
        )
    rates = {name: r.median.events_per_second(r.variant) for name, r in results.items()}
    ratios = []
    for service in (name for name, variant in VARIANTS.items() if variant.server in SERVICE_SERVERS):
        for reference, label in (("flask", "baseline"), ("noop", "ceiling")):
            if service in rates and reference in rates and rates[reference]:
                ratios.append(f"{service}/{label} = {rates[service] / rates[reference]:.2f}x")
    if ratios:
        lines += ["", "Ratios (events/s): " + ", ".join(ratios) + "."]
    for name, (target, m) in half_rate.items():
        lines.append(
            f"At half the maximum ({target:,.0f} events/s asked), {name}: "
            f"{m.events_per_second(VARIANTS[name]):,.0f} events/s held, p50 {m.p50_ms:.1f} ms, "
            f"p99 {m.p99_ms:.1f} ms, errors {m.errors}."
        )
    if end_to_end:
        lines.append(
            f"End to end over {end_to_end['seconds']:.0f} s at ~{end_to_end['target_events_per_second']:,.0f}"
            f" single events/s: accepted {end_to_end['accepted_per_second']:,.0f}/s, "
            f"processed by every handler {end_to_end['processed_per_second']:,.0f}/s, bus_pending_events at the end "
            f"{end_to_end['pending_at_end']:g}, drained {end_to_end['drain_seconds_after']:.1f} s later."
        )
    return "\n".join(lines)


def as_json(results, half_rate, end_to_end) -> dict:
    return {
        "variants": {
            name: {
                "events_per_second": r.median.events_per_second(r.variant),
                **r.median.__dict__,
                "rounds": [m.__dict__ for m in r.rounds],
            }
            for name, r in results.items()
        },
        "half_rate": {name: {"target": t, **m.__dict__} for name, (t, m) in half_rate.items()},
        "end_to_end": end_to_end,
    }


if __name__ == "__main__":
    sys.exit(main())
