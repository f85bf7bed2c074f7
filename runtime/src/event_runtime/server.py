"""Run the service under uvicorn, with the shutdown order a load balancer needs.

On SIGTERM/SIGINT: readiness fails and new events get 503 at once, the server keeps answering for
SERVICE_SHUTDOWN_DRAIN_SECONDS (so the balancer notices), then stops; in-flight handlers get
SERVICE_SHUTDOWN_TIMEOUT_SECONDS; unfinished deliveries are released and handled again after restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType

import uvicorn

from .http_protocol import HttpLimits, limited_protocol
from .ingress import IngressApp
from .logs import get_logger
from .service import Service

log = get_logger(__name__)


class _DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self._service = service

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._service.draining:  # a second signal: stop now
            super().handle_exit(sig, frame)
            return
        self._service.begin_drain()
        timer = threading.Timer(self._service.settings.shutdown_drain_seconds, super().handle_exit, (sig, frame))
        timer.daemon = True
        timer.start()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn raises the signal that stopped it again once it has shut down, so a graceful stop ended with
        -15 (killed by SIGTERM): a stop this process completed is a clean exit, status 0."""
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)  # it exits the process if the service or the socket fails
        freeze_startup_heap()


def serve(service: Service, host: str, port: int, *, run_workers: bool = True) -> None:
    """HTTP API (and, unless told otherwise, the workers) in this process until a signal stops it."""
    _DrainingServer(http_config(service, host, port, run_workers=run_workers), service).run()


def http_config(service: Service, host: str, port: int, *, run_workers: bool = True) -> uvicorn.Config:
    """uvicorn's configuration for the service: its app, and the HTTP layer's limits from the settings."""
    settings = service.settings
    return uvicorn.Config(
        IngressApp(service, run_workers=run_workers),
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        loop="auto",
        # httptools with the limits and timeouts of SERVICE_MAX_HEADER_BYTES and the rest (http_protocol.py); it
        # keeps connections alive for SERVICE_KEEPALIVE_TIMEOUT_SECONDS and caps them itself, with a JSON 503
        http=limited_protocol(HttpLimits.from_settings(settings)),
        ws="none",
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_seconds),
        # The service never reads the client's address, so X-Forwarded-* need no rewriting: that middleware cost
        # ~3 % of a request (docs/performance.md). No `server` header: it only tells a scanner what runs here.
        proxy_headers=False,
        server_header=False,
    )


def run_workers(service: Service) -> None:
    """Workers only, no HTTP, until a signal stops them."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await service.start(run_workers=True)
        freeze_startup_heap()
        try:
            await stop.wait()
        finally:
            await service.stop()

    _run(main())


def freeze_startup_heap() -> None:
    """Take what start-up built out of the garbage collector's sight, once the process is about to take work.

    Modules, settings, the registry and the store live as long as the process, yet every full (generation 2)
    collection walked them all again with the event loop stopped: ~40 ms on a slow core, every few seconds under
    load, one of the two largest stalls in the latency tail (docs/performance.md, run 7). Frozen objects are never
    scanned; what requests create is collected as before. Garbage made during start-up is collected first, so
    none of it is kept for good.
    """
    gc.collect()
    gc.freeze()
    log.info("startup_heap_frozen", objects=gc.get_freeze_count())


def _run(main: asyncio.Future[None] | object) -> None:
    try:
        import uvloop

        uvloop.run(main)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(main)  # type: ignore[arg-type]
