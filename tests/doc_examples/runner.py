"""Run marked blocks in a bake: shell blocks with bash, Python blocks written into the bake as real modules.

The bake runs on the tests' baked venv (its dependencies, not the bake itself), so its console script is written
here from the bake's own `[project.scripts]` entry, the same three lines pip writes for an installed project.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from service_process import ServiceProcess
from support import CACHE_DIR, free_port

from .blocks import Block

DOCUMENTED_ADDRESS = "127.0.0.1:8000"
BLOCK_TIMEOUT = 120.0


@dataclass(frozen=True)
class Outcome:
    block: Block
    returncode: int
    output: str

    def report(self) -> str:
        return f"{self.block.where} exited {self.returncode}:\n{self.block.code}\n--- output ---\n{self.output[-3000:]}"


def write_console_scripts(project: Path, python: Path, bin_dir: Path) -> list[Path]:
    """The bake's console scripts, as pip would install them, running on `python`."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    scripts = tomllib.loads((project / "pyproject.toml").read_text())["project"]["scripts"]
    written = []
    for name, target in scripts.items():
        module, function = target.split(":")
        script = bin_dir / name
        script.write_text(f"#!{python}\nimport sys\nfrom {module} import {function}\nsys.exit({function}())\n")
        script.chmod(0o755)
        written.append(script)
    return written


def environment(project: Path, python: Path, bin_dir: Path, tmp: Path, **extra: str) -> dict[str, str]:
    """What a user's shell has after installing the bake: its commands and its Python first on PATH."""
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{python.parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(project / "src"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "MYPY_CACHE_DIR": str(CACHE_DIR / f"mypy-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"),
        "TMPDIR": str(tmp),
        **extra,
    }


def pointed_at(code: str, url: str) -> str:
    """The block with the documented address replaced by the started service's."""
    return code.replace(f"http://{DOCUMENTED_ADDRESS}", url)


def run_shell(block: Block, cwd: Path, env: dict[str, str], url: str | None = None) -> Outcome:
    code = pointed_at(block.code, url) if url else block.code
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=BLOCK_TIMEOUT)
    return Outcome(block, result.returncode, result.stdout + result.stderr)


def run_serving(block: Block, cwd: Path, env: dict[str, str], ready_timeout: float = 60.0) -> Outcome:
    """A block that serves until stopped: it must become ready on $PORT, then stop on Ctrl+C without a traceback."""
    port = free_port()
    log_path = cwd / f"serves-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(["bash", "-euo", "pipefail", "-c", block.code], cwd=cwd,
                                   env={**env, "PORT": str(port)}, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            ready = _wait_ready(process, f"http://127.0.0.1:{port}/readyz", ready_timeout)
        finally:
            # Ctrl+C in a terminal: SIGINT to the whole foreground group (make and the service under it)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
    output = log_path.read_text()
    failed = not ready or "Traceback" in output
    return Outcome(block, 1 if failed else 0, output + ("" if ready else "\n(never answered /readyz 200)"))


def _wait_ready(process: subprocess.Popen[bytes], url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        time.sleep(0.2)
    return False


@contextlib.contextmanager
def service_for(block: Block, project: Path, python: Path, shared: ServiceProcess) -> Iterator[ServiceProcess]:
    """The shared service, or one of the block's own when its marker sets `env=NAME=VALUE,...`."""
    match = re.search(r"env=(\S+)", block.options)
    if match is None:
        yield shared
        return
    settings = dict(pair.split("=", 1) for pair in match.group(1).split(";"))
    with ServiceProcess(project, python, env=settings) as own:
        own.wait_ready(60)
        yield own


def write_module(block: Block, project: Path) -> Path:
    """A `runnable: module PATH` block, written where its marker says (replacing what was there)."""
    target = project / block.options.split()[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(block.code)
    return target
