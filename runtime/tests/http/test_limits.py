"""The HTTP layer's limits and timeouts, over raw sockets to a real server: each gives its status and a JSON body,
slow and idle clients are cut off, and a connection past the cap is refused while the others keep working."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from event_runtime import http_protocol
from event_runtime.testing import EventFactory

from ..sample_service import ORDER_CANCELLED
from .conftest import (
    TOKEN,
    RawResponse,
    Served,
    closed_within,
    read_response,
    read_responses,
    running_server,
    send_all,
)

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    store = tmp_path_factory.mktemp("limits") / "events.db"
    with running_server(auth_tokens=TOKEN, bus_url=f"sqlite:///{store}") as server:
        yield server


def exchange(served: Served, request: bytes) -> tuple[RawResponse, socket.socket]:
    sock = served.connect()
    send_all(sock, request)
    return read_response(sock), sock


def assert_error(response: RawResponse, status: int, error: str) -> None:
    assert response.status == status, response
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == error
    assert response.json()["detail"]


def test_headers_over_the_byte_limit_get_431_and_the_connection_closes(served: Served) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"

    response, sock = exchange(served, request)

    assert_error(response, 431, http_protocol.HEADERS_TOO_LARGE)
    assert "8192 bytes" in response.json()["detail"]
    assert response.headers["connection"] == "close"
    assert closed_within(sock, 5)


def test_more_headers_than_the_limit_get_431(served: Served) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % n for n in range(31))

    response, _ = exchange(served, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")

    assert_error(response, 431, http_protocol.TOO_MANY_HEADERS)


def test_a_header_growing_over_many_reads_is_refused_once_the_head_passes_its_bound(served: Served) -> None:
    # httptools keeps such a header to itself until it ends: only the bytes read can be counted
    sock = served.connect()
    sock.sendall(b"POST /events HTTP/1.1\r\nHost: t\r\nce-subject: ")
    sent = 0
    try:
        while sent < 16 * 1024 * 1024 and not select.select([sock], [], [], 0)[0]:
            sock.sendall(b"s" * 4096)
            sent += 4096
            if sent % (64 * 1024) == 0:
                time.sleep(0.002)  # separate reads on the server's side
    except (BrokenPipeError, ConnectionResetError):
        pass

    response = read_response(sock)

    assert_error(response, 431, http_protocol.HEADERS_TOO_LARGE)
    assert "request line and headers" in response.json()["detail"]
    assert sent < 4 * 1024 * 1024  # refused long before: 16 MiB went through before this layer


def test_a_url_over_the_limit_gets_414(served: Served) -> None:
    response, _ = exchange(served, b"GET /" + b"a" * 64 * 1024 + b" HTTP/1.1\r\nHost: t\r\n\r\n")

    assert_error(response, 414, http_protocol.URL_TOO_LONG)


def structured_head(length_header: bytes) -> bytes:
    return (
        b"POST /events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n"
        b"Content-Type: application/cloudevents+json\r\n" + length_header + b"\r\n"
    )


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_the_limit_gets_413_however_it_is_framed(served: Served, framing: str) -> None:
    body = b"x" * 100 * 1024  # SERVICE_MAX_BODY_BYTES is 64 KiB here
    if framing == "content-length":
        request = structured_head(b"Content-Length: %d\r\n" % len(body)) + body
    else:  # no length up front: counted as read
        chunks = b"".join(b"%x\r\n%s\r\n" % (4096, body[n : n + 4096]) for n in range(0, len(body), 4096))
        request = structured_head(b"Transfer-Encoding: chunked\r\n") + chunks + b"0\r\n\r\n"

    response, sock = exchange(served, request)

    assert_error(response, 413, "body_too_large")
    assert closed_within(sock, 5)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n",
        structured_head(b"Transfer-Encoding: chunked\r\n") + b"ZZ\r\nabc\r\n",
    ],
    ids=["not-http", "space-in-header-name", "non-ascii-path", "bad-chunk-size"],
)
def test_an_invalid_request_gets_400_json(served: Served, request_bytes: bytes) -> None:
    response, sock = exchange(served, request_bytes)

    assert_error(response, 400, http_protocol.INVALID_REQUEST)
    assert closed_within(sock, 5)


def test_an_exception_in_the_service_gets_500_json(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken_readiness() -> tuple[bool, str]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(served.service, "readiness", broken_readiness)

    response, _ = exchange(served, b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")

    assert_error(response, 500, http_protocol.INTERNAL_ERROR)
    assert "a bug" not in response.body.decode()


@pytest.mark.parametrize(
    ("method", "path", "allowed"), [("GET", "/events", "POST"), ("DELETE", "/healthz", "GET, HEAD")]
)
def test_405_names_the_allowed_methods(served: Served, method: str, path: str, allowed: str) -> None:
    response = httpx.request(method, served.base_url + path, timeout=10)

    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["error"] == "method_not_allowed"


def test_a_slow_client_is_cut_off_after_the_header_timeout_while_others_are_answered(served: Served) -> None:
    slow = [served.connect() for _ in range(3)]
    answered: list[int] = []
    cut_off: dict[int, RawResponse] = {}
    started = time.monotonic()
    for byte in HEALTHZ:  # one header byte every 0.5 s per slow client; the header timeout is 1 s here
        for n, sock in enumerate(slow):
            if n not in cut_off:
                if select.select([sock], [], [], 0)[0]:
                    cut_off[n] = read_response(sock)
                else:
                    sock.sendall(bytes([byte]))
        with httpx.Client(base_url=served.base_url, timeout=10) as client:
            answered.append(client.get("/healthz").status_code)
        if len(cut_off) == len(slow) or time.monotonic() - started > 8:
            break
        time.sleep(0.5)

    assert sorted(cut_off) == [0, 1, 2], f"still connected after {time.monotonic() - started:.1f} s"
    for response in cut_off.values():
        assert_error(response, 408, http_protocol.REQUEST_TIMEOUT)
        assert "headers" in response.json()["detail"]
    assert answered and set(answered) == {200}


def test_a_body_that_stops_arriving_gets_408(served: Served) -> None:
    sock = served.connect()
    sock.sendall(structured_head(b"Content-Length: 1000\r\n") + b'{"specversion": "1.0", ')

    response = read_response(sock, timeout=8)

    assert_error(response, 408, http_protocol.REQUEST_TIMEOUT)
    assert "body" in response.json()["detail"]
    assert closed_within(sock, 5)


def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout(served: Served) -> None:
    response, sock = exchange(served, HEALTHZ)
    assert response.status == 200 and "connection" not in response.headers
    sock.sendall(HEALTHZ)  # kept alive: a second request on it is answered
    assert read_response(sock).status == 200

    assert closed_within(sock, 5)  # then idle for the keep-alive timeout (1 s here): closed


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(served: Served) -> None:
    assert closed_within(served.connect(), 5)


def test_a_kept_alive_connection_that_got_an_early_413_is_closed_even_while_the_client_sends(
    served: Served,
) -> None:
    sock = served.connect()
    sock.sendall(structured_head(b"Content-Length: 10000000\r\n") + b"x" * 1024)  # keep-alive, over the limit
    response = read_response(sock)
    assert_error(response, 413, "body_too_large")
    assert response.headers["connection"] == "close"

    deadline = time.monotonic() + 6  # the client goes on sending its body; the server reads and drops it, then
    closed = False  # closes after SERVICE_LINGER_SECONDS (1 s here)
    while not closed and time.monotonic() < deadline:
        try:
            sock.sendall(b"x" * 1024)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        closed = bool(select.select([sock], [], [], 0.1)[0]) and closed_within(sock, 0.1)

    assert closed


def test_pipelined_requests_are_answered_in_order_and_a_bad_one_after_them(served: Served) -> None:
    sock = served.connect()
    sock.sendall(HEALTHZ * 3 + b"GET /" + b"a" * 4096 + b" HTTP/1.1\r\n\r\n")

    statuses = [response.status for response in read_responses(sock, 4)]

    assert statuses == [200, 200, 200, 414]


def test_a_client_that_half_closes_after_its_request_still_gets_the_answer(
    served: Served, event_factory: EventFactory
) -> None:
    statuses = []
    for _ in range(10):  # uvicorn closed on the client's FIN: the event was stored, the 202 mostly lost
        body = msgspec.json.encode(event_factory.event(ORDER_CANCELLED, {"order_id": "o-1"}))
        sock = served.connect()
        sock.sendall(structured_head(b"Content-Length: %d\r\n" % len(body)) + body)
        sock.shutdown(socket.SHUT_WR)
        statuses.append(read_response(sock).status)
        assert closed_within(sock, 5)

    assert statuses == [202] * 10


def test_past_the_connection_cap_a_new_connection_gets_503_while_the_open_ones_keep_working() -> None:
    with running_server(max_connections=4, header_timeout_seconds=20, keepalive_timeout_seconds=20) as served:
        held = [served.connect() for _ in range(4)]
        for sock in held:
            sock.sendall(HEALTHZ)
            assert read_response(sock).status == 200

        response, refused = exchange(served, HEALTHZ)

        assert_error(response, 503, http_protocol.TOO_MANY_CONNECTIONS)
        assert response.headers["retry-after"] == "1"
        assert closed_within(refused, 5)
        for sock in held:  # the open ones are still served
            sock.sendall(HEALTHZ)
            assert read_response(sock).status == 200
        held.pop().close()
        deadline = time.monotonic() + 5  # once one of them is gone, a new connection is served again
        while (again := exchange(served, HEALTHZ)[0]).status == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert again.status == 200
