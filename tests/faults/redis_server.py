"""A private redis-server for the Redis fault suite: on a free port, in a folder of its own, stopped by PID.

A fault test hangs, kills, reconfigures or fills its Redis, so it never uses the shared one on 6379.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from support import free_port


class RedisServer:
    """`start` (again after `kill`: same port, same folder, so it loads its AOF), `kill` (-9), `pause`/`resume`
    (SIGSTOP/SIGCONT), `cli(...)`. AOF on with `appendfsync` (`always`: nothing answered is lost to a kill -9)."""

    def __init__(self, directory: Path, *, appendfsync: str = "always") -> None:
        self.directory, self.port, self.appendfsync = directory, free_port(), appendfsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", self.appendfsync, "--dir", str(self.directory), "--daemonize", "no",
             "--logfile", str(self.directory / "redis.log")],
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while self.cli("ping") != "PONG":
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start: {(self.directory / 'redis.log').read_text()[-2000:]}")
            time.sleep(0.05)

    def cli(self, *args: str) -> str:
        result = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
                                capture_output=True, text=True, timeout=10)  # fmt: skip
        return result.stdout.strip()

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)
