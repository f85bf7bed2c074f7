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
PLAYBOOKS = ["deploy.yml", "rollback.yml", "verify.yml"]


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
    """A project folder with ansible/ and deploy/environments/staging.yml, as a bake has them."""
    shutil.copytree(ANSIBLE_DIR, tmp_path / "ansible")
    environments = tmp_path / "deploy" / "environments"
    environments.mkdir(parents=True)
    (environments / "staging.yml").write_text('---\n# desired state\nservice_version: "0.1.0"\n')
    return tmp_path


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
