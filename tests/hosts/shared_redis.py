"""A Redis server on the machine, bound to the test network's bridge, that every test host reaches: the shared
store of a Redis bake deployed to several hosts. It is read directly (redis-cli) to tell what the bus holds."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from .network import BRIDGE_ADDRESS

START_TIMEOUT_SECONDS = 20


def cannot_run_redis_reason() -> str | None:
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: run .ci/setup-redis.sh"
    return None


class SharedRedis:
    """redis-server on BRIDGE_ADDRESS:<free port>, in memory only; stopped by PID when the block ends."""

    def __init__(self, work_dir: Path, prefix: str) -> None:
        self.work_dir, self.prefix = work_dir, prefix
        self.port = _free_port(BRIDGE_ADDRESS)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{BRIDGE_ADDRESS}:{self.port}/0"

    def __enter__(self) -> SharedRedis:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # protected mode off: the hosts connect from their own addresses, on a bridge only this machine has
        self.process = subprocess.Popen(
            ["redis-server", "--bind", BRIDGE_ADDRESS, "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--protected-mode", "no", "--dir", str(self.work_dir), "--logfile", str(self.work_dir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while self._cli("PING", check=False) != "PONG":
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"redis-server on {BRIDGE_ADDRESS}:{self.port} did not start")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def bus_state(self) -> dict[str, int]:
        """seq: events stored so far (one per new (source, id)); owed: deliveries not done; dead: dead letters."""
        return {
            "seq": int(self._cli("GET", f"{self.prefix}:seq") or 0),
            "owed": int(self._cli("GET", f"{self.prefix}:owed") or 0),
            "dead": int(self._cli("XLEN", f"{self.prefix}:dead") or 0),
        }

    def wait_until_delivered(self, timeout: float = 90) -> dict[str, int]:
        """Poll until no delivery is owed (or the timeout passes); return the last state."""
        deadline = time.monotonic() + timeout
        state = self.bus_state()
        while state["owed"] != 0 and time.monotonic() < deadline:
            time.sleep(1)
            state = self.bus_state()
        return state

    def _cli(self, *command: str, check: bool = True) -> str:
        result = subprocess.run(
            ["redis-cli", "-h", BRIDGE_ADDRESS, "-p", str(self.port), "--raw", *command],
            check=False, text=True, capture_output=True, timeout=10,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"redis-cli {' '.join(command)} failed: {result.stderr}")
        return result.stdout.strip()


def _free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])
