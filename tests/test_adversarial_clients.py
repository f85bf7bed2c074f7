"""Every common client reads every early error status of a default bake started with its CLI: urllib, requests,
httpx, curl and a raw socket sending `Connection: close`, each 20 times for a 413 (declared, and chunked), a 401
with a large body, a 431 and a 414, all answered before the request was read whole.

An answer sent while the client is still sending is lost to a reset unless the server reads on and closes
gently (a lingering close); this is where that shows. Figures: `pytest -s -m slow tests/test_adversarial_clients.py`.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import requests
from adversarial.bakes import TOKEN, LimitedService, limited_service
from adversarial.raw_http import Incomplete, parse_response

pytestmark = pytest.mark.slow

REPETITIONS = 20
MAX_BODY = 1 << 20  # SERVICE_MAX_BODY_BYTES, the default
MAX_HEADER_BYTES = 32_768  # SERVICE_MAX_HEADER_BYTES, the default
MAX_URL_BYTES = 8_192  # SERVICE_MAX_URL_BYTES, the default
EVENT = json.dumps({"specversion": "1.0", "id": "early-1", "source": "/clients", "type": "com.example.order.placed",
                    "data": {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 1, "currency": "EUR"}}).encode()


@dataclass(frozen=True)
class EarlyError:
    """A request the service answers before it has read it whole, and the answer every client must read."""

    status: int
    error: str
    body: bytes
    chunked: bool = False
    token: bool = True
    path: str = "/events"
    header_bytes: int = 0

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/cloudevents+json"}
        if self.token:
            headers["authorization"] = f"Bearer {TOKEN}"
        if self.header_bytes:
            headers["x-pad"] = "h" * self.header_bytes
        return headers

    def chunks(self) -> Iterator[bytes]:
        for start in range(0, len(self.body), 64 * 1024):
            yield self.body[start : start + 64 * 1024]


EARLY_ERRORS = {
    "413 declared": EarlyError(413, "body_too_large", b" " * (4 * MAX_BODY) + EVENT),
    "413 chunked": EarlyError(413, "body_too_large", b" " * (4 * MAX_BODY) + EVENT, chunked=True),
    "401 large body": EarlyError(401, "unauthorized", b" " * (MAX_BODY - len(EVENT) - 1) + EVENT, token=False),
    "431": EarlyError(431, "headers_too_large", EVENT, header_bytes=2 * MAX_HEADER_BYTES),
    "414": EarlyError(414, "url_too_long", EVENT, path="/events?q=" + "u" * (2 * MAX_URL_BYTES)),
}

Outcome = tuple[int | None, bytes]  # the status read (None: none) and the body, or what went wrong instead


def with_urllib(url: str, case: EarlyError) -> Outcome:
    data = case.chunks() if case.chunked else case.body  # an iterable body goes chunked
    request = urllib.request.Request(url + case.path, data=data, headers=case.headers(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def with_requests(url: str, case: EarlyError) -> Outcome:
    response = requests.post(url + case.path, data=case.chunks() if case.chunked else case.body,
                             headers=case.headers(), timeout=30)
    return response.status_code, response.content


def with_httpx(url: str, case: EarlyError) -> Outcome:
    response = httpx.post(url + case.path, content=case.chunks() if case.chunked else case.body,
                          headers=case.headers(), timeout=30)
    return response.status_code, response.content


def with_curl(url: str, case: EarlyError, folder: Path) -> Outcome:
    body_file, answer_file = folder / "curl-body", folder / "curl-answer"
    body_file.write_bytes(case.body)
    answer_file.unlink(missing_ok=True)
    arguments = ["curl", "--silent", "--show-error", "--max-time", "30", "--output", str(answer_file),
                 "--write-out", "%{http_code}", "--data-binary", f"@{body_file}"]
    for name, value in case.headers().items():
        arguments += ["--header", f"{name}: {value}"]
    if case.chunked:
        arguments += ["--header", "transfer-encoding: chunked"]
    done = subprocess.run([*arguments, url + case.path], capture_output=True, text=True, timeout=60)
    status = int(done.stdout) if done.stdout.isdigit() and done.stdout != "000" else None
    answer = answer_file.read_bytes() if answer_file.exists() else f"curl {done.returncode}: {done.stderr}".encode()
    return status, answer


def with_raw_socket(url: str, case: EarlyError) -> Outcome:
    """A naive client: write the whole request, then read the answer until the server closes."""
    port = int(url.rsplit(":", 1)[1])
    head = [f"POST {case.path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
            *(f"{name}: {value}" for name, value in case.headers().items())]
    if case.chunked:
        head.append("Transfer-Encoding: chunked")
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in case.chunks()) + b"0\r\n\r\n"
    else:
        head.append(f"Content-Length: {len(case.body)}")
        body = case.body
    received, trouble = b"", b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall("\r\n".join(head).encode() + b"\r\n\r\n" + body)
        except OSError as error:  # the server stopped reading: the answer may still be there to read
            trouble = f"send: {error}; ".encode()
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError as error:
            trouble += f"recv: {error}".encode()
    try:
        response, _ = parse_response(received, at_eof=True)
    except (Incomplete, ValueError):
        return None, trouble or received[:200]
    return response.status, response.body


CLIENTS: dict[str, Callable[..., Outcome]] = {
    "urllib": with_urllib,
    "requests": with_requests,
    "httpx": with_httpx,
    "curl": with_curl,
    "raw socket, Connection: close": with_raw_socket,
}


@pytest.fixture(scope="module")
def service(baked_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LimitedService]:
    with limited_service(baked_python, tmp_path_factory.mktemp("early-errors")) as running:
        yield running


def _attempt(client: str, url: str, case: EarlyError, folder: Path) -> str:
    """What the client got, as a short label: the status and error code, or the exception it raised."""
    try:
        if client == "curl":
            status, body = with_curl(url, case, folder)
        else:
            status, body = CLIENTS[client](url, case)
    except Exception as error:  # noqa: BLE001  # every way a client fails to read the answer is an outcome to count
        return f"{type(error).__name__}: {str(error)[:100]}"
    try:
        error_code = json.loads(body).get("error")
    except (ValueError, AttributeError):
        error_code = f"not JSON {body[:60]!r}"
    return f"{status} {error_code}"


@pytest.mark.parametrize("client", CLIENTS)
def test_a_common_client_reads_every_early_error_status(client: str, service: LimitedService, tmp_path: Path) -> None:
    if client == "curl" and shutil.which("curl") is None:
        pytest.skip("curl is not installed on this machine")
    outcomes = {
        name: Counter(_attempt(client, service.process.url, case, tmp_path) for _ in range(REPETITIONS))
        for name, case in EARLY_ERRORS.items()
    }
    expected = {name: f"{case.status} {case.error}" for name, case in EARLY_ERRORS.items()}
    print(f"\nearly errors, {client}: " + "; ".join(
        f"{name} {counts[expected[name]]}/{REPETITIONS}" for name, counts in outcomes.items()))
    wrong = {name: dict(counts) for name, counts in outcomes.items() if counts[expected[name]] != REPETITIONS}
    assert not wrong, f"{client} did not read every answer as {expected}: {wrong}"
    assert service.alive()
