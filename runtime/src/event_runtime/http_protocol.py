"""uvicorn's httptools protocol with limits and timeouts: what one client can make the process hold is bounded.

uvicorn's own protocol has no limit on the request line or headers (httptools grows a long header by concatenation,
quadratic in the number of reads), no header or body read timeout, and closes the socket right after an answer
sent before the request's body was read, so a client still sending gets a reset instead of the answer. This
subclass enforces the limits in the parser's callbacks, watches each connection's deadline (one sweep per server
and tick, not a timer per request), closes after an early answer the way clients can read it (a lingering close),
and answers everything the HTTP layer says itself in JSON with a stable `error` code (docs/service-contract.md,
"Limits").

It overrides uvicorn 0.54's internals, which the runtime pins exactly; runtime/tests/http/ pins the behaviour
(and notices when the overridden methods of uvicorn change).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, cast
from urllib.parse import unquote

import httptools
import msgspec
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from .logs import get_logger

if TYPE_CHECKING:
    from .settings import Settings

log = get_logger(__name__)
_encode = msgspec.json.Encoder().encode

# the `error` codes of the HTTP layer's own answers (docs/service-contract.md, "Limits")
INVALID_REQUEST = "invalid_http_request"
URL_TOO_LONG = "url_too_long"
HEADERS_TOO_LARGE = "headers_too_large"
TOO_MANY_HEADERS = "too_many_headers"
REQUEST_TIMEOUT = "request_timeout"
TOO_MANY_CONNECTIONS = "too_many_connections"
INTERNAL_ERROR = "internal_error"

# what a connection is waiting for; its deadline depends on it
_IDLE, _HEAD, _BODY, _BUSY, _LINGER, _CLOSED = range(6)


@dataclass(frozen=True)
class HttpLimits:
    """The HTTP layer's limits and timeouts (SERVICE_* settings of the same names; seconds and bytes)."""

    max_url_bytes: int = 8192
    max_header_bytes: int = 32768
    max_headers: int = 100
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    keepalive_timeout_seconds: float = 5.0
    linger_seconds: float = 5.0
    max_connections: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})

    @property
    def max_head_bytes(self) -> int:
        """The raw request line and headers, separators included: a backstop for a head still arriving in pieces,
        which httptools would keep concatenating before any callback can count it."""
        return self.max_url_bytes + self.max_header_bytes + 8 * self.max_headers + 1024

    @property
    def tick_seconds(self) -> float:
        """How often deadlines are checked: a timeout fires between its time and a tick later."""
        shortest = min(
            self.header_timeout_seconds, self.body_timeout_seconds, self.keepalive_timeout_seconds, self.linger_seconds
        )
        return min(1.0, max(0.05, shortest / 4))


def limited_protocol(limits: HttpLimits) -> type[LimitedHttpToolsProtocol]:
    """A protocol class for one server (`uvicorn.Config(http=...)`), holding its limits and its deadline sweep."""
    attributes = {"limits": limits, "sweeper": None, **_flat(limits)}
    return cast(
        "type[LimitedHttpToolsProtocol]", type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), attributes)
    )


def _flat(limits: HttpLimits) -> dict[str, Any]:
    # one attribute lookup each on the hot path, where `self.limits.x` takes two
    return {"_" + name: getattr(limits, name) for name in HttpLimits.__dataclass_fields__}


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the answer is in the protocol's `_refusal`."""


class _CycleTransport:
    """What a request's cycle sees of the transport: the real `write` and `is_closing`, and a `close` that lets
    the protocol close the way the connection's state needs (a lingering close while the client still sends)."""

    __slots__ = ("close", "is_closing", "write")

    def __init__(self, transport: asyncio.Transport, protocol: LimitedHttpToolsProtocol) -> None:
        self.write = transport.write
        self.is_closing = transport.is_closing
        self.close = protocol._close_after_answer


class _Cycle(RequestResponseCycle):
    async def send_500_response(self) -> None:
        body = _encode({"error": INTERNAL_ERROR, "detail": "the service failed on this request; it is logged"})
        await self.send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": body, "more_body": False})


class _Sweeper:
    """One timer per server: every tick, each connection whose deadline passed is answered or closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: set[Any], tick: float) -> None:
        self._loop = loop
        self._connections = connections
        self._tick = tick
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self._handle is None:
            self._handle = self._loop.call_later(self._tick, self._sweep)

    def _sweep(self) -> None:
        now = self._loop.time()
        for connection in list(self._connections):
            if isinstance(connection, LimitedHttpToolsProtocol) and connection._deadline <= now:
                connection._deadline_passed()
        # stops when the server has no connections (after shutdown, say); the next connection starts it again
        self._handle = self._loop.call_later(self._tick, self._sweep) if self._connections else None


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with the limits of `limits`; use `limited_protocol(limits)` to get one for a server."""

    limits: ClassVar[HttpLimits] = HttpLimits()
    sweeper: ClassVar[_Sweeper | None] = None
    cap_logged_at: ClassVar[float] = -math.inf
    cycle: _Cycle
    # the limits again, as `limited_protocol` sets them
    _max_url_bytes: ClassVar[int] = limits.max_url_bytes
    _max_header_bytes: ClassVar[int] = limits.max_header_bytes
    _max_headers: ClassVar[int] = limits.max_headers
    _header_timeout_seconds: ClassVar[float] = limits.header_timeout_seconds
    _body_timeout_seconds: ClassVar[float] = limits.body_timeout_seconds
    _keepalive_timeout_seconds: ClassVar[float] = limits.keepalive_timeout_seconds

    # Connection ------------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._cycle_transport = cast("asyncio.Transport", _CycleTransport(transport, self))
        self._phase = _IDLE
        self._deadline = math.inf
        self._keep_alive = False  # the current request's, restored to its cycle once its body is in
        self._header_bytes = 0
        self._head_bytes = 0
        self._in_head = False  # a request's head has begun and is not complete
        self._head_began_in_this_read = False
        self._refusal: bytes | None = None  # an answer to a request that parsing stopped at
        self._deferred: bytes | None = None  # such an answer, waiting for the answers before it (pipelining)
        self._eof = False
        cls = type(self)
        if cls.sweeper is None:
            cls.sweeper = _Sweeper(self.loop, self.connections, self.limits.tick_seconds)
        cls.sweeper.start()
        limits = self.limits
        if len(self.connections) > limits.max_connections:
            now = self.loop.time()
            if now - cls.cap_logged_at >= 1.0:  # once a second at most: a flood of connections is no flood of logs
                cls.cap_logged_at = now
                log.warning("http_connections_refused", max_connections=limits.max_connections)
            self._answer(
                503,
                TOO_MANY_CONNECTIONS,
                f"the service holds {limits.max_connections} connections (SERVICE_MAX_CONNECTIONS): retry later",
                b"retry-after: 1\r\n",
            )
            return
        # a connection that sends nothing is closed when its first request's head would be late
        self._watch(_IDLE, limits.header_timeout_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = _CLOSED
        self._deadline = math.inf
        super().connection_lost(exc)

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio.Protocol's: True keeps it open
        self._eof = True
        phase = self._phase
        if phase >= _LINGER:
            return None  # the transport closes itself
        if phase == _BUSY and self.cycle is not None and not self.cycle.response_complete:
            # the client sent its whole request and closed its side: it still gets the answer, then the close
            self._keep_alive = self.cycle.keep_alive = False
            return True
        if phase in (_HEAD, _BODY) or self._in_head:
            self._answer(400, INVALID_REQUEST, "the connection was half-closed before the request was complete")
            return True
        return None  # the transport closes itself

    def data_received(self, data: bytes) -> None:
        if self._phase >= _LINGER or self._deferred is not None:
            return  # after an early answer: read and dropped until the client stops or time is up
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no WebSocket here: the request is answered as plain HTTP, like uvicorn does
        except httptools.HttpParserError as error:
            if self._refusal is not None:  # raised in a callback: httptools wraps it
                self._answer_refusal()
                return
            log.info("http_request_invalid", reason=str(error))
            self._answer(400, INVALID_REQUEST, f"invalid HTTP request: {error}")
            return
        if self._in_head:  # a head still arriving: count what httptools is buffering of it
            if len(self.headers) > self._max_headers:
                self._answer(431, TOO_MANY_HEADERS, f"the request has over {self._max_headers} headers")
            elif self._head_began_in_this_read:
                self._head_began_in_this_read = False
            else:
                self._head_bytes += len(data)
                if self._head_bytes > self.limits.max_head_bytes:
                    limit = self.limits.max_head_bytes
                    self._answer(431, HEADERS_TOO_LARGE, f"the request line and headers are over {limit} bytes")

    def shutdown(self) -> None:
        if self._phase >= _LINGER:
            return
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()
        else:
            self._keep_alive = self.cycle.keep_alive = False

    def send_400_response(self, msg: str) -> None:
        self._answer(400, INVALID_REQUEST, msg)

    # Parser callbacks ------------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        # uvicorn's (not called: a super() call costs more than these lines), then the head's counts and deadline
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.scope = {  # type: ignore[typeddict-item]
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        self._header_bytes = self._head_bytes = 0
        self._in_head = self._head_began_in_this_read = True
        if self._phase == _IDLE:  # else pipelined: the request before it is still being answered
            self._phase, self._deadline = _HEAD, self.loop.time() + self._header_timeout_seconds

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self._max_url_bytes:
            self._refuse(414, URL_TOO_LONG, f"the URL is over {self._max_url_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        # the count of headers is checked once the read is parsed and once they are complete: cheaper than here
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self._max_header_bytes:
            self._refuse(431, HEADERS_TOO_LARGE, f"the headers are over {self._max_header_bytes} bytes")
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        # uvicorn's, without WebSocket upgrades and its concurrency limit (connections are capped in
        # connection_made), with our cycle class and transport
        self._in_head = False
        if len(self.headers) > self._max_headers:
            self._refuse(431, TOO_MANY_HEADERS, f"the request has over {self._max_headers} headers")
        parser = self.parser
        http_version = parser.get_http_version()
        scope = self.scope
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        parsed_url = httptools.parse_url(self.url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        scope["path"] = self.root_path + path
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        scope["query_string"] = parsed_url.query or b""
        self._keep_alive = http_version != "1.0" and parser.should_keep_alive()
        existing_cycle = self.cycle
        # Not kept alive until the body is in (on_message_complete): an answer sent before then says
        # `connection: close` and closes through _close_after_answer, which lingers.
        self.cycle = _Cycle(
            scope=scope,
            transport=self._cycle_transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=False,
            on_response=self.on_response_complete,
        )
        if existing_cycle is None or existing_cycle.response_complete:
            self._start_asgi_task(self.cycle, self.app)
            self._phase, self._deadline = _BODY, self.loop.time() + self._body_timeout_seconds
        else:  # pipelined: reading stops until the requests before it are answered, so no deadline meanwhile
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, self.app))
            self._phase, self._deadline = _BUSY, math.inf

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if cycle.response_complete:
            return
        cycle.body += body
        if len(cycle.body) > HIGH_WATER_LIMIT:  # the app reads what is buffered before more is read
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if cycle.response_complete:
            return
        if self._keep_alive and not cycle.response_started:
            cycle.keep_alive = True
        cycle.more_body = False
        cycle.message_event.set()
        if self._phase == _BODY:
            self._phase, self._deadline = _BUSY, math.inf

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing() or self._phase >= _LINGER:
            return
        if self.pipeline:
            self.flow.resume_reading()
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            if cycle is self.cycle and cycle.more_body:
                self._watch(_BODY, self._body_timeout_seconds)
            return
        if self._deferred is not None:
            self.transport.write(self._deferred)
            self._linger()
            return
        self.flow.resume_reading()
        if self._in_head:  # the next request's head has begun meanwhile
            self._watch(_HEAD, self._header_timeout_seconds)
        elif self._phase == _BUSY:
            self._phase, self._deadline = _IDLE, self.loop.time() + self._keepalive_timeout_seconds

    # Deadlines, refusals and closing ---------------------------------------------------------------------------

    def _watch(self, phase: int, seconds: float) -> None:
        self._phase = phase
        self._deadline = self.loop.time() + seconds

    def _deadline_passed(self) -> None:
        phase = self._phase
        limits = self.limits
        if phase == _HEAD:
            log.info("http_request_timeout", waiting_for="headers")
            self._answer(
                408,
                REQUEST_TIMEOUT,
                f"the request's headers did not arrive within {limits.header_timeout_seconds:g} s "
                "(SERVICE_HEADER_TIMEOUT_SECONDS)",
            )
        elif phase == _BODY:
            log.info("http_request_timeout", waiting_for="body")
            self._answer(
                408,
                REQUEST_TIMEOUT,
                f"the request's body did not arrive within {limits.body_timeout_seconds:g} s "
                "(SERVICE_BODY_TIMEOUT_SECONDS)",
            )
        else:  # idle (kept alive, or never sent anything) or done lingering
            self._phase, self._deadline = _CLOSED, math.inf
            self.transport.close()

    def _refuse(self, status: int, error: str, detail: str) -> NoReturn:
        """Stop parsing this request: called in a parser callback, answered by data_received."""
        log.info("http_request_refused", status=status, error=error)
        self._refusal = self._response(status, error, detail)
        raise _Refused(detail)

    def _answer_refusal(self) -> None:
        refusal, self._refusal = self._refusal, None
        assert refusal is not None
        self._send_answer(refusal)

    def _answer(self, status: int, error: str, detail: str, extra_headers: bytes = b"") -> None:
        self._send_answer(self._response(status, error, detail, extra_headers))

    def _send_answer(self, response: bytes) -> None:
        """Answer the request being read, and close: after the answers before it if they are still coming."""
        cycle = self.cycle
        if self._phase == _BODY:  # the app waits for a body that will not come
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self._linger()
                return
        elif cycle is not None and not cycle.response_complete:  # pipelined behind a request still answered
            self._deferred = response
            self.flow.pause_reading()
            self._phase, self._deadline = _BUSY, math.inf
            return
        self.transport.write(response)
        self._linger()

    def _close_after_answer(self) -> None:
        """The cycle's `transport.close()`: with the client possibly still sending (an answer sent before its
        request was read whole), a plain close resets the connection and the client may never read the answer."""
        if self._phase in (_HEAD, _BODY) or self._in_head:
            self._linger()
        elif self._phase < _LINGER:
            self._phase, self._deadline = _CLOSED, math.inf
            self.transport.close()

    def _linger(self) -> None:
        """Lingering close: the answer and then our FIN go out; what the client still sends is read and dropped
        until it closes its side (then the transport closes) or SERVICE_LINGER_SECONDS pass."""
        if self._phase >= _LINGER or self.transport.is_closing():
            return
        self._keep_alive = self._in_head = False
        if self._eof or not self.transport.can_write_eof():
            self._phase, self._deadline = _CLOSED, math.inf
            self.transport.close()
            return
        self._watch(_LINGER, self.limits.linger_seconds)
        self.flow.resume_reading()
        self.transport.write_eof()

    def _response(self, status: int, error: str, detail: str, extra_headers: bytes = b"") -> bytes:
        body = _encode({"error": error, "detail": detail})
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\ncontent-length: ",
                str(len(body)).encode(),
                b"\r\nconnection: close\r\n",
                extra_headers,
                b"\r\n",
                body,
            ]
        )
        return b"".join(content)
