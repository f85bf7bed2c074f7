"""Checks of ansible/ that need no hosts: ansible-lint, --syntax-check, and the make fragment's own scripts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hosts.project import ansible_bin_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
ANSIBLE_DIR = REPO_ROOT / "ansible"
PLAYBOOKS = ["deploy.yml", "rollback.yml", "verify.yml", "metrics-targets.yml", "preflight.yml"]
# The make targets that act on ENV's hosts; each must refuse an environment there is no inventory for.
HOST_TARGETS = ["deploy", "verify", "drift", "rollback", "metrics-targets"]


def ansible_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{ansible_bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}


@pytest.mark.slow
def test_ansible_lint_passes_the_production_profile():
    result = subprocess.run(
        [str(ansible_bin_dir() / "ansible-lint"), "--offline", "--profile", "production", "--nocolor", "."],
        check=False, cwd=ANSIBLE_DIR, env=ansible_env(), text=True, capture_output=True, timeout=300,
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("environment", ["staging", "production"])
def test_every_playbook_passes_syntax_check_with_the_example_inventory(environment):
    inventory = ANSIBLE_DIR / "inventories" / environment / "hosts.yml"
    result = subprocess.run(
        [str(ansible_bin_dir() / "ansible-playbook"), "--syntax-check", "-i", str(inventory), *PLAYBOOKS],
        check=False, cwd=ANSIBLE_DIR, env=ansible_env(), text=True, capture_output=True, timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def deploy_tree(tmp_path: Path) -> Path:
    """A project folder with ansible/, deploy/service.yml and deploy/environments/, as a (SQLite) bake has them."""
    shutil.copytree(ANSIBLE_DIR, tmp_path / "ansible")
    environments = tmp_path / "deploy" / "environments"
    environments.mkdir(parents=True)
    (environments / "staging.yml").write_text('---\n# desired state\nservice_version: "0.1.0"\n')
    (environments / "production.yml").write_text('---\nservice_version: "0.1.0"\n')
    write_service_file(tmp_path, "sqlite")
    return tmp_path


def write_service_file(tree: Path, event_bus: str) -> None:
    (tree / "deploy" / "service.yml").write_text(f"---\nservice_name: event-service\nservice_event_bus: {event_bus}\n")


def make(tree: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-f", "ansible/deploy.mk", *args], check=False, cwd=tree,
        env={**os.environ, **env}, text=True, capture_output=True, timeout=60,
    )


def test_promote_writes_the_version_into_the_environment_file(deploy_tree):
    result = make(deploy_tree, "promote", "ENV=staging", "VERSION=1.2.3rc1+build.5")

    assert result.returncode == 0, result.stderr
    text = (deploy_tree / "deploy/environments/staging.yml").read_text()
    assert text == '---\n# desired state\nservice_version: "1.2.3rc1+build.5"\n'


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ENV=staging"], "give the version"),
        (["ENV=staging", "VERSION=1.0/evil"], "is not a version"),
        (["ENV=nowhere", "VERSION=1.0.0"], "does not exist"),
    ],
)
def test_promote_refuses_a_missing_or_bad_version_or_environment(deploy_tree, args, message):
    result = make(deploy_tree, "promote", *args)

    assert result.returncode != 0
    assert message in result.stderr
    assert 'service_version: "0.1.0"' in (deploy_tree / "deploy/environments/staging.yml").read_text()


# The real drift check runs against the test hosts (test_ansible_hosts.py); these pin down how the script reads
# ansible-playbook's recap, with a stand-in that prints a recap the way ansible-playbook does.
RECAP = """PLAY RECAP *********************************************************************
ces-app1                   : ok=28   changed={changed}    unreachable=0    failed=0    skipped=6    rescued=0
ces-lb                     : ok=5    changed=0    unreachable=0    failed=0    skipped=1    rescued=0
"""


@pytest.mark.parametrize(("changed", "drifted", "verdict"), [(0, False, "no drift"), (2, True, "differ from what git")])
def test_drift_exits_non_zero_only_when_the_check_run_would_change_a_host(deploy_tree, changed, drifted, verdict):
    stand_in = deploy_tree / "ansible-playbook"
    stand_in.write_text(f"#!/bin/sh\ncat <<'EOF'\n{RECAP.format(changed=changed)}EOF\n")
    stand_in.chmod(0o755)
    inventory = deploy_tree / "ansible/inventories/staging/hosts.yml"

    result = make(deploy_tree, "drift", "ENV=staging", f"ANSIBLE_PLAYBOOK={stand_in}")

    assert inventory.exists()
    assert (result.returncode != 0) == drifted
    assert verdict in result.stdout + result.stderr


def test_a_machine_without_ansible_gets_the_pinned_one_in_a_venv_on_first_use(deploy_tree):
    without_ansible = {"PATH": "/usr/bin:/bin"}
    assert shutil.which("ansible-playbook", path=without_ansible["PATH"]) is None
    planned = make(deploy_tree, "-n", "deploy", "ENV=staging", **without_ansible)
    assert planned.returncode == 0, planned.stderr
    lines = planned.stdout.splitlines()
    assert lines[:2] == ["python3 -m venv ansible/.venv",
                         "ansible/.venv/bin/python -m pip install --quiet -r ansible/requirements.txt"]
    assert "ansible/.venv/bin/ansible-playbook -i ansible/inventories/staging/hosts.yml" in lines[2]
    assert "ansible==" in (deploy_tree / "ansible" / "requirements.txt").read_text()


def recording_stand_in(tree: Path, name: str) -> tuple[Path, Path]:
    """An executable that only records that it ran, standing in for ansible-playbook or locust."""
    marker = tree / f"{name}.ran"
    stand_in = tree / name
    stand_in.write_text(f"#!/bin/sh\necho \"$@\" > {marker}\n")
    stand_in.chmod(0o755)
    return stand_in, marker


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_a_typo_in_env_fails_every_host_target_before_ansible_runs_and_names_the_environments(deploy_tree, target):
    playbook, ran = recording_stand_in(deploy_tree, "ansible-playbook")

    result = make(deploy_tree, target, "ENV=prodution", f"ANSIBLE_PLAYBOOK={playbook}")

    assert result.returncode != 0
    assert "ENV=prodution has no inventory" in result.stderr
    assert "valid environments: production, staging" in result.stderr
    assert not ran.exists()


@pytest.mark.parametrize("target", HOST_TARGETS)
def test_a_known_env_reaches_ansible(deploy_tree, target):
    """The other half of the typo test: the same call with a real environment does run the playbook."""
    playbook, ran = recording_stand_in(deploy_tree, "ansible-playbook")

    make(deploy_tree, target, "ENV=production", f"ANSIBLE_PLAYBOOK={playbook}")

    assert "inventories/production/hosts.yml" in ran.read_text()


def test_a_typo_in_env_fails_the_load_gate_before_locust_runs(deploy_tree):
    shutil.copytree(REPO_ROOT / "loadtests", deploy_tree / "loadtests", ignore=shutil.ignore_patterns("bench"))
    locust, ran = recording_stand_in(deploy_tree, "locust")

    result = subprocess.run(
        ["make", "--no-print-directory", "-f", "ansible/deploy.mk", "-f", "loadtests/loadtest.mk", "loadtest",
         "HOST=http://127.0.0.1:9", "ENV=prodution", f"LOCUST={locust}"],
        check=False, cwd=deploy_tree, text=True, capture_output=True, timeout=60,
    )

    assert result.returncode != 0
    assert "valid environments: production, staging" in result.stderr
    assert not ran.exists()


def test_promote_to_an_unknown_env_names_the_environments(deploy_tree):
    result = make(deploy_tree, "promote", "ENV=prodution", "VERSION=1.0.0")

    assert result.returncode != 0
    assert "there are: production staging" in result.stderr


def run_playbook(tree: Path, inventory: str, playbook: str) -> subprocess.CompletedProcess[str]:
    """ansible-playbook run directly (not through make), from the tree's ansible/ as deploy.mk runs it."""
    return subprocess.run(
        [str(ansible_bin_dir() / "ansible-playbook"), "-i", inventory, playbook],
        check=False, cwd=tree / "ansible", env={**ansible_env(), "ANSIBLE_CONFIG": str(tree / "ansible/ansible.cfg")},
        text=True, capture_output=True, timeout=120,
    )


@pytest.mark.slow
@pytest.mark.parametrize("playbook", ["deploy.yml", "rollback.yml", "verify.yml", "metrics-targets.yml"])
def test_every_playbook_refuses_an_inventory_that_is_not_an_environment(deploy_tree, playbook):
    # ansible-playbook alone warns "no inventory was parsed", matches no host and exits 0
    result = run_playbook(deploy_tree, "inventories/prodution/hosts.yml", playbook)

    assert result.returncode != 0, result.stdout[-3000:]
    assert "Valid environments: production, staging" in result.stdout + result.stderr


def write_inventory(tree: Path, name: str, service_hosts: list[str], standby_hosts: list[str] = (),
                    bus_url: str | None = None) -> str:
    """inventories/<name>/ with the given serving and standby hosts (never contacted: the checks run first)."""
    inventory = tree / "ansible" / "inventories" / name
    (inventory / "group_vars" / "all").mkdir(parents=True)
    lines = ["---", "all:", "  children:", "    service_hosts:", "      hosts:"]
    lines += [f"        {host}:" for host in service_hosts]
    if standby_hosts:
        lines += ["    service_standby_hosts:", "      hosts:"] + [f"        {host}:" for host in standby_hosts]
    (inventory / "hosts.yml").write_text("\n".join(lines) + "\n")
    settings = ["---", "deploy_environment: staging"] + ([f"service_bus_url: {bus_url}"] if bus_url else [])
    (inventory / "group_vars" / "all" / "main.yml").write_text("\n".join(settings) + "\n")
    return f"inventories/{name}/hosts.yml"


@pytest.mark.slow
@pytest.mark.parametrize("environment", ["staging", "production"])
def test_the_topology_check_accepts_the_shipped_inventories_for_the_default_sqlite_bake(deploy_tree, environment):
    result = run_playbook(deploy_tree, f"inventories/{environment}/hosts.yml", "preflight.yml")

    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.slow
def test_the_topology_check_refuses_two_active_sqlite_hosts_and_names_what_to_change(deploy_tree):
    inventory = write_inventory(deploy_tree, "split", ["app-1", "app-2"])

    result = run_playbook(deploy_tree, inventory, "deploy.yml")

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "2 hosts serve staging (service_hosts: app-1, app-2), but each keeps a store of its own" in output
    assert "handled twice" in output
    for option in ("Keep one host in service_hosts", "service_standby_hosts", "event_bus=redis", "service_bus_url"):
        assert option in output
    # the check ran first: no play that touches a host started
    assert "Configure the load balancers" not in output


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bus_url", "refusal"),
    [
        ("redis://:secret-password@10.0.0.5:6379/0", None),
        ("redis://127.0.0.1:6379/0", "each keeps a store of its own (app-1: redis://127.0.0.1:6379/0"),
        (None, "service_bus_url of app-1, app-2 is not a Redis URL"),
    ],
    ids=["shared-redis", "redis-on-each-host", "no-redis-url"],
)
def test_the_topology_check_lets_a_redis_bake_serve_from_several_hosts_only_on_one_shared_redis(
    deploy_tree, bus_url, refusal
):
    write_service_file(deploy_tree, "redis")
    inventory = write_inventory(deploy_tree, "scaled", ["app-1", "app-2"], bus_url=bus_url)

    result = run_playbook(deploy_tree, inventory, "preflight.yml")

    output = result.stdout + result.stderr
    if refusal is None:
        assert result.returncode == 0, output[-3000:]
    else:
        assert result.returncode != 0
        assert refusal in output
    assert "secret-password" not in output
