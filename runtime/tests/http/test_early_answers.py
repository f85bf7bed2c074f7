"""Every common client reads every answer sent before its request was read whole, 20 times in a row: the server
closes after such an answer by a lingering close, so a client still sending gets the answer, not a reset."""

from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import requests

from event_runtime import http_protocol

from .conftest import TOKEN, Served, read_response, running_server, send_all

REPEATS = 20
BODY = b"x" * 1024 * 1024  # over SERVICE_MAX_BODY_BYTES (64 KiB here) and over what socket buffers take at once
STRUCTURED = {"Content-Type": "application/cloudevents+json", "Connection": "close"}
AUTHORIZED = {**STRUCTURED, "Authorization": f"Bearer {TOKEN}"}

# (path, headers) of a request answered early, the answer's status and error code
EARLY_ANSWERS: dict[str, tuple[str, dict[str, str], int, str]] = {
    "413-body": ("/events", AUTHORIZED, 413, "body_too_large"),
    "401-large-body": ("/events", STRUCTURED, 401, "unauthorized"),
    "431-headers": ("/events", {**AUTHORIZED, "ce-subject": "s" * 16 * 1024}, 431, http_protocol.HEADERS_TOO_LARGE),
    "414-url": ("/events?" + "q" * 4096, AUTHORIZED, 414, http_protocol.URL_TOO_LONG),
}

Answer = tuple[int, str]  # status and error code as the client read them
Client = Callable[[str, dict[str, str], bytes], Answer]


def with_urllib(url: str, headers: dict[str, str], body: bytes) -> Answer:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, msgspec.json.decode(error.read())["error"]


def with_requests(url: str, headers: dict[str, str], body: bytes) -> Answer:
    response = requests.post(url, data=body, headers=headers, timeout=10)
    return response.status_code, response.json()["error"]


def with_httpx(client: httpx.Client) -> Client:
    def post(url: str, headers: dict[str, str], body: bytes) -> Answer:
        response = client.post(url, content=body, headers=headers)
        return response.status_code, response.json()["error"]

    return post


def with_curl(url: str, headers: dict[str, str], body: bytes, *, expect: bool) -> Answer:
    body_file = Path(__file__).parent / ".." / ".." / ".pytest_cache" / "early-answer-body"
    body_file.parent.mkdir(exist_ok=True)
    if not body_file.exists() or body_file.stat().st_size != len(body):
        body_file.write_bytes(body)
    header_args = [part for name, value in headers.items() for part in ("-H", f"{name}: {value}")]
    if not expect:  # curl asks `Expect: 100-continue` for large bodies, which spares it the race: try without too
        header_args += ["-H", "Expect:"]
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "10",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            *header_args,
            "--data-binary",
            f"@{body_file}",
            url,
        ],
        capture_output=True,
        check=False,
        timeout=20,
    )
    assert done.returncode == 0, done.stderr.decode()
    answer, _, status = done.stdout.rpartition(b"\n")
    return int(status), msgspec.json.decode(answer)["error"]


def with_raw_socket(served: Served) -> Client:
    def post(url: str, headers: dict[str, str], body: bytes) -> Answer:
        target = url.removeprefix(served.base_url)
        head = f"POST {target} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        with served.connect() as sock:
            send_all(sock, head.encode() + b"\r\n" + body)
            response = read_response(sock)
        return response.status, response.json()["error"]

    return post


def clients(served: Served, httpx_client: httpx.Client) -> dict[str, Client]:
    chosen: dict[str, Client] = {
        "urllib": with_urllib,
        "requests": with_requests,
        "httpx": with_httpx(httpx_client),  # one client: each new one loads the CA bundle (~0.1 s)
        "raw-socket": with_raw_socket(served),
    }
    if shutil.which("curl"):
        chosen["curl"] = lambda url, headers, body: with_curl(url, headers, body, expect=True)
        chosen["curl-no-expect"] = lambda url, headers, body: with_curl(url, headers, body, expect=False)
    return chosen


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with running_server(auth_tokens=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def httpx_client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.mark.parametrize("answer", list(EARLY_ANSWERS))
@pytest.mark.parametrize("client", ["urllib", "requests", "httpx", "curl", "curl-no-expect", "raw-socket"])
def test_every_client_reads_every_early_answer(
    served: Served, httpx_client: httpx.Client, client: str, answer: str
) -> None:
    available = clients(served, httpx_client)
    if client not in available:
        pytest.skip(f"{client} is not installed here")
    path, headers, status, error = EARLY_ANSWERS[answer]
    seen: list[Any] = []
    for _ in range(REPEATS):
        try:
            seen.append(available[client](served.base_url + path, headers, BODY))
        except Exception as failure:  # noqa: BLE001  # a reset or a broken pipe instead of the answer: what this is about
            seen.append(repr(failure)[:120])

    assert seen == [(status, error)] * REPEATS
