"""What the tests read from the hosts: readiness over HTTP, the balancer's server states, the bus's stored events."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from .network import HostNetwork, SystemdHost

# Reads the balancer's runtime API on the balancer host itself (it has python3 but no socat).
_SHOW_STAT = (
    "python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); "
    "s.sendall(b'show stat\\n'); print(s.makefile().read())\""
)

# Events of one source in the host's SQLite bus: those whose deliveries were made (handlers cleared by the fan-out)
# and none of them is left were handled by every handler; open counts the deliveries still to make as well.
_STORED_EVENTS = """python3 - <<'PY'
import json, sqlite3
connection = sqlite3.connect("{db}")
handled = [row[0] for row in connection.execute(
    "SELECT id FROM events WHERE source = ? AND handlers IS NULL AND NOT EXISTS "
    "(SELECT 1 FROM deliveries AS d WHERE d.event_seq = events.seq)", ("{source}",))]
open_deliveries = connection.execute("SELECT count(*) FROM deliveries").fetchone()[0] + connection.execute(
    "SELECT coalesce(sum(json_array_length(handlers)), 0) FROM events WHERE handlers IS NOT NULL").fetchone()[0]
dead = connection.execute("SELECT count(*) FROM deliveries WHERE state = 3").fetchone()[0]
print(json.dumps({{"handled": handled, "open": open_deliveries, "dead": dead}}))
PY"""


def readiness(address: str, port: int) -> tuple[int, dict[str, object]]:
    """Status and JSON body of GET /readyz; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/readyz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    except OSError:
        return 0, {}


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


def stored_events(network: HostNetwork, host: SystemdHost, db: str, source: str) -> dict[str, object]:
    return json.loads(network.ssh(host, _STORED_EVENTS.format(db=db, source=source)))


def wait_until_bus_empty(network: HostNetwork, hosts: list[SystemdHost], db: str, source: str,
                         timeout: float = 90) -> dict[str, dict[str, object]]:
    """Poll every host's bus until no delivery is open (or the timeout passes); return the last reading."""
    deadline = time.monotonic() + timeout
    while True:
        readings = {host.name: stored_events(network, host, db, source) for host in hosts}
        if all(reading["open"] == 0 for reading in readings.values()) or time.monotonic() > deadline:
            return readings
        time.sleep(2)
