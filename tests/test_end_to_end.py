"""A real bake, started with its own CLI, driven over HTTP with the official CloudEvents SDK as the client."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from service_process import ServiceProcess
from support import run_in

pytestmark = pytest.mark.slow

TOKEN = "e2e-token"
PLACED = "com.example.order.placed"
CANCELLED = "com.example.order.cancelled"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def order_event(event_id: str, order_id: str = "o-1", **data: object) -> CloudEvent:
    payload = {"order_id": order_id, "customer_id": "c-1", "amount_cents": 990, "currency": "EUR", **data}
    attributes = {"id": event_id, "source": "/e2e", "type": PLACED, "specversion": "1.0", "subject": order_id,
                  "datacontenttype": "application/json"}
    return CloudEvent(attributes, payload)


def post(service: ServiceProcess, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{service.url}/events", content=body, headers=headers, timeout=10)


@pytest.fixture
def service(bake_project, baked_python: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    project = bake_project()
    env = {"SERVICE_AUTH_TOKENS": TOKEN, "SERVICE_BUS_URL": f"sqlite:///{tmp_path / 'events.db'}",
           "SERVICE_MAX_BODY_BYTES": "65536", "SERVICE_SHUTDOWN_DRAIN_SECONDS": "1.5"}
    with ServiceProcess(project, baked_python, env=env) as running:
        running.wait_ready()
        yield running


def test_all_three_modes_are_handled_duplicates_skipped_and_each_error_coded(service: ServiceProcess) -> None:
    structured = to_structured_event(order_event("s-1", "o-1"))
    binary = to_binary_event(order_event("b-1", "o-2"))
    assert post(service, structured.body, {**structured.headers, **AUTH}).status_code == 202
    assert post(service, binary.body, {**binary.headers, **AUTH}).status_code == 202
    # batch: the SDK has no batch writer, so members are its JSON format joined into an array by hand
    members = [json.loads(JSONFormat().write(order_event(f"batch-{n}", f"o-{n}"))) for n in range(3, 6)]
    members.append(json.loads(structured.body))  # a duplicate of the structured event
    members.append({"specversion": "1.0", "id": "c-1", "source": "/e2e", "type": CANCELLED,
                    "data": {"order_id": "o-1", "reason": "changed mind"}})
    batch = post(service, json.dumps(members).encode(), {"content-type": "application/cloudevents-batch+json", **AUTH})
    assert batch.status_code == 202
    assert batch.json() == {"accepted": 4, "duplicates": 1}
    assert "server" not in batch.headers  # nothing that tells a scanner what runs here

    errors = {
        "malformed": post(service, b"{not json", {"content-type": "application/cloudevents+json", **AUTH}),
        "invalid_attributes": post(service, b'{"specversion": "1.0", "type": "x"}',
                                   {"content-type": "application/cloudevents+json", **AUTH}),
        "unauthorized": post(service, structured.body, structured.headers),
        "too_large": post(service, b"[" + b" " * 70_000 + b"]",
                          {"content-type": "application/cloudevents-batch+json", **AUTH}),
        "unsupported_media_type": post(service, b"{}", {"content-type": "text/plain", **AUTH}),
        "unknown_type": post(service, json.dumps({"specversion": "1.0", "id": "u", "source": "/e2e",
                                                  "type": "com.example.nobody"}).encode(),
                             {"content-type": "application/cloudevents+json", **AUTH}),
        "invalid_data": post(service, to_structured_event(order_event("bad", currency="euro")).body,
                             {"content-type": "application/cloudevents+json", **AUTH}),
    }
    assert {reason: response.status_code for reason, response in errors.items()} == {
        "malformed": 400, "invalid_attributes": 400, "unauthorized": 401, "too_large": 413,
        "unsupported_media_type": 415, "unknown_type": 422, "invalid_data": 422,
    }
    assert all(response.json()["detail"] for response in errors.values())

    service.wait_idle()
    assert service.metric("events_accepted_total") == 6
    assert service.metric("events_duplicates_total") == 1
    for handler in ("reserve_stock", "send_order_confirmation"):
        assert service.metric(f'events_processed_total{{handler="{handler}",type="{PLACED}"}}') == 5
    assert service.metric(f'events_processed_total{{handler="release_stock",type="{CANCELLED}"}}') == 1
    for reason in errors:
        assert service.metric(f'events_rejected_total{{reason="{reason}"}}') == 1, reason


def test_the_cli_sends_an_event_and_gets_the_handlers_results(service: ServiceProcess, baked_python: Path) -> None:
    data = json.dumps({"order_id": "o-9", "customer_id": "c", "amount_cents": 1, "currency": "USD"})
    result = run_in(service.project, baked_python, "python", "-m", "event_service", "send", "--type", PLACED,
                    "--data", data, "--url", service.url, "--token", TOKEN, "--wait", "5", "--json", timeout=30)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["status"] == 200
    assert {outcome["handler"] for outcome in reply["body"]["results"]} == {"reserve_stock", "send_order_confirmation"}


def test_sigterm_drains_first_then_stops_cleanly(service: ServiceProcess) -> None:
    service.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    readiness = httpx.get(f"{service.url}/readyz", timeout=2)
    refused = post(service, to_structured_event(order_event("late")).body,
                   {"content-type": "application/cloudevents+json", **AUTH})
    assert (readiness.status_code, readiness.json()["detail"]) == (503, "draining")
    assert refused.status_code == 503
    assert service.process.wait(15) in (0, -signal.SIGTERM)
    assert '"event": "service_stopped"' in service.log()


def test_events_stored_before_a_kill_9_are_handled_by_a_worker_process_after_it(
    bake_project, baked_python: Path, tmp_path: Path
) -> None:
    project = bake_project()
    database = tmp_path / "events.db"
    env = {"SERVICE_BUS_URL": f"sqlite:///{database}", "SERVICE_LOG_LEVEL": "WARNING"}
    events = [json.loads(JSONFormat().write(order_event(f"k-{n}", f"o-{n % 7}"))) for n in range(300)]
    with ServiceProcess(project, baked_python, env=env, command=("serve", "--no-workers")) as ingest_only:
        ingest_only.wait_ready()
        reply = post(ingest_only, json.dumps(events).encode(), {"content-type": "application/cloudevents-batch+json"})
        assert reply.json() == {"accepted": 300, "duplicates": 0}
        ingest_only.stop(signal.SIGKILL)

    def open_deliveries() -> int:
        # deliveries not done yet, with those of stored events that the next claim makes (docs/event-bus.md)
        with sqlite3.connect(database) as store:
            made = store.execute("SELECT count(*) FROM deliveries").fetchone()[0]
            to_make = store.execute(
                "SELECT coalesce(sum(json_array_length(handlers)), 0) FROM events WHERE handlers IS NOT NULL"
            ).fetchone()[0]
            return int(made) + int(to_make)

    assert open_deliveries() == 600  # two handlers per event, none handled yet
    with ServiceProcess(project, baked_python, env=env, command=("worker",)) as worker:
        deadline = time.monotonic() + 60
        while open_deliveries() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert open_deliveries() == 0
        assert worker.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize("command", [("serve", "--no-workers"), ("worker",)])
def test_each_process_kind_freezes_its_start_up_heap_before_taking_work(
    bake_project, baked_python: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    # otherwise every full collection walks it all again with the loop stopped (docs/performance.md, run 7)
    env = {"SERVICE_BUS_URL": f"sqlite:///{tmp_path / 'events.db'}"}
    with ServiceProcess(bake_project(), baked_python, env=env, command=command) as process:
        deadline = time.monotonic() + 20
        while '"startup_heap_frozen"' not in process.log() and time.monotonic() < deadline:
            assert process.process.poll() is None, process.log()
            time.sleep(0.1)
        [frozen] = [entry for entry in map(json.loads, process.log().splitlines())
                    if entry["event"] == "startup_heap_frozen"]
        assert frozen["objects"] > 10_000  # the modules and the service itself, not a near-empty heap
        assert process.stop(signal.SIGTERM) in (0, -signal.SIGTERM)  # serve ends by the signal it was sent


def test_dead_letters_are_listed_and_replayed_with_the_cli(service: ServiceProcess, baked_python: Path) -> None:
    # reserve_stock refuses an unsupported currency for good, so this event is dead-lettered at once
    refused = to_structured_event(order_event("jpy-1", "o-jpy", currency="JPY"))
    assert post(service, refused.body, {**refused.headers, **AUTH}).status_code == 202
    service.wait_idle()
    env = {"SERVICE_BUS_URL": service.env["SERVICE_BUS_URL"]}

    def dlq(*arguments: str):  # type: ignore[no-untyped-def]
        return run_in(service.project, baked_python, "python", "-m", "event_service", "dlq", *arguments,
                      timeout=60, **env)

    listed = dlq("list", "--json")
    assert listed.returncode == 0, listed.stderr
    [letter] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (letter["id"], letter["handler"], letter["attempts"]) == ("jpy-1", "reserve_stock", 1)
    assert letter["last_error"] == "NonRetryableError: currency JPY is not supported"

    dry_run = dlq("replay", "--id", "jpy-1", "--dry-run")
    assert (dry_run.returncode, dry_run.stdout.strip()) == (0, "would replay jpy-1\treserve_stock")
    unknown = dlq("replay", "--id", "no-such-id")
    assert unknown.returncode == 1 and "no dead letter with id 'no-such-id'" in unknown.stderr

    dead_before = service.metric('events_dead_lettered_total{handler="reserve_stock",type="com.example.order.placed"}')
    replayed = dlq("replay", "--all")
    assert (replayed.returncode, replayed.stderr.strip()) == (0, "replayed 1 deliveries")
    deadline = time.monotonic() + 20  # the running service picks it up, and dead-letters it again
    label = 'events_dead_lettered_total{handler="reserve_stock",type="com.example.order.placed"}'
    while service.metric(label) == dead_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert service.metric(label) == dead_before + 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"SERVICE_MAX_BODY_BYTES": "-1"}, "SERVICE_MAX_BODY_BYTES: Input should be greater than 0"),
        ({"SERVICE_ENV": "production", "SERVICE_AUTH_TOKENS": ""}, "SERVICE_AUTH_TOKENS must hold at least one token"),
    ],
)
def test_an_invalid_setting_stops_the_start_naming_the_variable(
    bake_project, baked_python: Path, settings: dict[str, str], message: str
) -> None:
    result = run_in(bake_project(), baked_python, "python", "-m", "event_service", "serve", timeout=30, **settings)
    assert result.returncode == 2
    assert message in result.stderr
