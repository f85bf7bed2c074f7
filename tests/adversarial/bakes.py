"""A default bake (SQLite) started with its CLI under the unit's memory limit, with the HTTP settings the suites set
short so a timeout is seen in seconds, not minutes."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from service_process import ServiceProcess
from support import bake

from adversarial.memory_limit import MemoryLimit, memory_limited_python

TOKEN = "adversarial-token"
# SERVICE_* timeouts of the HTTP layer (runtime/src/event_runtime/settings.py), short for the suites: a slow or
# stalled client is cut off within these, plus a margin the assertions add
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
KEEP_ALIVE_TIMEOUT = 2.0
HTTP_SETTINGS = {
    "SERVICE_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    "SERVICE_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
    "SERVICE_KEEPALIVE_TIMEOUT_SECONDS": str(KEEP_ALIVE_TIMEOUT),
}


@dataclass
class LimitedService:
    process: ServiceProcess
    limit: MemoryLimit
    store: Path

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def pid(self) -> int:
        return self.process.process.pid

    def alive(self) -> bool:
        return self.process.process.poll() is None

    def stored_ids(self) -> list[str]:
        """The ids of every stored event, read from the SQLite file (after the service stopped)."""
        with sqlite3.connect(self.store) as store:
            return [row[0] for row in store.execute("SELECT id FROM events")]


@contextmanager
def limited_service(python: Path, folder: Path, env: dict[str, str] | None = None) -> Iterator[LimitedService]:
    """A fresh default bake in `folder`, serving on a free port under the memory limit, stopped by PID at the end."""
    project = bake(folder / "bake")
    limit = memory_limited_python(python, folder / "launcher")
    store = folder / "events.db"
    environment = {
        "SERVICE_AUTH_TOKENS": TOKEN,
        "SERVICE_BUS_URL": f"sqlite:///{store}",
        "SERVICE_SHUTDOWN_DRAIN_SECONDS": "0",
        "SERVICE_LOG_LEVEL": "WARNING",
        **HTTP_SETTINGS,
        **(env or {}),
    }
    service = ServiceProcess(project, limit.launcher, env=environment)
    try:
        service.wait_ready(timeout=30)
        yield LimitedService(service, limit, store)
    finally:
        service.stop(signal.SIGKILL)
        limit.remove()
