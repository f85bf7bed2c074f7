"""Real systemd test hosts for the Ansible tests: network namespaces joined by a bridge, each booting a copy of a
cached debootstrapped Debian root with systemd-nspawn, reached over SSH.

Everything this module creates is named with the `ces-` prefix and lives on 10.231.0.0/24, so a teardown (also of a
run that crashed earlier) removes exactly what the tests made and nothing else.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

CACHE_DIR = Path(os.environ.get("CES_HOST_CACHE", "/var/cache/cookiecutter-event-service"))
CACHED_ROOT = CACHE_DIR / "bookworm-root"
BUILD_ROOT_SCRIPT = Path(__file__).with_name("build-root.sh")
HOSTS_DIR = Path(os.environ.get("CES_HOSTS_DIR", "/var/tmp/ces-hosts"))
BRIDGE = "ces-br0"
SUBNET = "10.231.0"
BRIDGE_ADDRESS = f"{SUBNET}.1"
BOOT_TIMEOUT_SECONDS = 90
STOP_TIMEOUT_SECONDS = 20


def run(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, text=True, capture_output=True, timeout=timeout)


def cannot_create_hosts_reason() -> str | None:
    """Why this machine cannot run the test hosts, or None when it can."""
    if os.geteuid() != 0:
        return "test hosts need root (network namespaces, systemd-nspawn)"
    for tool in ("ip", "systemd-nspawn", "debootstrap", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: run .ci/setup-ansible.sh"
    probe = "ces-probe"
    created = run("ip", "netns", "add", probe, check=False)
    if created.returncode != 0:
        return f"this machine cannot create network namespaces: {created.stderr.strip()}"
    run("ip", "netns", "del", probe, check=False)
    return None


def ensure_cached_root() -> Path:
    """Build the Debian root once (~90 s) and reuse it on later runs."""
    subprocess.run(["bash", str(BUILD_ROOT_SCRIPT)], check=True, timeout=900)
    return CACHED_ROOT


@dataclass
class SystemdHost:
    """One booted systemd machine in its own network namespace."""

    name: str
    address: str
    root: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def netns(self) -> str:
        return self.name

    def ssh_argv(self, key: Path) -> list[str]:
        return [
            "ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=3", "-o", "BatchMode=yes", f"root@{self.address}",
        ]


class HostNetwork:
    """Creates, boots and removes a set of test hosts; use as a context manager so teardown always runs."""

    def __init__(self, host_names: list[str], key: Path, first_address: int = 10) -> None:
        self.key = key
        self.hosts = [
            SystemdHost(name, f"{SUBNET}.{first_address + index}", HOSTS_DIR / name, HOSTS_DIR / f"{name}.log")
            for index, name in enumerate(host_names)
        ]

    def __enter__(self) -> HostNetwork:
        try:
            remove_leftovers()
            cached_root = ensure_cached_root()
            HOSTS_DIR.mkdir(parents=True, exist_ok=True)
            run("ip", "link", "add", BRIDGE, "type", "bridge")
            run("ip", "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", BRIDGE)
            run("ip", "link", "set", BRIDGE, "up")
            for host in self.hosts:
                self._prepare_root(host, cached_root)
                self._connect(host)
                self._boot(host)
            for host in self.hosts:
                self._wait_until_running(host)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def ssh(self, host: SystemdHost, command: str, timeout: float = 30, check: bool = True) -> str:
        result = subprocess.run(
            [*host.ssh_argv(self.key), command], check=False, text=True, capture_output=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{host.name}: `{command}` failed ({result.returncode}): {result.stderr}")
        return result.stdout

    def _prepare_root(self, host: SystemdHost, cached_root: Path) -> None:
        # A plain copy (reflinked where the filesystem can) keeps every host's files apart; ~2-5 s per host.
        run("cp", "-a", "--reflink=auto", str(cached_root), str(host.root), timeout=300)
        ssh_dir = host.root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        public_key = self.key.with_suffix(".pub").read_text()
        (ssh_dir / "authorized_keys").write_text(public_key)
        os.chmod(ssh_dir / "authorized_keys", 0o600)
        (host.root / "etc/hostname").write_text(f"{host.name}\n")
        hosts_lines = [f"127.0.0.1 localhost {host.name}"] + [f"{h.address} {h.name}" for h in self.hosts]
        (host.root / "etc/hosts").write_text("\n".join(hosts_lines) + "\n")

    def _connect(self, host: SystemdHost) -> None:
        outside, inside = f"{host.name}-m", f"{host.name}-h"
        run("ip", "netns", "add", host.netns)
        run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        run("ip", "link", "set", outside, "master", BRIDGE, "up")
        run("ip", "link", "set", inside, "netns", host.netns)
        in_netns = ("ip", "netns", "exec", host.netns)
        run(*in_netns, "ip", "addr", "add", f"{host.address}/24", "dev", inside)
        run(*in_netns, "ip", "link", "set", inside, "up")
        run(*in_netns, "ip", "link", "set", "lo", "up")
        run(*in_netns, "ip", "route", "add", "default", "via", BRIDGE_ADDRESS)

    def _boot(self, host: SystemdHost) -> None:
        with open(host.log_path, "wb") as log:
            host.process = subprocess.Popen(
                [
                    "systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "-D", str(host.root),
                    f"--machine={host.name}", f"--network-namespace-path=/run/netns/{host.netns}", "-b",
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        (HOSTS_DIR / f"{host.name}.pid").write_text(str(host.process.pid))

    def _wait_until_running(self, host: SystemdHost) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_SECONDS
        last_error = ""
        while time.monotonic() < deadline:
            if host.process is not None and host.process.poll() is not None:
                raise RuntimeError(f"{host.name} exited while booting; see {host.log_path}")
            result = subprocess.run(
                [*host.ssh_argv(self.key), "systemctl is-system-running --wait"],
                check=False, text=True, capture_output=True, timeout=BOOT_TIMEOUT_SECONDS,
            )
            state = result.stdout.strip()
            if state in ("running", "degraded"):
                return
            last_error = state or result.stderr.strip()
            time.sleep(1)
        raise TimeoutError(f"{host.name} did not finish booting in {BOOT_TIMEOUT_SECONDS} s: {last_error}")

    def close(self) -> None:
        stop_hosts({host.name: host.process for host in self.hosts})
        remove_leftovers()


def stop_hosts(processes: dict[str, subprocess.Popen[bytes] | None]) -> None:
    """Power the containers off together (nspawn turns SIGTERM into a clean shutdown), then kill any that hang."""
    pids: dict[str, int] = {}
    for name, process in processes.items():
        pid_file = HOSTS_DIR / f"{name}.pid"
        pid = process.pid if process is not None else None
        if pid is None and pid_file.exists():
            pid = int(pid_file.read_text())
        if pid is not None and _is_nspawn(pid):
            os.kill(pid, signal.SIGTERM)
            pids[name] = pid
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and any(_is_alive(pid, processes[name]) for name, pid in pids.items()):
        time.sleep(0.2)
    for name, pid in pids.items():
        if _is_alive(pid, processes[name]):
            os.killpg(pid, signal.SIGKILL)
        process = processes[name]
        if process is not None:
            process.wait(timeout=10)
    for name in processes:
        (HOSTS_DIR / f"{name}.pid").unlink(missing_ok=True)


def _is_nspawn(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "systemd-nspawn"
    except OSError:
        return False


def _is_alive(pid: int, process: subprocess.Popen[bytes] | None) -> bool:
    if process is not None:
        return process.poll() is None
    return _is_nspawn(pid)


def remove_leftovers() -> None:
    """Remove the namespaces, links, pid-file processes and host roots of this module (also from crashed runs)."""
    if HOSTS_DIR.exists():
        stop_hosts(dict.fromkeys((pid_file.stem for pid_file in HOSTS_DIR.glob("ces-*.pid")), None))
    netns_list = run("ip", "netns", "list", check=False).stdout.split()
    for netns in netns_list:
        if netns.startswith("ces-"):
            run("ip", "netns", "del", netns, check=False)
    links = run("ip", "-o", "link", "show", check=False).stdout.splitlines()
    for line in links:
        link = line.split(":")[1].strip().split("@")[0]
        if link.startswith("ces-"):
            run("ip", "link", "del", link, check=False)
    if HOSTS_DIR.exists():
        shutil.rmtree(HOSTS_DIR, ignore_errors=True)
