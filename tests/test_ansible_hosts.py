"""The Ansible deployment against real systemd hosts: a load balancer and two service hosts, each a Debian root
booted with systemd-nspawn in its own network namespace, reached over SSH (see tests/hosts/network.py).

Two hosts behind one balancer keep the bus's promises only on a shared store, so the bake is a Redis bake and its
Redis runs on this machine, bound to the test network's bridge (tests/hosts/shared_redis.py); a SQLite bake serves
from one host, and refusing two is checked without hosts (test_ansible_static.py).

The tests share one bake and one set of hosts (module scope) and run in order, each checking the state it starts
from: fresh deploy (0.1.0) -> duplicates sent to both hosts, and the load gate reading every host -> rolling upgrade
under load (0.2.0+g...) -> broken release (0.3.0) rolled back -> named rollback to 0.1.0. Cost on this 2-core
machine under other suites' load: 8-10 min for the module (figures in docs/deploy.md), plus ~160 s once to build the
cached Debian root.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
from hosts.load import EVENT_TYPE, EventLoad
from hosts.network import HostNetwork, cannot_create_hosts_reason
from hosts.probes import event_counters, post_event, post_event_answer, readiness, wait_for_balancer
from hosts.project import AUTH_TOKEN, DeployProject, build_wheel
from hosts.shared_redis import SharedRedis, cannot_run_redis_reason
from support import bake

pytestmark = [pytest.mark.slow, pytest.mark.hosts]

BALANCER, SERVICE_HOSTS = "ces-lb", ["ces-app1", "ces-app2"]
# The upgrade carries a local label like the release versions `make build` stamps (`<version>+g<commit>`).
FIRST, UPGRADE, BROKEN = "0.1.0", "0.2.0+g0123456789ab", "0.3.0"
SLUG = "event-service"
SERVICE_PORT, BALANCER_PORT = 8000, 80
LOAD_SOURCE = "/tests/rolling-upgrade"
# The broken release's configuration points its bus at a port where no Redis listens, so /readyz never answers 200.
BROKEN_RELEASE_ARGS = "ANSIBLE_ARGS=-e service_bus_url=redis://10.231.0.1:1/0"
PLACED_HANDLERS = ("reserve_stock", "send_order_confirmation")


@pytest.fixture(scope="module")
def host_network(tmp_path_factory: pytest.TempPathFactory):
    reason = cannot_create_hosts_reason() or cannot_run_redis_reason()
    if reason is not None:
        pytest.skip(reason)
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    with HostNetwork([BALANCER, *SERVICE_HOSTS], key) as network:
        yield network


@pytest.fixture(scope="module")
def shared_redis(host_network: HostNetwork, tmp_path_factory: pytest.TempPathFactory):
    # after the network: it binds to the bridge's address, which exists only while the hosts do
    with SharedRedis(tmp_path_factory.mktemp("redis"), prefix=SLUG) as redis:
        yield redis


@pytest.fixture(scope="module")
def project(host_network: HostNetwork, shared_redis: SharedRedis,
            tmp_path_factory: pytest.TempPathFactory) -> DeployProject:
    # Module scope (one bake for the whole deploy story): the plain bake() behind the bake_project fixture.
    root = bake(tmp_path_factory.mktemp("bake"), event_bus="redis")
    dist = root / "dist"
    for version in (FIRST, UPGRADE, BROKEN):
        build_wheel(sys.executable, root, dist, version)
    deploy = DeployProject(root, host_network, BALANCER, SERVICE_HOSTS)
    deploy.write_inventory(FIRST, {"service_health_timeout_seconds": 15, "service_bus_url": shared_redis.url})
    return deploy


def host(project: DeployProject, name: str):
    return next(h for h in project.network.hosts if h.name == name)


def versions_on_hosts(project: DeployProject) -> dict[str, object]:
    return {name: readiness(host(project, name).address, SERVICE_PORT)[1].get("version") for name in SERVICE_HOSTS}


def service_logs(project: DeployProject) -> str:
    """The unit's state and last log lines on every service host, for failure messages."""
    command = f"systemctl status {SLUG} --no-pager --lines=0; journalctl -u {SLUG} --no-pager -n 25"
    return "\n".join(
        f"--- {name}\n{project.network.ssh(host(project, name), command, check=False)}" for name in SERVICE_HOSTS
    )


def ensure_deployed(project: DeployProject, version: str) -> None:
    """Bring the hosts to `version` when an earlier test did not leave them there."""
    if versions_on_hosts(project) != dict.fromkeys(SERVICE_HOSTS, version):
        assert project.make("promote", f"VERSION={version}").returncode == 0
        run = project.make("deploy")
        assert run.returncode == 0, run.output[-4000:]


def test_fresh_deploy_serves_both_hosts_behind_the_balancer_and_a_second_run_changes_nothing(project):
    first = project.make("deploy")

    assert first.returncode == 0, first.output[-6000:]
    assert versions_on_hosts(project) == dict.fromkeys(SERVICE_HOSTS, FIRST), service_logs(project)
    balancer = host(project, BALANCER)
    assert wait_for_balancer(project.network, balancer, SLUG, SERVICE_HOSTS) == dict.fromkeys(SERVICE_HOSTS, "UP")
    status, body = readiness(balancer.address, BALANCER_PORT)
    assert (status, body.get("version")) == (200, FIRST)
    # The token comes from the vault file of the test inventory: without it the service refuses events.
    event = {"specversion": "1.0", "id": "fresh-1", "source": "/tests/fresh", "type": "com.example.order.placed",
             "subject": "o-1", "data": {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 1, "currency": "EUR"}}
    assert post_event(balancer.address, BALANCER_PORT, event, token=None) == 401
    assert post_event(balancer.address, BALANCER_PORT, event, token=AUTH_TOKEN) == 202
    app1 = host(project, "ces-app1")
    assert project.network.ssh(app1, f"stat -c '%a %U %G' /opt/{SLUG}/current/secrets.env").split() == [
        "640", "root", SLUG]
    unit = project.network.ssh(app1, f"systemctl show {SLUG} -p User -p Restart -p MemoryMax -p LimitNOFILE")
    assert sorted(unit.split()) == sorted([f"User={SLUG}", "Restart=on-failure", f"MemoryMax={512 * 1024**2}",
                                           "LimitNOFILE=65536"])

    second = project.make("deploy")
    drift = project.make("drift")
    verify = project.make("verify")

    assert second.returncode == 0, second.output[-4000:]
    assert second.changed() == 0, second.recap()
    assert drift.returncode == 0, drift.output[-4000:]
    assert "drift check: no drift" in drift.output
    assert verify.returncode == 0, verify.output[-4000:]
    print(f"\nfresh deploy {first.seconds:.0f} s, second run {second.seconds:.0f} s, drift check {drift.seconds:.0f} s, "
          f"verify {verify.seconds:.0f} s")


def placed_event(source: str) -> dict[str, object]:
    event_id = str(uuid.uuid4())
    return {"specversion": "1.0", "id": event_id, "source": source, "type": EVENT_TYPE, "subject": f"o-{event_id[:8]}",
            "data": {"order_id": f"o-{event_id[:8]}", "customer_id": "c-1", "amount_cents": 1, "currency": "EUR"}}


def counters_on_hosts(project: DeployProject) -> dict[tuple[str, str], float]:
    """events_*_total summed over the service hosts, each read directly (not through the balancer)."""
    total: dict[tuple[str, str], float] = {}
    for name in SERVICE_HOSTS:
        for key, value in event_counters(host(project, name).address, SERVICE_PORT).items():
            total[key] = total.get(key, 0.0) + value
    return total


def test_duplicates_sent_to_different_hosts_are_handled_once_and_the_gate_reads_every_host(project, shared_redis):
    ensure_deployed(project, FIRST)
    app1, app2, balancer = (host(project, name) for name in (*SERVICE_HOSTS, BALANCER))
    shared_redis.wait_until_delivered()
    counters_before, stored_before = counters_on_hosts(project), shared_redis.bus_state()["seq"]
    events = [placed_event("/tests/duplicates") for _ in range(20)]

    first_answers = [post_event_answer(app1.address, SERVICE_PORT, event, AUTH_TOKEN) for event in events]
    # the same events again, to the other host: a client retrying after a lost answer, through another backend
    retried_answers = [post_event_answer(app2.address, SERVICE_PORT, event, AUTH_TOKEN) for event in events]

    assert first_answers == [(202, {"accepted": 1, "duplicates": 0})] * len(events)
    assert retried_answers == [(202, {"accepted": 0, "duplicates": 1})] * len(events)
    state = shared_redis.wait_until_delivered()
    counters_after = counters_on_hosts(project)
    increase = {key: counters_after.get(key, 0.0) - counters_before.get(key, 0.0) for key in counters_after}
    assert (state["owed"], state["dead"], state["seq"] - stored_before) == (0, 0, len(events))
    assert increase[("events_accepted_total", "")] == len(events)
    assert increase[("events_duplicates_total", "")] == len(events)
    for handler in PLACED_HANDLERS:  # handled once each, on whichever host owned the partition
        assert increase[("events_processed_total", handler)] == len(events), increase

    # The release gate through the balancer, with deliberate duplicates that round-robin onto the other host: it
    # reads /metrics of every host the inventory serves from (ENV=test), so its counts add up.
    gate = project.make(
        "loadtest", f"HOST=http://{balancer.address}:{BALANCER_PORT}", f"LOCUST={sys.executable} -m locust",
        "LOADTEST_ARGS=-t 6s -u 4 -r 4 --user-throughput 10 --batch-size 10 --duplicate-ratio 0.2 "
        "--drain-timeout-seconds 30",
        LOADTEST_AUTH_TOKEN=AUTH_TOKEN,
    )

    assert gate.returncode == 0, gate.output[-4000:]
    assert "loadtest gate: PASSED (exit code 0)" in gate.output
    targets = (project.root / "reports" / "loadtest" / "metrics-targets.txt")
    assert targets.read_text().strip() == ",".join(
        f"http://{h.address}:{SERVICE_PORT}/metrics" for h in (app1, app2))
    report = json.loads((project.root / "reports" / "loadtest" / "gate.json").read_text())
    assert report["delivery"] and all(row["lost"] == 0 for row in report["delivery"]), report["delivery"]
    sent = sum(counts["duplicates_sent"] for counts in report["events"]["per_type"].values())
    assert sent > 0 and report["events"]["reported"]["reported_duplicates"] == sent
    gate_lines = [line for line in gate.output.splitlines() if line.startswith("loadtest gate:")]
    print(f"\nduplicates: {len(events)} sent to both hosts, handled once; gate {gate.seconds:.0f} s, {sent} duplicates "
          "through the balancer, all skipped\n" + "\n".join(gate_lines))


def test_rolling_upgrade_under_load_fails_no_request_and_handles_every_accepted_event(project, shared_redis):
    ensure_deployed(project, FIRST)
    balancer = host(project, BALANCER)
    assert project.make("promote", f"VERSION={UPGRADE}").returncode == 0
    stored_before = shared_redis.wait_until_delivered()["seq"]

    with EventLoad(balancer.address, BALANCER_PORT, AUTH_TOKEN, source=LOAD_SOURCE) as load:
        time.sleep(2)
        upgrade = project.make("deploy")
        time.sleep(2)

    assert upgrade.returncode == 0, upgrade.output[-6000:]
    assert versions_on_hosts(project) == dict.fromkeys(SERVICE_HOSTS, UPGRADE), service_logs(project)
    result = load.result
    print(f"\nrolling upgrade {upgrade.seconds:.0f} s under load: {result.sent} requests, "
          f"{len(result.accepted_ids)} accepted, {len(result.failures)} failed {dict(result.statuses)}")
    assert result.failures == []
    assert len(result.accepted_ids) > 100
    # Every 202 stored one new event (unique ids; a retry the balancer sent to the other host was a duplicate there),
    # and every delivery the shared bus owed was done, none dead-lettered: each accepted event was handled.
    state = shared_redis.wait_until_delivered()
    assert state["seq"] - stored_before == len(result.accepted_ids), state
    assert (state["owed"], state["dead"]) == (0, 0), state


def test_broken_release_is_rolled_back_on_the_first_host_and_rollback_restores_a_named_release(project):
    ensure_deployed(project, UPGRADE)
    balancer = host(project, BALANCER)
    assert project.make("promote", f"VERSION={BROKEN}").returncode == 0

    with EventLoad(balancer.address, BALANCER_PORT, AUTH_TOKEN, source="/tests/broken-release") as load:
        broken = project.make("deploy", BROKEN_RELEASE_ARGS)

    assert broken.returncode != 0
    assert f"Release {BROKEN} failed its health check on ces-app1" in broken.output, broken.output[-6000:]
    assert f"Rolled back to {UPGRADE}" in broken.output
    # the failure names the unit's own last lines, so the pipeline's log shows why without a login to the host
    assert "Last log lines of the unit: " in broken.output and f"{SLUG}[" in broken.output, broken.output[-6000:]
    assert versions_on_hosts(project) == dict.fromkeys(SERVICE_HOSTS, UPGRADE), service_logs(project)
    untouched = project.network.ssh(host(project, "ces-app2"), f"ls /opt/{SLUG}/releases").split()
    assert BROKEN not in untouched
    assert wait_for_balancer(project.network, balancer, SLUG, SERVICE_HOSTS) == dict.fromkeys(SERVICE_HOSTS, "UP")
    assert load.result.failures == []
    status, body = readiness(balancer.address, BALANCER_PORT)
    assert (status, body.get("version")) == (200, UPGRADE)

    rollback = project.make("rollback", f"RELEASE={FIRST}")
    drift = project.make("drift")

    assert rollback.returncode == 0, rollback.output[-6000:]
    assert versions_on_hosts(project) == dict.fromkeys(SERVICE_HOSTS, FIRST), service_logs(project)
    assert wait_for_balancer(project.network, balancer, SLUG, SERVICE_HOSTS) == dict.fromkeys(SERVICE_HOSTS, "UP")
    # Git still names the broken release, so the hosts have drifted from it and the check says so.
    assert drift.returncode != 0
    assert "the hosts differ from what git describes" in drift.output, drift.output[-4000:]
    print(f"\nbroken release {broken.seconds:.0f} s, named rollback {rollback.seconds:.0f} s, drift {drift.seconds:.0f} s")
