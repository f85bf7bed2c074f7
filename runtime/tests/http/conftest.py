"""A real uvicorn server with the service's HTTP layer, in a thread of this process, on a free port of 127.0.0.1;
and a raw HTTP/1.1 reader for what the tests send over plain sockets."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
import uvicorn

from event_runtime.server import http_config
from event_runtime.service import Service
from event_runtime.settings import Settings
from event_runtime.testing.bus import TEST_SETTINGS

from ..sample_service import registry

# short timeouts so the tests that wait for them stay short; small limits so the requests past them stay small
FAST_LIMITS: dict[str, Any] = {
    "header_timeout_seconds": 1.0,
    "body_timeout_seconds": 1.0,
    "keepalive_timeout_seconds": 1.0,
    "linger_seconds": 1.0,
    "max_body_bytes": 64 * 1024,
    "max_header_bytes": 8 * 1024,
    "max_headers": 30,
    "max_url_bytes": 2048,
    "shutdown_timeout_seconds": 2.0,
}
TOKEN = "test-token"


@dataclass
class Served:
    """Where the server listens, and its service (settings, metrics)."""

    host: str
    port: int
    service: Service

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connect(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout)


@contextmanager
def running_server(**settings: Any) -> Iterator[Served]:
    """The service's HTTP layer as `serve` builds it (workers off), until the block ends; stopped and joined."""
    service = Service(registry, Settings(**{**TEST_SETTINGS, **FAST_LIMITS, **settings}))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    host, port = listener.getsockname()
    server = uvicorn.Server(http_config(service, host, port, run_workers=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield Served(host, port, service)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        listener.close()
        assert not thread.is_alive(), "the server did not stop"


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool = False  # the server closed the connection after it
    raw_head: bytes = field(default=b"", repr=False)

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


def send_all(sock: socket.socket, data: bytes) -> None:
    """Send `data`; a server that answered and closed before it all went out still left its answer to read."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def read_response(sock: socket.socket, timeout: float = 10.0) -> RawResponse:
    """One HTTP/1.1 response (Content-Length framed, or up to the close); bounded by `timeout` in all."""
    return read_responses(sock, 1, timeout)[0]


def read_responses(sock: socket.socket, count: int, timeout: float = 10.0) -> list[RawResponse]:
    """`count` responses in a row from one connection (pipelined requests)."""
    deadline = time.monotonic() + timeout
    buffer = b""
    responses: list[RawResponse] = []
    while len(responses) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = _recv(sock, deadline)
            if not chunk:
                raise ConnectionError(f"closed before a whole response head: {buffer[:200]!r}")
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        closed = False
        if "content-length" in headers:
            length = int(headers["content-length"])
            while len(buffer) < length:
                chunk = _recv(sock, deadline)
                if not chunk:
                    raise ConnectionError("closed before the whole body")
                buffer += chunk
            body, buffer = buffer[:length], buffer[length:]
        else:
            while chunk := _recv(sock, deadline):
                buffer += chunk
            body, buffer, closed = buffer, b"", True
        responses.append(RawResponse(int(status_line.split(" ")[1]), headers, body, closed, head))
    return responses


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes the connection (EOF or reset) within `seconds`; what it sends is dropped."""
    deadline = time.monotonic() + seconds
    try:
        while _recv(sock, deadline):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def _recv(sock: socket.socket, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("no answer in time")
    sock.settimeout(remaining)
    try:
        return sock.recv(65536)
    except TimeoutError as error:
        raise TimeoutError("no answer in time") from error
