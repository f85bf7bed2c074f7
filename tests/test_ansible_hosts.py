"""The Ansible deployment against real systemd hosts: a load balancer and two service hosts, each a Debian root
booted with systemd-nspawn in its own network namespace, reached over SSH (see tests/hosts/network.py).

The tests share one bake and one set of hosts (module scope) and run in order, each checking the state it starts
from: fresh deploy (0.1.0) -> rolling upgrade under load (0.2.0+g...) -> broken release (0.3.0) rolled back -> named
rollback to 0.1.0. Cost here: ~1 min the first time the Debian root is built, then ~6-8 min for the module.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from hosts.load import EventLoad
from hosts.network import HostNetwork, cannot_create_hosts_reason
from hosts.probes import (
    post_event,
    readiness,
    wait_for_balancer,
    wait_until_bus_empty,
)
from hosts.project import AUTH_TOKEN, DeployProject, build_wheel
from support import bake

pytestmark = [pytest.mark.slow, pytest.mark.hosts]

BALANCER, SERVICE_HOSTS = "ces-lb", ["ces-app1", "ces-app2"]
# The upgrade carries a local label like the release versions `make build` stamps (`<version>+g<commit>`).
FIRST, UPGRADE, BROKEN = "0.1.0", "0.2.0+g0123456789ab", "0.3.0"
SLUG = "event-service"
SERVICE_PORT, BALANCER_PORT = 8000, 80
BUS_DB = f"/var/lib/{SLUG}/events.db"
LOAD_SOURCE = "/tests/rolling-upgrade"
# The broken release's configuration points its bus at a path nobody can write, so /readyz never answers 200.
BROKEN_RELEASE_ARGS = "ANSIBLE_ARGS=-e service_bus_url=sqlite:////nonexistent/events.db"


@pytest.fixture(scope="module")
def host_network(tmp_path_factory: pytest.TempPathFactory):
    reason = cannot_create_hosts_reason()
    if reason is not None:
        pytest.skip(reason)
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    with HostNetwork([BALANCER, *SERVICE_HOSTS], key) as network:
        yield network


@pytest.fixture(scope="module")
def project(host_network: HostNetwork, tmp_path_factory: pytest.TempPathFactory) -> DeployProject:
    # Module scope (one bake for the whole deploy story): the plain bake() behind the bake_project fixture.
    root = bake(tmp_path_factory.mktemp("bake"))
    dist = root / "dist"
    for version in (FIRST, UPGRADE, BROKEN):
        build_wheel(sys.executable, root, dist, version)
    deploy = DeployProject(root, host_network, BALANCER, SERVICE_HOSTS)
    deploy.write_inventory(FIRST, {"service_health_timeout_seconds": 15})
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


def test_rolling_upgrade_under_load_fails_no_request_and_handles_every_accepted_event(project):
    ensure_deployed(project, FIRST)
    balancer = host(project, BALANCER)
    assert project.make("promote", f"VERSION={UPGRADE}").returncode == 0

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
    readings = wait_until_bus_empty(project.network, [host(project, n) for n in SERVICE_HOSTS], BUS_DB, LOAD_SOURCE)
    assert all(reading["open"] == 0 for reading in readings.values()), readings
    handled = set().union(*(reading["handled"] for reading in readings.values()))
    unhandled = set(result.accepted_ids) - handled
    assert unhandled == set(), f"{len(unhandled)} accepted events not handled, e.g. {sorted(unhandled)[:5]}"


def test_broken_release_is_rolled_back_on_the_first_host_and_rollback_restores_a_named_release(project):
    ensure_deployed(project, UPGRADE)
    balancer = host(project, BALANCER)
    assert project.make("promote", f"VERSION={BROKEN}").returncode == 0

    with EventLoad(balancer.address, BALANCER_PORT, AUTH_TOKEN, source="/tests/broken-release") as load:
        broken = project.make("deploy", BROKEN_RELEASE_ARGS)

    assert broken.returncode != 0
    assert f"Release {BROKEN} failed its health check on ces-app1" in broken.output, broken.output[-6000:]
    assert f"Rolled back to {UPGRADE}" in broken.output
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
