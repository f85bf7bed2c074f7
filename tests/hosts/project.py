"""A baked service prepared for deployment to the test hosts: wheels of several versions in dist/, a `test`
inventory (with an Ansible Vault file) and deploy/environments/test.yml, and helpers that run its make targets."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .network import HostNetwork

ENVIRONMENT = "test"
AUTH_TOKEN = "test-token-for-the-hosts"
VAULT_PASSWORD = "test-vault-password"
RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                        r"\s+failed=(?P<failed>\d+)", re.MULTILINE)


def ansible_bin_dir() -> Path:
    """Folder of ansible-playbook: next to the interpreter running the tests, else on PATH."""
    here = Path(sys.executable).parent
    if (here / "ansible-playbook").exists():
        return here
    found = shutil.which("ansible-playbook")
    if found is None:
        raise RuntimeError("ansible-playbook is not installed: pip install -r tests/requirements/ansible.txt")
    return Path(found).parent


def build_wheel(python: str, project: Path, dist: Path, version: str) -> Path:
    """Build the project's wheel at `version` (a copy with the version bumped in pyproject.toml when it differs)."""
    source = project
    pyproject = (project / "pyproject.toml").read_text()
    current = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE)
    if current is None:
        raise RuntimeError(f"no version in {project / 'pyproject.toml'}")
    if current.group(1) != version:
        source = dist.parent / f"source-{version}"
        shutil.copytree(project, source, ignore=shutil.ignore_patterns("dist", ".tox", ".venv", "ansible"))
        (source / "pyproject.toml").write_text(pyproject.replace(current.group(0), f'version = "{version}"', 1))
    subprocess.run(
        [python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-cache-dir",
         "-w", str(dist), str(source)],
        check=True, timeout=300,
    )
    wheels = list(dist.glob(f"*-{version}-py3-none-any.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel of {version} in {dist}, found {wheels}")
    return wheels[0]


@dataclass
class PlaybookRun:
    returncode: int
    output: str
    seconds: float

    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP counts per host (ok, changed, unreachable, failed)."""
        return {
            match["host"]: {key: int(match[key]) for key in ("ok", "changed", "unreachable", "failed")}
            for match in RECAP_LINE.finditer(self.output)
        }

    def changed(self) -> int:
        return sum(counts["changed"] for counts in self.recap().values())


class DeployProject:
    """The bake's folder with everything `make deploy ENV=test` needs to reach the test hosts."""

    def __init__(self, root: Path, network: HostNetwork, loadbalancer: str, service_hosts: list[str]) -> None:
        self.root = root
        self.ansible_dir = root / "ansible"
        self.network = network
        self.loadbalancer = loadbalancer
        self.service_hosts = service_hosts
        self.vault_password_file = root / ".vault-password"

    @property
    def env_file(self) -> Path:
        return self.root / "deploy" / "environments" / f"{ENVIRONMENT}.yml"

    def write_inventory(self, first_version: str, extra_vars: dict[str, object]) -> None:
        inventory_dir = self.ansible_dir / "inventories" / ENVIRONMENT
        group_vars = inventory_dir / "group_vars" / "all"
        group_vars.mkdir(parents=True, exist_ok=True)
        hosts = {host.name: host for host in self.network.hosts}

        def host_lines(names: list[str]) -> str:
            return "".join(f"        {name}:\n          ansible_host: {hosts[name].address}\n" for name in names)

        (inventory_dir / "hosts.yml").write_text(
            "all:\n  children:\n"
            f"    loadbalancers:\n      hosts:\n{host_lines([self.loadbalancer])}"
            f"    service_hosts:\n      hosts:\n{host_lines(self.service_hosts)}"
        )
        settings = {
            "deploy_environment": ENVIRONMENT,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.network.key),
            # Test hosts are created anew each run, so their host keys are unknown by design.
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": "/usr/bin/python3",
            "service_auth_tokens": "{{ vault_service_auth_tokens }}",
            **extra_vars,
        }
        (group_vars / "main.yml").write_text(
            "---\n" + "".join(f"{key}: {_yaml_scalar(value)}\n" for key, value in settings.items())
        )
        self.vault_password_file.write_text(VAULT_PASSWORD + "\n")
        vault_file = group_vars / "vault.yml"
        vault_file.write_text(f"---\nvault_service_auth_tokens:\n  - {AUTH_TOKEN}\n")
        subprocess.run(
            [str(ansible_bin_dir() / "ansible-vault"), "encrypt", "--vault-password-file",
             str(self.vault_password_file), str(vault_file)],
            check=True, capture_output=True, timeout=60,
        )
        self.env_file.parent.mkdir(parents=True, exist_ok=True)
        self.env_file.write_text(f'---\nservice_version: "{first_version}"\n')

    def make(self, target: str, *args: str, timeout: float = 600, **extra_env: str) -> PlaybookRun:
        """Run a target of the bake's Makefile (which includes ansible/deploy.mk) against the test environment."""
        env = {
            **os.environ,
            **extra_env,
            "ANSIBLE_VAULT_PASSWORD_FILE": str(self.vault_password_file),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{ansible_bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        started = time.monotonic()
        result = subprocess.run(
            ["make", "--no-print-directory", target, f"ENV={ENVIRONMENT}", *args],
            check=False, cwd=self.root, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
        )
        return PlaybookRun(result.returncode, result.stdout, time.monotonic() - started)


def _yaml_scalar(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value).lower() if isinstance(value, bool) else str(value)
