"""A raw-socket HTTP/1.1 client for hostile requests: it sends exactly the bytes it is given while it reads, so an
early answer (413, 431, 401) is seen even when the server stops reading, and it reports how the connection ended:
still open, closed (FIN), reset (RST) or past the deadline."""

from __future__ import annotations

import errno
import selectors
import socket
import time
from dataclasses import dataclass, field

OPEN, CLOSED, RESET, TIMEOUT = "open", "closed", "reset", "timeout"
_SEND_CHUNK = 256 * 1024


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]  # names lower-cased, values as latin-1
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    @property
    def closes(self) -> bool:
        return "close" in (self.header("connection") or "").lower()


@dataclass
class Exchange:
    """What one connection gave back for what was sent on it."""

    responses: list[Response] = field(default_factory=list)
    ending: str = OPEN
    elapsed: float = 0.0
    sent: int = 0  # bytes the kernel took before the server stopped reading or the exchange ended
    send_error: str | None = None
    partial: bytes = b""  # an incomplete response left when the connection ended

    def describe(self) -> str:
        statuses = ",".join(str(response.status) for response in self.responses) or "none"
        text = f"statuses={statuses} ending={self.ending} elapsed={self.elapsed:.2f}s sent={self.sent}"
        if self.send_error:
            text += f" send_error={self.send_error}"
        if self.partial:
            text += f" partial={self.partial[:80]!r}"
        return text


class Incomplete(Exception):
    pass


def parse_response(buffer: bytes, *, at_eof: bool) -> tuple[Response, int]:
    """One response from the start of `buffer`, and how many bytes it took; Incomplete when more are needed."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        raise Incomplete
    head = buffer[:end].decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {head[0][:80]!r}")
    status = int(parts[1])
    headers = []
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    response = Response(status, headers, b"")
    start = end + 4
    if 100 <= status < 200 or status in (204, 304):
        return response, start
    length = response.header("content-length")
    if length is not None:
        stop = start + int(length)
        if len(buffer) < stop:
            raise Incomplete
        response.body = buffer[start:stop]
        return response, stop
    if "chunked" in (response.header("transfer-encoding") or "").lower():
        body, position = [], start
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                raise Incomplete
            size = int(buffer[position:line_end].split(b";")[0], 16)
            position = line_end + 2
            if size == 0:
                trailer_end = buffer.find(b"\r\n", position)
                if trailer_end < 0:
                    raise Incomplete
                response.body = b"".join(body)
                return response, trailer_end + 2
            if len(buffer) < position + size + 2:
                raise Incomplete
            body.append(buffer[position : position + size])
            position += size + 2
    if not at_eof:  # delimited by the close
        raise Incomplete
    response.body = buffer[start:]
    return response, len(buffer)


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def exchange(
    sock: socket.socket,
    payload: bytes,
    *,
    answers: int | None,
    deadline: float,
    grace: float = 0.2,
    half_close: bool = False,
) -> Exchange:
    """Send `payload` on `sock` while reading; stop after `answers` responses (None: after the first response and
    `grace` seconds without more), when the server ends the connection, or at `deadline` (monotonic).
    `half_close`: shut the sending side once the payload is out."""
    started = time.monotonic()
    result = Exchange()
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if payload else 0))
    view, buffer, quiet_since = memoryview(payload), b"", None
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                result.ending = TIMEOUT
                break
            if answers is None and result.responses and quiet_since is not None and now - quiet_since >= grace:
                break
            wait = deadline - now if answers is not None or not result.responses else grace
            for _, mask in selector.select(min(wait, 0.5)):
                if mask & selectors.EVENT_WRITE and result.sent < len(view):
                    try:
                        result.sent += sock.send(view[result.sent : result.sent + _SEND_CHUNK])
                    except BlockingIOError:
                        pass
                    except OSError as error:
                        result.send_error = errno.errorcode.get(error.errno or 0, str(error))
                        result.sent = len(view)  # give up sending, keep reading what was answered
                    if result.sent >= len(view):
                        selector.modify(sock, selectors.EVENT_READ)
                        if half_close and not result.send_error:
                            sock.shutdown(socket.SHUT_WR)
                if mask & selectors.EVENT_READ:
                    try:
                        chunk = sock.recv(1 << 20)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        result.ending = RESET
                        break
                    if not chunk:
                        result.ending = CLOSED
                        break
                    buffer += chunk
                    quiet_since = time.monotonic()
                    while buffer:
                        try:
                            response, used = parse_response(buffer, at_eof=False)
                        except Incomplete:
                            break
                        buffer = buffer[used:]
                        if response.status >= 200:
                            result.responses.append(response)
            if result.ending != OPEN:
                break
            if answers is not None and len(result.responses) >= answers:
                break
    finally:
        selector.close()
    if result.ending in (CLOSED, RESET) and buffer:
        try:
            response, used = parse_response(buffer, at_eof=result.ending == CLOSED)
            result.responses.append(response)
            buffer = buffer[used:]
        except (Incomplete, ValueError):
            pass
    result.partial = buffer
    result.elapsed = time.monotonic() - started
    return result


def one_exchange(
    port: int, payload: bytes, *, answers: int | None = 1, timeout: float = 10.0, half_close: bool = False
) -> Exchange:
    """A new connection for `payload`, closed afterwards."""
    deadline = time.monotonic() + timeout
    try:
        sock = connect(port, timeout=min(timeout, 5.0))
    except OSError as error:
        return Exchange(ending=RESET, send_error=f"connect: {error}")
    try:
        return exchange(sock, payload, answers=answers, deadline=deadline, half_close=half_close)
    finally:
        sock.close()


def request(
    method: str,
    target: str,
    headers: list[tuple[str, str]] | list[tuple[bytes, bytes]],
    body: bytes = b"",
    *,
    content_length: bool = True,
) -> bytes:
    """The bytes of one HTTP/1.1 request; header names and values go out as given (str as latin-1 or utf-8)."""
    lines = [f"{method} {target} HTTP/1.1".encode()]
    for name, value in headers:
        name_bytes = name if isinstance(name, bytes) else name.encode("utf-8")
        value_bytes = value if isinstance(value, bytes) else value.encode("utf-8")
        lines.append(name_bytes + b": " + value_bytes)
    if content_length:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(body: bytes, sizes: list[int]) -> bytes:
    """`body` as a chunked message body, cut at `sizes` (the rest in one chunk), ending with the last chunk."""
    out, position = [], 0
    for size in sizes:
        if position >= len(body):
            break
        piece = body[position : position + max(size, 1)]
        out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        position += len(piece)
    if position < len(body):
        out.append(b"%x\r\n%s\r\n" % (len(body) - position, body[position:]))
    out.append(b"0\r\n\r\n")
    return b"".join(out)
