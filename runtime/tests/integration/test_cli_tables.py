"""What the CLI prints for a person: `send` and `dlq list` as tables (`--json` for machines), `dlq replay`'s progress
on stderr with --progress or on a terminal, and only its count otherwise. Real processes: the console script, a
`serve` on a free port, a SQLite store, a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from event_runtime.testing import BusHarness, EventFactory

from ..sample_service import ORDER_PLACED, registry

RUNTIME_DIR = Path(__file__).resolve().parents[2]
SCRIPT = (
    "import sys\nfrom event_runtime import EventService\nfrom tests.sample_service import registry\n"
    "sys.exit(EventService(registry, name='sample').main(sys.argv[1:]))"
)


def environment(**env: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(RUNTIME_DIR)]))
    return {**os.environ, "PYTHONPATH": path, **env}


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        capture_output=True, text=True, timeout=60, cwd=RUNTIME_DIR, env=environment(**env),
    )  # fmt: skip


def order(events: EventFactory, order_id: str, currency: str = "JPY") -> dict[str, object]:
    data = {"order_id": order_id, "customer_id": "c-1", "amount_cents": 100, "currency": currency}
    return events.event(ORDER_PLACED, data, event_id=order_id)


async def dead_letter(bus_url: str, count: int, *, first: int = 0) -> None:
    """`count` orders in yen: reserve_stock dead-letters each (once each round, replayed ones again)."""
    events = EventFactory()
    async with BusHarness(registry, bus_url=bus_url) as bus:
        await bus.publish(*(order(events, f"jpy-{n:03d}") for n in range(first, first + count)))
        await bus.drain()


async def test_dlq_list_is_an_aligned_table_and_json_lines_with_json(tmp_path: Path) -> None:
    bus_url = f"sqlite:///{tmp_path / 'events.db'}"
    await dead_letter(bus_url, 3)
    listed = cli("dlq", "list", SERVICE_BUS_URL=bus_url)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["id", "source", "type", "handler", "attempts", "last_error"]
    assert len(rows) == 3
    for column in ("source", "type", "handler", "attempts", "last_error"):  # every row's cell starts under its name
        at = header.index(column)
        assert all(row[at - 2 : at] == "  " and row[at] != " " for row in rows), (column, rows)
    assert all(row.endswith("NonRetryableError: currency JPY is not supported") for row in rows)
    assert listed.stderr.strip() == "3 dead-lettered deliveries"
    as_json = cli("dlq", "list", "--json", SERVICE_BUS_URL=bus_url)
    letters = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert sorted(letter["id"] for letter in letters) == ["jpy-000", "jpy-001", "jpy-002"]
    assert {letter["handler"] for letter in letters} == {"reserve_stock"} and as_json.stderr == ""


async def test_dlq_replay_shows_progress_with_progress_and_on_a_terminal_only(tmp_path: Path) -> None:
    bus_url = f"sqlite:///{tmp_path / 'events.db'}"
    await dead_letter(bus_url, 25)
    shown = cli("dlq", "replay", "--all", "--batch", "10", "--progress", SERVICE_BUS_URL=bus_url)
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr.splitlines() == [
        "replayed 10/25 (40%)",
        "replayed 20/25 (80%)",
        "replayed 25/25 (100%)",
        "replayed 25 deliveries",
    ]
    assert cli("dlq", "list", SERVICE_BUS_URL=bus_url).stdout == ""  # all due again

    await dead_letter(bus_url, 0)  # the replayed deliveries are handled, and dead-lettered again
    quiet = cli("dlq", "replay", "--all", SERVICE_BUS_URL=bus_url)  # stderr is a pipe: no progress
    assert (quiet.returncode, quiet.stderr) == (0, "replayed 25 deliveries\n")

    await dead_letter(bus_url, 0)
    output = on_a_terminal([sys.executable, "-c", SCRIPT, "dlq", "replay", "--all", "--batch", "10"], bus_url)
    assert "\rreplayed 25/25 (100%)\x1b[K\r\nreplayed 25 deliveries" in output, repr(output)


def on_a_terminal(command: list[str], bus_url: str) -> str:
    """Run `command` with its stderr on a pseudo-terminal; what it wrote there (the terminal makes \\n \\r\\n)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        command, cwd=RUNTIME_DIR, env=environment(SERVICE_BUS_URL=bus_url),
        stdout=subprocess.DEVNULL, stderr=terminal,
    )  # fmt: skip
    os.close(terminal)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # the process closed its end
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif process.poll() is not None:
                break
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        os.close(controller)
    return b"".join(chunks).decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """The sample service's `serve`, workers on, on a free port; stopped by PID."""
    port = free_port()
    env = environment(SERVICE_BUS_URL=f"sqlite:///{tmp_path / 'served.db'}", SERVICE_SHUTDOWN_DRAIN_SECONDS="0")
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "serve", "--port", str(port)], cwd=RUNTIME_DIR, env=env,
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def test_send_prints_the_answer_and_the_handlers_results_as_tables(served: str) -> None:
    data = json.dumps({"order_id": "o-1", "customer_id": "c-1", "amount_cents": 100, "currency": "JPY"})
    sent = cli("send", "--url", served, "--type", ORDER_PLACED, "--id", "e-1", "--data", data, "--wait", "10")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    answer, results = sent.stdout.split("\n\n")
    assert answer.splitlines() == ["status      200", "id          e-1", "accepted    1", "duplicates  0"]
    header, *rows = results.splitlines()
    assert header.split() == ["handler", "status", "result", "/", "error"]
    assert sorted(row.split()[:2] for row in rows) == [
        ["reserve_stock", "dead_lettered"],
        ["send_order_confirmation", "processed"],
    ]
    assert any(row.endswith("NonRetryableError: currency JPY is not supported") for row in rows)
    assert any(row.endswith('{"to": "c-1", "message": "Order o-1 confirmed"}') for row in rows)

    again = cli("send", "--url", served, "--type", ORDER_PLACED, "--id", "e-1", "--data", data, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"status": 202, "id": "e-1", "body": {"accepted": 0, "duplicates": 1}}

    refused = cli("send", "--url", served, "--type", ORDER_PLACED, "--data", '{"order_id": "o-2"}')
    assert refused.returncode == 1
    lines = dict(line.split(None, 1) for line in refused.stdout.splitlines())
    assert (lines["status"], lines["error"]) == ("422", "invalid_data")
    assert lines["errors"].startswith('[{"path": "$", "message": "Object missing required field')
