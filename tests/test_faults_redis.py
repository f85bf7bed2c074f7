"""Fault suite, Redis bake: real processes started with the bake's CLI, a private redis-server per test (killed,
hung with SIGSTOP, refusing writes, its AOF's disk filled), real signals, a real small tmpfs.

Each test adds the probe handler (tests/faults) to a redis bake, drives steady load with unique ids, injects a
fault, and checks by event id that every event answered 202 was handled (zero lost), and afterwards that nothing
is pending (no key blocked, no delivery stranded). Each prints its figures: sent, accepted, handled, lost, handled
twice, the status codes seen and recovery times (docs/reliability.md, "Store failures and crashes").
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from faults.counter import Tally, wait_all_handled
from faults.load import LoadDriver
from faults.probe import add_probe, probe_env
from faults.redis_server import RedisServer
from service_process import ServiceProcess

pytestmark = [pytest.mark.slow, pytest.mark.redis]

QUIET = {"SERVICE_LOG_LEVEL": "ERROR"}
PARTITIONS = 16


@pytest.fixture
def probed(bake_project: Callable[..., Path]) -> Path:
    project = bake_project(event_bus="redis")
    add_probe(project)
    return project


@pytest.fixture
def processes() -> Iterator[list[ServiceProcess]]:
    """Every service a test starts; whatever still runs at the end is killed by PID."""
    started: list[ServiceProcess] = []
    yield started
    for service in started:
        service.stop(signal.SIGKILL)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder)
    server.start()
    yield server
    server.kill()


def start(project: Path, python: Path, env: dict[str, str], started: list[ServiceProcess]) -> ServiceProcess:
    service = ServiceProcess(project, python, env=env)
    started.append(service)
    service.wait_ready(30)
    return service


def settled(service: ServiceProcess, timeout: float) -> float:
    """Seconds until nothing is pending (every accepted delivery done: no key blocked, nothing stranded)."""
    began = time.monotonic()
    service.wait_idle(timeout)
    return round(time.monotonic() - began, 2)


def readiness(service: ServiceProcess) -> int:
    try:
        return httpx.get(f"{service.url}/readyz", timeout=5).status_code
    except httpx.HTTPError:
        return 0


def finish(name: str, driver: LoadDriver, log: Path, service: ServiceProcess, **more: object) -> Tally:
    counts = wait_all_handled(log, {s.event_id for s in driver.sends if s.status == 202}, 60)
    more["settled_after_load_seconds"] = settled(service, 60)
    tally = Tally.of(driver, counts)
    print(f"\nFAULT {name}: {json.dumps({**tally.figures(), **more})}")
    assert tally.lost == 0, sorted(tally.lost_ids)[:10]
    assert 500 not in tally.codes, tally.codes
    assert tally.retry_after_missing == 0
    return tally


def test_kill_9_of_one_of_two_processes_under_load_its_partitions_are_served_within_5_s(
    probed: Path, baked_python: Path, tmp_path: Path, redis_server: RedisServer, processes: list[ServiceProcess]
) -> None:
    log = tmp_path / "probe.log"
    env = {"SERVICE_BUS_URL": redis_server.url, **QUIET, **probe_env(log)}
    survivor, victim = (start(probed, baked_python, env, processes) for _ in range(2))
    leases = [f"event-service:lease:{p}" for p in range(PARTITIONS)]

    def owners() -> list[str]:
        return redis_server.cli("mget", *leases).split("\n")

    deadline = time.monotonic() + 20
    while len(set(owners())) != 2 or "" in owners():  # both own partitions before the kill
        assert time.monotonic() < deadline, owners()
        time.sleep(0.1)
    driver = LoadDriver([survivor.url, victim.url], rate=100, threads=8).start()
    try:
        time.sleep(3)
        victim.process.send_signal(signal.SIGKILL)
        killed_at = driver.mark("kill")
        driver.urls = [survivor.url]
        while len(set(owners())) != 1 or "" in owners():
            assert time.monotonic() - killed_at < 15, owners()
            time.sleep(0.05)
        takeover = round(time.monotonic() - killed_at, 2)
        time.sleep(3)
    finally:
        driver.stop()
    tally = finish("redis kill -9 one of two", driver, log, survivor, takeover_seconds=takeover)
    assert takeover < 6.0  # lease 3 s + a tick of 1 s; a second of margin for a busy machine
    assert tally.accepted > 400
    assert set(tally.codes) <= {0, 202}, tally.codes  # the victim's requests in flight get no answer


def test_redis_killed_for_10_s_under_load_503s_then_recovers_by_itself(
    probed: Path, baked_python: Path, tmp_path: Path, redis_server: RedisServer, processes: list[ServiceProcess]
) -> None:
    log = tmp_path / "probe.log"
    env = {"SERVICE_BUS_URL": redis_server.url, **QUIET, **probe_env(log)}
    service = start(probed, baked_python, env, processes)
    driver = LoadDriver([service.url], rate=100, threads=8).start()
    try:
        time.sleep(2)
        redis_server.kill()
        driver.mark("redis_killed")
        time.sleep(2)
        ready_while_down = readiness(service)
        time.sleep(8)
        redis_server.start()  # same port, same AOF
        driver.mark("redis_back")
        time.sleep(4)
    finally:
        driver.stop()
    tally = finish("redis killed 10 s", driver, log, service, readyz_while_down=ready_while_down)
    assert ready_while_down == 503 and readiness(service) == 200
    assert 503 in tally.codes and set(tally.codes) <= {202, 503}, tally.codes
    assert tally.recovery_seconds("redis_back") is not None


def test_redis_hung_past_the_client_timeout_strands_nothing(
    probed: Path, baked_python: Path, tmp_path: Path, redis_server: RedisServer, processes: list[ServiceProcess]
) -> None:
    log = tmp_path / "probe.log"
    # a 1 s socket timeout and a 4 s hang: every call of the hang times out, and Redis runs them all on SIGCONT;
    # a lease longer than the hang, so no lapse and re-take of the partitions hides a read whose reply was lost
    env = {"SERVICE_BUS_URL": redis_server.url, "SERVICE_REDIS_SOCKET_TIMEOUT_SECONDS": "1",
           "SERVICE_REDIS_LEASE_SECONDS": "30", **QUIET, **probe_env(log)}  # fmt: skip
    service = start(probed, baked_python, env, processes)
    driver = LoadDriver([service.url], rate=100, threads=8).start()
    try:
        time.sleep(2)
        redis_server.pause()
        driver.mark("hang")
        time.sleep(2)
        ready_while_hung = readiness(service)
        time.sleep(2)
        redis_server.resume()
        driver.mark("resumed")
        time.sleep(4)
    finally:
        redis_server.resume()
        driver.stop()
    tally = finish("redis hung 4 s (SIGSTOP)", driver, log, service, readyz_while_hung=ready_while_hung)
    assert ready_while_hung == 503
    assert 503 in tally.codes and set(tally.codes) <= {202, 503}, tally.codes
    assert tally.recovery_seconds("resumed") is not None


def test_redis_refusing_writes_for_3_s_blocks_no_key(
    probed: Path, baked_python: Path, tmp_path: Path, redis_server: RedisServer, processes: list[ServiceProcess]
) -> None:
    log = tmp_path / "probe.log"
    env = {"SERVICE_BUS_URL": redis_server.url, **QUIET, **probe_env(log)}
    service = start(probed, baked_python, env, processes)
    driver = LoadDriver([service.url], rate=100, threads=8).start()
    try:
        time.sleep(2)
        redis_server.cli("config", "set", "min-replicas-to-write", "1")  # every write: -NOREPLICAS
        driver.mark("refusing")
        time.sleep(1.5)
        ready_while_refusing = readiness(service)
        time.sleep(1.5)
        redis_server.cli("config", "set", "min-replicas-to-write", "0")
        driver.mark("writes_back")
        time.sleep(4)
    finally:
        redis_server.cli("config", "set", "min-replicas-to-write", "0")
        driver.stop()
    tally = finish("redis refusing writes 3 s", driver, log, service, readyz_while_refusing=ready_while_refusing)
    assert ready_while_refusing == 503
    assert any(code.startswith("503 store_unavailable") for code in tally.error_codes), tally.error_codes
    assert tally.recovery_seconds("writes_back") is not None


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True, timeout=10)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=10)


def test_redis_disk_full_answers_503_and_recovers_when_space_is_freed(
    probed: Path, baked_python: Path, tmp_path: Path, small_tmpfs: Path, processes: list[ServiceProcess]
) -> None:
    log = tmp_path / "probe.log"
    # everysec: on a failed AOF write Redis refuses writes (-MISCONF) until a write succeeds again; with `always`
    # it exits instead (a Redis crash, the 10 s test above)
    redis_server = RedisServer(small_tmpfs, appendfsync="everysec")
    redis_server.start()
    try:
        env = {"SERVICE_BUS_URL": redis_server.url, **QUIET, **probe_env(log)}
        service = start(probed, baked_python, env, processes)
        driver = LoadDriver([service.url], rate=100, threads=8).start()
        try:
            time.sleep(2)
            ballast = small_tmpfs / "ballast"
            subprocess.run(["dd", "if=/dev/zero", f"of={ballast}", "bs=1M", "count=64"], capture_output=True,
                           timeout=30)  # fmt: skip  # fills the filesystem; dd stops at ENOSPC
            driver.mark("disk_full")
            time.sleep(3)
            ready_while_full = readiness(service)
            ballast.unlink()
            driver.mark("disk_freed")
            time.sleep(4)
        finally:
            driver.stop()
        tally = finish("redis AOF disk full", driver, log, service, readyz_while_full=ready_while_full)
        assert ready_while_full == 503
        assert 503 in tally.codes and set(tally.codes) <= {202, 503}, tally.codes
        assert tally.recovery_seconds("disk_freed") is not None
    finally:
        redis_server.kill()
