"""Fault suite, SQLite bake: real processes started with the bake's CLI, real signals, a real full tmpfs.

Each test adds the probe handler (tests/faults) to a default bake, drives steady load with unique ids, injects a
fault, and checks by event id that every event answered 202 was handled (zero lost), printing its figures: sent,
accepted, handled, lost, handled twice, the status codes seen and recovery times. The figures of a run are in
docs/reliability.md ("Store failures and crashes").
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from faults.counter import Tally, wait_all_handled
from faults.load import LoadDriver, event
from faults.probe import add_probe, probe_env
from service_process import ServiceProcess
from support import REPO_ROOT, run_in

pytestmark = pytest.mark.slow

QUIET = {"SERVICE_LOG_LEVEL": "WARNING"}


@pytest.fixture
def probed(bake_project: Callable[..., Path]) -> Path:
    project = bake_project()
    add_probe(project)
    return project


@pytest.fixture
def processes() -> Iterator[list[ServiceProcess]]:
    """Every service a test starts; whatever still runs at the end is killed by PID."""
    started: list[ServiceProcess] = []
    yield started
    for service in started:
        service.stop(signal.SIGKILL)


def start(project: Path, python: Path, env: dict[str, str], started: list[ServiceProcess]) -> ServiceProcess:
    service = ServiceProcess(project, python, env=env)
    started.append(service)
    service.wait_ready(30)
    return service


def report(name: str, tally: Tally, **more: object) -> None:
    print(f"\nFAULT {name}: {json.dumps({**tally.figures(), **more})}")


def test_kill_9_five_times_under_load_loses_no_accepted_event(
    probed: Path, baked_python: Path, tmp_path: Path, processes: list[ServiceProcess]
) -> None:
    log = tmp_path / "probe.log"
    # the default lease (60 s): a restart that waited for its predecessor's claims would not finish in time
    # each handling takes 50 ms, so every kill finds claims in flight
    env = {"SERVICE_BUS_URL": f"sqlite:///{tmp_path}/events.db", **QUIET, **probe_env(log, delay=0.05)}
    service = start(probed, baked_python, env, processes)
    driver = LoadDriver([service.url], rate=100, threads=8, keys=50).start()
    recoveries = []
    try:
        for kill in range(5):
            time.sleep(2.5)
            service.process.send_signal(signal.SIGKILL)
            service.process.wait(10)
            restarted_at = driver.mark(f"restart{kill}")
            service = start(probed, baked_python, env, processes)
            driver.urls = [service.url]
            recoveries.append(restarted_at)
        time.sleep(2.5)
    finally:
        driver.stop()
    stopped = time.monotonic()
    counts = wait_all_handled(log, {s.event_id for s in driver.sends if s.status == 202}, 40)
    tally = Tally.of(driver, counts)
    # the claims of each killed process are taken back at once: nothing waits for the 60 s lease
    report("sqlite kill -9 x5", tally, all_handled_after_load_seconds=round(time.monotonic() - stopped, 2))
    assert tally.lost == 0, sorted(tally.lost_ids)[:10]
    assert tally.accepted > 800
    assert set(tally.codes) <= {0, 202}, tally.codes  # no answer while down, else 202: never a 500
    assert all(tally.recovery_seconds(f"restart{kill}") is not None for kill in range(5))


def test_sigterm_under_load_finishes_in_flight_work_refuses_new_with_retry_after_and_exits_0(
    probed: Path, baked_python: Path, tmp_path: Path, processes: list[ServiceProcess]
) -> None:
    log = tmp_path / "probe.log"
    env = {"SERVICE_BUS_URL": f"sqlite:///{tmp_path}/events.db", "SERVICE_SHUTDOWN_DRAIN_SECONDS": "1.5",
           "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "10", **QUIET, **probe_env(log, delay=0.3)}
    service = start(probed, baked_python, env, processes)
    driver = LoadDriver([service.url], rate=80, threads=8).start()
    waited: list[httpx.Response] = []

    def wait_for_handlers() -> None:  # a request still in flight at the signal: it waits for its handlers
        body = json.dumps(event("in-flight", 1, customer="slow:2.5")).encode()
        headers = {"content-type": "application/cloudevents+json", "prefer": "wait=5"}
        waited.append(httpx.post(f"{service.url}/events", content=body, headers=headers, timeout=10))

    try:
        time.sleep(3)
        in_flight = threading.Thread(target=wait_for_handlers)
        in_flight.start()
        time.sleep(0.5)
        signalled = driver.mark("sigterm")
        service.process.send_signal(signal.SIGTERM)
        code = service.process.wait(30)
        in_flight.join(10)
        exited_after = time.monotonic() - signalled
        time.sleep(0.5)
    finally:
        driver.stop()
    # what was accepted but not handled before the stop is handled after a restart
    start(probed, baked_python, env, processes)
    counts = wait_all_handled(log, {s.event_id for s in driver.sends if s.status == 202}, 40)
    tally = Tally.of(driver, counts)
    report("sqlite SIGTERM under load", tally, exit_code=code, exit_seconds=round(exited_after, 2))
    assert code == 0
    assert exited_after < 1.5 + 10 + 5
    # sent well before the signal: taken (a request sent just before it may arrive after it, and be refused)
    before = [s for s in driver.sends if s.started < signalled - 0.2]
    after = [s for s in driver.sends if s.started > signalled + 0.1]
    assert waited and waited[0].status_code == 200 and waited[0].json()["results"], waited
    assert all(s.status == 202 for s in before), collections.Counter(s.status for s in before)
    assert any(s.status == 503 for s in after) and all(s.status in (503, 0) for s in after)
    assert tally.retry_after_missing == 0
    assert tally.lost == 0, sorted(tally.lost_ids)[:10]


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True, timeout=10)
    (mount / "ballast").touch()  # see fill()
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=10)


def fill(mount: Path, leave_bytes: int) -> Path:
    """A ballast file taking all but `leave_bytes` of the filesystem's free space.

    The file is made while the filesystem still has room (`small_tmpfs`) and only grown here: on a full tmpfs even
    an empty new file is refused (ENOSPC), which a busy machine's run once reached before this call."""
    ballast = mount / "ballast"
    status = os.statvfs(mount)
    free = status.f_bavail * status.f_frsize
    with ballast.open("ab") as file:
        remaining = max(0, free - leave_bytes)
        chunk = b"\0" * (1 << 20)
        while remaining > 0:
            try:
                remaining -= file.write(chunk[: min(len(chunk), remaining)])
                file.flush()
            except OSError:
                break
    return ballast


def test_a_full_small_disk_answers_503_loses_nothing_and_recovers_by_itself(
    probed: Path, baked_python: Path, tmp_path: Path, small_tmpfs: Path, processes: list[ServiceProcess]
) -> None:
    log = tmp_path / "probe.log"
    env = {"SERVICE_BUS_URL": f"sqlite:///{small_tmpfs}/events.db", "SERVICE_MIN_FREE_BYTES": str(4 << 20),
           **QUIET, **probe_env(log)}
    service = start(probed, baked_python, env, processes)
    driver = LoadDriver([service.url], rate=100, threads=8).start()
    ready_during: list[int] = []
    try:
        time.sleep(2)
        ballast = fill(small_tmpfs, 2 << 20)  # under the reserve: intake stops, completions go on
        time.sleep(2.5)
        ready_during.append(httpx.get(f"{service.url}/readyz", timeout=5).status_code)
        os.truncate(ballast, 0)  # kept, so that the next fill() need not make a file
        driver.mark("reserve_freed")
        time.sleep(2)
        # then, with no reserve, a disk truly full: the store's own writes fail (SQLITE_FULL)
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(30) == 0
        service = start(probed, baked_python, {**env, "SERVICE_MIN_FREE_BYTES": "0"}, processes)
        driver.urls = [service.url]
        time.sleep(1)
        ballast = fill(small_tmpfs, 0)
        time.sleep(2.5)
        ready_during.append(httpx.get(f"{service.url}/readyz", timeout=5).status_code)
        os.truncate(ballast, 0)  # kept, so that the next fill() need not make a file
        driver.mark("disk_freed")
        time.sleep(3)
    finally:
        driver.stop()
    counts = wait_all_handled(log, {s.event_id for s in driver.sends if s.status == 202}, 40)
    tally = Tally.of(driver, counts)
    ready_after = httpx.get(f"{service.url}/readyz", timeout=5).status_code
    report("sqlite full tmpfs", tally, readyz_while_low=ready_during, readyz_after=ready_after)
    assert tally.lost == 0, sorted(tally.lost_ids)[:10]
    assert 503 in tally.codes and 500 not in tally.codes, tally.codes
    assert {"503 disk_full", "503 store_unavailable", "503 draining"} >= set(tally.error_codes), tally.error_codes
    assert "503 disk_full" in tally.error_codes and "503 store_unavailable" in tally.error_codes
    assert tally.retry_after_missing == 0
    assert ready_during == [503, 503] and ready_after == 200
    assert tally.recovery_seconds("reserve_freed") is not None and tally.recovery_seconds("disk_freed") is not None


def test_poison_events_are_dead_lettered_while_others_flow_and_replayed_after_the_fix(
    probed: Path, baked_python: Path, tmp_path: Path, processes: list[ServiceProcess]
) -> None:
    log, flag = tmp_path / "probe.log", tmp_path / "downstream-broken"
    flag.write_text("broken\n")
    env = {"SERVICE_BUS_URL": f"sqlite:///{tmp_path}/events.db", "SERVICE_MAX_ATTEMPTS": "2",
           "SERVICE_RETRY_BASE_SECONDS": "0.05", **QUIET, **probe_env(log, poison_flag=flag)}
    service = start(probed, baked_python, env, processes)
    driver = LoadDriver([service.url], rate=100, threads=8, poison=0.05)
    driver.run_for(4)
    poisoned = driver.poisoned_ids()
    healthy = {s.event_id for s in driver.sends if s.status == 202} - poisoned
    counts = wait_all_handled(log, healthy, 30)
    assert all(counts[event_id] for event_id in healthy)
    assert not any(counts[event_id] for event_id in poisoned)

    def dead() -> set[str]:
        listed = run_in(probed, baked_python, "python", "-m", "event_service", "dlq", "list", "--json", timeout=60,
                        **env)
        return {row["id"] for row in map(json.loads, listed.stdout.splitlines()) if row["handler"] == "probe"}

    deadline = time.monotonic() + 30
    while dead() != poisoned and time.monotonic() < deadline:
        time.sleep(0.5)
    dead_lettered = dead()
    assert dead_lettered == poisoned
    flag.unlink()  # the fix
    replayed_at = time.monotonic()
    replay = run_in(probed, baked_python, "python", "-m", "event_service", "dlq", "replay", "--all", timeout=60, **env)
    assert replay.returncode == 0, replay.stderr
    counts = wait_all_handled(log, poisoned, 30)
    tally = Tally.of(driver, counts)
    report("sqlite poison + dlq replay", tally, poisoned=len(poisoned), dead_lettered=len(dead_lettered),
           replay_handled_seconds=round(time.monotonic() - replayed_at, 2))
    assert tally.lost == 0 and tally.handled_twice == 0
    assert len(poisoned) > 5


def test_duplicates_concurrent_and_after_a_restart_are_handled_once(
    probed: Path, baked_python: Path, tmp_path: Path, processes: list[ServiceProcess]
) -> None:
    log = tmp_path / "probe.log"
    env = {"SERVICE_BUS_URL": f"sqlite:///{tmp_path}/events.db", **QUIET, **probe_env(log)}
    service = start(probed, baked_python, env, processes)
    driver = LoadDriver([service.url], rate=100, threads=8, duplicates=0.1, concurrent_duplicates=0.5).start()
    try:
        time.sleep(3)
        service.process.send_signal(signal.SIGTERM)  # a graceful restart: no crash window
        assert service.process.wait(30) == 0
        service = start(probed, baked_python, env, processes)
        driver.urls = [service.url]
        time.sleep(3)
    finally:
        driver.stop()
    counts = wait_all_handled(log, {s.event_id for s in driver.sends if s.status == 202}, 30)
    tally = Tally.of(driver, counts)
    repeats = tally.requests - tally.sent
    report("sqlite 10% duplicates + restart", tally, repeated_sends=repeats)
    assert repeats > 30
    assert tally.lost == 0 and tally.handled_twice == 0, sorted(tally.twice_ids)[:10]


def test_backpressure_with_a_slow_handler_holds_its_bound_with_retry_after_and_loses_nothing(
    probed: Path, baked_python: Path, tmp_path: Path, processes: list[ServiceProcess]
) -> None:
    log = tmp_path / "probe.log"
    bound = 150
    env = {"SERVICE_BUS_URL": f"sqlite:///{tmp_path}/events.db", "SERVICE_MAX_PENDING": str(bound),
           "SERVICE_WORKER_CONCURRENCY": "4", **QUIET, **probe_env(log, delay=0.1)}
    service = start(probed, baked_python, env, processes)
    peak = [0.0]
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            with contextlib.suppress(httpx.HTTPError, KeyError):  # a sample missed, not a failure
                peak[0] = max(peak[0], service.metric("bus_pending_events"))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    driver = LoadDriver([service.url], rate=150, threads=16)
    try:
        driver.run_for(5)
        counts = wait_all_handled(log, {s.event_id for s in driver.sends if s.status == 202}, 60)
    finally:
        watching.set()
        watcher.join(5)
    tally = Tally.of(driver, counts)
    # one request may go over: it is taken while the count is at the bound (backlog.py); three handlers an event
    report("sqlite backpressure", tally, max_pending=bound, peak_pending=peak[0],
           overshoot_percent=round(100 * max(0.0, peak[0] - bound) / bound, 1))
    assert tally.codes[503] > 0 and tally.retry_after_missing == 0
    assert {code.split()[1] for code in tally.error_codes} == {"backlog_full"}
    assert peak[0] <= bound + 3
    assert tally.lost == 0


def test_the_limits_table_of_the_reliability_doc_shows_the_runtimes_defaults(
    probed: Path, baked_python: Path
) -> None:
    printed = run_in(probed, baked_python, "python", "-m", "event_service", "settings", timeout=60)
    defaults = dict(re.findall(r"^\| `(SERVICE_[A-Z_]+)` \| `([^`]*)` \|", printed.stdout, re.M))
    section = (REPO_ROOT / "docs" / "reliability.md").read_text().split("## Store failures and crashes", 1)[1]
    rows = re.findall(r"^\| [^|]+ \| ((?:`SERVICE_[A-Z_]+`(?: / )?)+) \| (.+?) \|$", section, re.M)
    assert len(rows) >= 4
    for variables, shown in rows:
        names = re.findall(r"`(SERVICE_[A-Z_]+)`", variables)
        values = [part.split("`")[1] for part in shown.split(" / ")]
        assert [defaults[name] for name in names] == values, (names, values)
