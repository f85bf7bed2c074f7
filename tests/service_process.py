"""A baked service started with its own CLI on a free port, for end-to-end tests; stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
from support import free_port


class ServiceProcess:
    """`python -m <package> <command>` of a bake, with the baked venv; stopped (and killed if need be) by PID."""

    def __init__(self, project: Path, python: Path, *, env: dict[str, str], command: tuple[str, ...] = ("serve",)):
        self.project = project
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = project / f"service-{self.port}.log"
        package = next(path.name for path in (project / "src").iterdir() if (path / "app.py").is_file())
        arguments = [str(python), "-m", package, *command]
        if command[0] == "serve":
            arguments += ["--host", "127.0.0.1", "--port", str(self.port)]
        environment = {**os.environ, "PYTHONPATH": str(project / "src"), "PYTHONDONTWRITEBYTECODE": "1", **env}
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(arguments, cwd=project, env=environment, stdout=self._log,
                                        stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"service not ready after {timeout}s:\n{self.log()}")

    def metric(self, line_prefix: str) -> float:
        """The value of the first /metrics line starting with `line_prefix` (name plus labels)."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith(line_prefix + " "):
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(line_prefix)

    def wait_idle(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.metric("bus_pending_events") > 0:
            if time.monotonic() > deadline:
                raise TimeoutError("events still pending")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.process.returncode

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop(signal.SIGKILL)



