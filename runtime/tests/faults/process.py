"""The runtime's sample service as a real process (`serve`, or a script of its own) for the fault tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

RUNTIME_DIR = Path(__file__).resolve().parents[2]

SERVE = """
import sys
from event_runtime import EventService
from tests.sample_service import registry
sys.exit(EventService(registry, name="sample").main(["serve", "--host", "127.0.0.1", "--port", sys.argv[1]]))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def python(script: str, *args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # the tests package importable, and whatever the caller's path has first (a source tree under test)
    path = os.pathsep.join(part for part in (os.environ.get("PYTHONPATH", ""), str(RUNTIME_DIR)) if part)
    environment = {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1", **env}
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-c", script, *args],
            cwd=RUNTIME_DIR,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


class Served:
    """`serve` of the sample service on a free port; killed by PID when the block ends."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process = python(SERVE, str(self.port), env=env, log=log)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(self.log.read_text())

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
