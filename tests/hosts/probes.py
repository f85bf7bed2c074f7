"""What the tests read from the hosts: readiness, answers and counters over HTTP, the balancer's server states."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

from .network import HostNetwork, SystemdHost

# Reads the balancer's runtime API on the balancer host itself (it has python3 but no socat).
_SHOW_STAT = (
    "python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); "
    "s.sendall(b'show stat\\n'); print(s.makefile().read())\""
)

def readiness(address: str, port: int) -> tuple[int, dict[str, object]]:
    """Status and JSON body of GET /readyz; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/readyz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    except OSError:
        return 0, {}


def post_event_answer(address: str, port: int, body: dict[str, object], token: str) -> tuple[int, dict[str, object]]:
    """Status and JSON body of POST /events with one structured event."""
    request = urllib.request.Request(
        f"http://{address}:{port}/events", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/cloudevents+json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


_SAMPLE = re.compile(r'^(events_\w+_total)(?:\{handler="([^"]*)",type="([^"]*)"\})? (\S+)$', re.MULTILINE)


def event_counters(address: str, port: int) -> dict[tuple[str, str], float]:
    """The events_*_total counters of one instance's /metrics, keyed by (name, handler); handler '' for totals."""
    with urllib.request.urlopen(f"http://{address}:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    counters: dict[tuple[str, str], float] = {}
    for name, handler, _event_type, value in _SAMPLE.findall(text):
        counters[(name, handler)] = counters.get((name, handler), 0.0) + float(value)
    return counters


def post_event(address: str, port: int, body: dict[str, object], token: str | None) -> int:
    headers = {"Content-Type": "application/cloudevents+json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://{address}:{port}/events", data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def balancer_server_states(network: HostNetwork, balancer: SystemdHost, backend: str) -> dict[str, str]:
    """Status (UP, DOWN, MAINT, ...) of every server of `backend` in the balancer's haproxy."""
    rows = network.ssh(balancer, _SHOW_STAT).splitlines()
    header = rows[0].lstrip("# ").split(",")
    states = {}
    for row in rows[1:]:
        fields = dict(zip(header, row.split(","), strict=False))
        if fields.get("pxname") == backend and fields.get("svname") not in ("FRONTEND", "BACKEND", None):
            states[fields["svname"]] = fields["status"]
    return states


def wait_for_balancer(network: HostNetwork, balancer: SystemdHost, backend: str, servers: list[str],
                      timeout: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    states = balancer_server_states(network, balancer, backend)
    while time.monotonic() < deadline and any(states.get(server) != "UP" for server in servers):
        time.sleep(1)
        states = balancer_server_states(network, balancer, backend)
    return states
