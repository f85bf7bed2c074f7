"""Slow and idle clients and huge headers against a default bake started with its CLI under the deployed unit's
memory limit, while a normal client keeps posting events and its latency is measured.

The HTTP layer's timeouts are set short (tests/adversarial/bakes.py): headers trickled a byte at a time
(slowloris), bodies trickled or stalled, connections that never send anything, kept-alive connections left idle,
and a kept-alive connection that got an early 413 must each be cut off within their timeout plus a margin; 16 and
64 MiB headers get 431; the normal client gets every answer; the service is never killed and its resident memory
stays bounded. Run it with its figures: `pytest -s -m slow tests/test_adversarial_slow_clients.py`.
"""

from __future__ import annotations

import json
import selectors
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from adversarial.bakes import (
    BODY_TIMEOUT,
    HEADER_TIMEOUT,
    KEEP_ALIVE_TIMEOUT,
    TOKEN,
    LimitedService,
    limited_service,
)
from adversarial.memory_limit import RssSampler
from adversarial.raw_http import Incomplete, connect, one_exchange, parse_response, request
from adversarial.verdicts import is_json_error

pytestmark = pytest.mark.slow

LINGER = 2.0  # SERVICE_LINGER_SECONDS: how long an early answer's connection reads and drops what still comes
MARGIN = 4.0  # beyond each timeout, for a loaded 2-core machine
TRICKLE_EVERY = 0.2  # seconds between the bytes a slow client sends
ATTACK = {  # connections per kind of attack, together under the default SERVICE_MAX_CONNECTIONS (1000)
    "slowloris headers": 50,
    "trickled body": 50,
    "stalled body": 20,
    "idle, nothing sent": 500,
    "idle after a kept-alive answer": 50,
    "kept alive after an early 413": 10,
}
HUGE_HEADERS = (16 << 20, 64 << 20)  # the OOM: a ce-subject of 16-64 MiB
WAVES = 3  # the attack is opened again once the server has cut a wave off, so it lasts while normal clients post
HUGE_SENDERS = 4
HUGE_ROUNDS = 15
RSS_BOUND = 256 << 20
MIB = 1 << 20
AUTH = [("Host", "127.0.0.1"), ("Authorization", f"Bearer {TOKEN}")]
STRUCTURED = [("Content-Type", "application/cloudevents+json")]
PLACED = "com.example.order.placed"


def event_body(event_id: str) -> bytes:
    data = {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 1, "currency": "EUR"}
    event = {"specversion": "1.0", "id": event_id, "source": "/slow-clients", "type": PLACED, "data": data}
    return json.dumps(event).encode()


@dataclass
class Attacker:
    """One hostile connection: what it still has to send (`trickle`, a byte at a time, or `stall` after it) and
    when and how the server ended it."""

    kind: str
    sock: socket.socket
    bound: float  # seconds from `start` within which the server must have ended it
    trickle: bytes = b""
    start: float = field(default_factory=time.monotonic)
    next_send: float = 0.0
    received: bytes = b""
    ended: float | None = None
    how: str = ""

    def statuses(self) -> list[int]:
        statuses, buffer = [], self.received
        while buffer:
            try:
                response, used = parse_response(buffer, at_eof=True)
            except (Incomplete, ValueError):
                break
            statuses.append(response.status)
            buffer = buffer[used:]
        return statuses


def _open_attackers(port: int, refused: Counter[str]) -> list[Attacker]:
    attackers = []
    head = b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n"
    body = event_body("never-complete")
    for kind, count in ATTACK.items():
        for n in range(count):
            try:
                sock = connect(port)
            except OSError as error:  # the service is gone, or refuses: counted, and the test goes on to say so
                refused[f"{kind}: {error}"] += 1
                continue
            if kind == "slowloris headers":
                sock.sendall(head)
                attacker = Attacker(kind, sock, HEADER_TIMEOUT + MARGIN, trickle=b"X-Slow: " + b"s" * 10_000)
            elif kind == "trickled body":
                sock.sendall(request("POST", "/events", [*AUTH, *STRUCTURED], b"", content_length=False)[:-2]
                             + b"Content-Length: %d\r\n\r\n" % len(body))
                attacker = Attacker(kind, sock, BODY_TIMEOUT + MARGIN, trickle=body)
            elif kind == "stalled body":
                sock.sendall(request("POST", "/events", [*AUTH, *STRUCTURED], body)[:-len(body) // 2])
                attacker = Attacker(kind, sock, BODY_TIMEOUT + MARGIN)
            elif kind == "idle, nothing sent":
                attacker = Attacker(kind, sock, HEADER_TIMEOUT + MARGIN)
            elif kind == "idle after a kept-alive answer":
                sock.sendall(request("POST", "/events", [*AUTH, *STRUCTURED], event_body(f"kept-{n}")))
                attacker = Attacker(kind, sock, KEEP_ALIVE_TIMEOUT + MARGIN)
            else:  # an early 413 on a kept-alive connection whose body never comes
                sock.sendall(request("POST", "/events", [*AUTH, *STRUCTURED], b"", content_length=False)[:-2]
                             + b"Content-Length: %d\r\n\r\n" % (64 << 20))
                attacker = Attacker(kind, sock, LINGER + MARGIN)
            sock.setblocking(False)
            attackers.append(attacker)
    return attackers


def _watch(attackers: list[Attacker], deadline: float) -> None:
    """Trickle what each attacker still sends and note when the server ends each connection."""
    selector = selectors.DefaultSelector()
    for attacker in attackers:
        selector.register(attacker.sock, selectors.EVENT_READ, attacker)
    open_count = len(attackers)
    while open_count and time.monotonic() < deadline:
        for key, _ in selector.select(0.05):
            attacker = key.data
            try:
                chunk = attacker.sock.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                chunk, attacker.how = b"", "reset"
            if chunk:
                attacker.received += chunk
                if attacker.kind == "idle after a kept-alive answer" and attacker.statuses():
                    attacker.start = time.monotonic()  # idle from its answer on
                continue
            attacker.ended = time.monotonic()
            attacker.how = attacker.how or "closed"
            selector.unregister(attacker.sock)
            open_count -= 1
        now = time.monotonic()
        for attacker in attackers:
            if attacker.trickle and attacker.ended is None and now >= attacker.next_send:
                try:
                    attacker.sock.send(attacker.trickle[:1])
                    attacker.trickle = attacker.trickle[1:]
                except OSError:
                    attacker.trickle = b""
                attacker.next_send = now + TRICKLE_EVERY
    selector.close()
    for attacker in attackers:
        attacker.sock.close()


@dataclass
class NormalClient:
    """Posts one event at a time, alternating a kept-alive connection and a new one, until told to stop."""

    url: str
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/cloudevents+json"}
        n = 0
        with httpx.Client(timeout=10) as kept_alive:
            while not self.stop.is_set():
                n += 1
                started = time.monotonic()
                try:
                    body = event_body(f"normal-{n}")
                    if n % 2:
                        response = kept_alive.post(f"{self.url}/events", content=body, headers=headers)
                    else:
                        response = httpx.post(f"{self.url}/events", content=body, headers=headers, timeout=10)
                    self.outcomes[str(response.status_code)] += 1
                except httpx.HTTPError as error:
                    connection = "kept-alive" if n % 2 else "new"
                    self.outcomes[f"{type(error).__name__} on a {connection} connection: {error}"] += 1
                self.latencies.append(time.monotonic() - started)
                self.stop.wait(0.02)


def _huge_header_sender(port: int, size: int, statuses: Counter[str]) -> None:
    # binary mode: the headers are the event, so they are what must be held to a limit
    headers = [*AUTH, ("ce-specversion", "1.0"), ("ce-id", f"huge-{size}"), ("ce-source", "/slow-clients"),
               ("ce-type", PLACED), ("ce-subject", b"p" * size), ("Content-Type", "application/json")]
    data = b'{"order_id":"o","customer_id":"c","amount_cents":1,"currency":"EUR"}'
    payload = request("POST", "/events", headers, data)
    for _ in range(HUGE_ROUNDS):
        result = one_exchange(port, payload, answers=1, timeout=30)
        if result.responses:
            response = result.responses[0]
            statuses[f"{response.status}{'' if is_json_error(response) else ' (not JSON)'}"] += 1
        else:
            statuses[f"no answer ({result.ending})"] += 1


@pytest.fixture
def service(baked_python: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    with limited_service(baked_python, tmp_path, {"SERVICE_LINGER_SECONDS": str(LINGER)}) as running:
        yield running


def _while_normal_client_posts(service: LimitedService, attack: Callable[[], None]) -> tuple[list[str], list[str]]:
    """Run `attack` while a normal client posts and resident memory is sampled: the figures' lines and the
    problems with the normal client, the memory and the process."""
    normal = NormalClient(service.process.url)
    with RssSampler(service.pid) as rss:
        normal_thread = threading.Thread(target=normal.run, daemon=True)
        normal_thread.start()
        started = time.monotonic()
        attack()
        seconds = time.monotonic() - started
        normal.stop.set()
        normal_thread.join(15)
    alive, oom_kills = service.alive(), service.limit.oom_kills()
    latencies = sorted(normal.latencies)
    lines = [f"  {seconds:.1f} s under the limit: {service.limit.how} {service.limit.limit_bytes / MIB:.0f} MiB"]
    if latencies:
        lines.append(f"  normal client: {len(latencies)} requests, outcomes {dict(normal.outcomes)}; latency p50 "
                     f"{statistics.median(latencies) * 1000:.0f} ms, p95 "
                     f"{latencies[int(len(latencies) * 0.95)] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
    lines.append(f"  RSS: start {rss.first / MIB:.0f} MiB, max {rss.peak / MIB:.0f} MiB; OOM kills {oom_kills}; "
                 f"alive at the end: {alive}")
    problems = []
    if not latencies or normal.outcomes.get("202", 0) != len(latencies):
        problems.append(f"the normal client was not answered every time: {dict(normal.outcomes)}")
    if not alive or oom_kills:
        log = service.process.log()[-3000:]
        problems.append(f"the service died: alive={alive}, OOM kills={oom_kills}; log:\n{log}")
    if rss.peak > RSS_BOUND:
        problems.append(f"resident memory reached {rss.peak / MIB:.0f} MiB, over {RSS_BOUND / MIB:.0f} MiB")
    return lines, problems


def test_slow_and_idle_connections_are_cut_off_while_a_normal_client_is_answered(service: LimitedService) -> None:
    attackers: list[Attacker] = []
    refused: Counter[str] = Counter()

    def attack() -> None:
        for _ in range(WAVES):
            wave = _open_attackers(service.port, refused)
            _watch(wave, deadline=time.monotonic() + max((attacker.bound for attacker in wave), default=0) + 5)
            attackers.extend(wave)

    figures, problems = _while_normal_client_posts(service, attack)
    lines = ["", f"slow clients: {len(attackers)} hostile connections in {WAVES} waves", *figures]
    if refused:
        problems.append(f"connections refused: {dict(refused)}")
    for kind in ATTACK:
        group = [attacker for attacker in attackers if attacker.kind == kind]
        if not group:
            continue
        ended = [attacker for attacker in group if attacker.ended is not None]
        seconds = [attacker.ended - attacker.start for attacker in ended]  # type: ignore[operator]
        late = sum(1 for value, attacker in zip(seconds, ended, strict=True) if value > attacker.bound)
        statuses = Counter(status for attacker in group for status in attacker.statuses())
        lines.append(f"  {kind}: {len(ended)}/{len(group)} cut off, longest {max(seconds, default=0):.1f} s (bound "
                     f"{group[0].bound:.1f} s); answers {dict(statuses) or 'none'}; "
                     f"ended by {dict(Counter(attacker.how for attacker in ended))}")
        if len(ended) < len(group) or late:
            problems.append(f"{kind}: {len(group) - len(ended)} of {len(group)} still open, {late} cut off later "
                            f"than {group[0].bound:.1f} s")
    expected_statuses = {"idle after a kept-alive answer": {202}, "kept alive after an early 413": {413}}
    for kind, wanted in expected_statuses.items():
        seen = {status for attacker in attackers if attacker.kind == kind for status in attacker.statuses()}
        if seen != wanted:
            problems.append(f"{kind}: answers {seen}, expected {wanted}")
    print("\n".join(lines))
    assert not problems, "\n".join(problems)


def test_huge_headers_get_431_and_the_service_survives_under_the_memory_limit(service: LimitedService) -> None:
    huge: Counter[str] = Counter()

    def attack() -> None:
        senders = [threading.Thread(target=_huge_header_sender, args=(service.port, size, huge), daemon=True)
                   for size in HUGE_HEADERS for _ in range(HUGE_SENDERS // len(HUGE_HEADERS))]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(90)

    figures, problems = _while_normal_client_posts(service, attack)
    sizes = ", ".join(f"{size / MIB:.0f} MiB" for size in HUGE_HEADERS)
    print("\n".join(["", f"huge headers: {HUGE_SENDERS} senders x {HUGE_ROUNDS} requests with a ce-subject of "
                          f"{sizes}: {dict(huge)}", *figures]))
    if set(huge) != {"431"}:
        problems.append(f"huge headers: {dict(huge)}, expected a JSON 431 each")
    assert not problems, "\n".join(problems)
