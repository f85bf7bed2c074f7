"""A bake's service under a memory limit like the deployed unit's (ansible/roles/service/defaults/main.yml:
service_memory_max, MemoryMax= in the systemd unit), and its resident memory sampled while it runs.

The limit is a memory cgroup made for the one process, the same mechanism as the unit's MemoryMax: cgroup v2 when
the machine mounts it with the memory controller, else the cgroup v1 memory hierarchy (this machine: a hybrid
layout whose v2 part has no controllers). The process joins its cgroup before it execs Python, from a small
launcher handed to ServiceProcess as the interpreter. Where no cgroup can be made, `prlimit --as` caps its address
space instead, which is stricter than a cgroup (virtual, not resident memory), so its bound is the unit's doubled.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from support import REPO_ROOT

CGROUP_ROOT = Path("/sys/fs/cgroup")


def unit_memory_max() -> int:
    """The deployed unit's MemoryMax in bytes, read from the Ansible role's defaults (one source for the figure)."""
    defaults = (REPO_ROOT / "ansible" / "roles" / "service" / "defaults" / "main.yml").read_text()
    match = re.search(r"^service_memory_max:\s*['\"]?(\d+)([KMG]?)", defaults, re.MULTILINE)
    assert match, "service_memory_max not found in the service role's defaults"
    return int(match.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2)]


@dataclass
class MemoryLimit:
    """A launcher that starts Python under `limit_bytes`; `how` names the mechanism for the suites' figures."""

    how: str
    limit_bytes: int
    launcher: Path
    cgroup: Path | None

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer ended in this cgroup (0 without a cgroup)."""
        if self.cgroup is None:
            return 0
        events = self.cgroup / ("memory.events" if self.how.startswith("cgroup v2") else "memory.oom_control")
        for line in events.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
        return 0

    def peak_bytes(self) -> int | None:
        if self.cgroup is None:
            return None
        name = "memory.peak" if self.how.startswith("cgroup v2") else "memory.max_usage_in_bytes"
        path = self.cgroup / name
        return int(path.read_text()) if path.exists() else None

    def remove(self) -> None:
        """Remove the cgroup once its process has ended (the kernel may take a moment to let go of it)."""
        if self.cgroup is None:
            return
        for _ in range(50):
            try:
                self.cgroup.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)


def memory_limited_python(python: Path, folder: Path, limit_bytes: int | None = None) -> MemoryLimit:
    """A launcher in `folder` that runs `python` with its arguments under the unit's memory limit."""
    limit = limit_bytes or unit_memory_max()
    folder.mkdir(parents=True, exist_ok=True)
    launcher = folder / "python-memory-limited"
    name = f"adversarial-{os.getpid()}-{time.monotonic_ns()}"
    cgroup, how = _make_cgroup(name, limit)
    if cgroup is not None:
        script = f'#!/bin/sh\necho $$ > "{cgroup}/cgroup.procs" || exit 97\nexec "{python}" "$@"\n'
    else:
        prlimit = shutil.which("prlimit")
        assert prlimit, "neither a memory cgroup nor prlimit is available for the memory limit"
        how = "prlimit --as (address space)"
        limit *= 2
        script = f'#!/bin/sh\nexec "{prlimit}" --as={limit} -- "{python}" "$@"\n'
    launcher.write_text(script)
    launcher.chmod(0o755)
    return MemoryLimit(how, limit, launcher, cgroup)


def _make_cgroup(name: str, limit: int) -> tuple[Path | None, str]:
    unified = CGROUP_ROOT / "cgroup.controllers"
    if unified.exists() and "memory" in unified.read_text().split():
        # the root cgroup may hold processes and still delegate to children (no internal-process rule at the root)
        try:
            if "memory" not in (CGROUP_ROOT / "cgroup.subtree_control").read_text().split():
                (CGROUP_ROOT / "cgroup.subtree_control").write_text("+memory")
            path = CGROUP_ROOT / name
            path.mkdir()
            (path / "memory.max").write_text(str(limit))
            if (path / "memory.swap.max").exists():
                (path / "memory.swap.max").write_text("0")
            return path, "cgroup v2 memory.max"
        except OSError:
            pass
    own = _own_v1_memory_cgroup()
    if own is not None:
        try:
            path = own / name
            path.mkdir()
            (path / "memory.limit_in_bytes").write_text(str(limit))
            swap = path / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(str(limit))
            return path, "cgroup v1 memory.limit_in_bytes"
        except OSError:
            pass
    return None, ""


def _own_v1_memory_cgroup() -> Path | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            folder = CGROUP_ROOT / "memory" / path.lstrip("/")
            return folder if (folder / "memory.limit_in_bytes").exists() else None
    return None


def resident_bytes(pid: int) -> int | None:
    """VmRSS of `pid` from /proc, None once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


class RssSampler:
    """Samples a process's VmRSS every `interval` seconds in a thread, keeping the largest value seen."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = resident_bytes(pid) or 0
        self.first = self.peak
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            value = resident_bytes(self.pid)
            if value is None:
                return
            self.samples += 1
            self.peak = max(self.peak, value)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
