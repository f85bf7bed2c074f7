"""Store failures seen from the service: 503 `store_unavailable` or `disk_full` with Retry-After (never 500, never a
202 for an event not stored), readiness failing while writes fail, settle writes retried until they land, a store
file deleted or replaced under the service, the backlog bound held under concurrent requests, drain-time 503s."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from structlog.testing import capture_logs

from event_runtime import disk_reserve
from event_runtime.bus import loop_store
from event_runtime.bus import sqlite as sqlite_bus
from event_runtime.bus.base import Delivery, StoreGone, StoreUnavailable
from event_runtime.registry import HandlerContext, HandlerRegistry
from event_runtime.testing import EventFactory, service_client

PING = "test.ping"
STRUCTURED = {"content-type": "application/cloudevents+json"}


class Ping(msgspec.Struct):
    n: int


def recording() -> tuple[HandlerRegistry, list[str]]:
    handled: list[str] = []
    registry = HandlerRegistry()

    @registry.on(PING, Ping)
    async def record(data: Ping, context: HandlerContext) -> None:
        handled.append(context.event.id)

    return registry, handled


async def post(client: httpx.AsyncClient, n: int, event_id: str | None = None) -> httpx.Response:
    event = EventFactory().event(PING, {"n": n}, event_id=event_id or f"e-{n}-{time.monotonic_ns()}")
    return await client.post("/events", content=msgspec.json.encode(event), headers=STRUCTURED)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


async def test_a_failing_append_answers_503_store_unavailable_logs_its_traceback_and_fails_readiness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, _ = recording()
    async with service_client(registry, bus_url=store_url(tmp_path)) as (client, service):
        real_append = sqlite_bus._append

        def full(*args: Any) -> Any:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(sqlite_bus, "_append", full)
        with capture_logs() as entries:
            refused = await post(client, 1)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"] == "store_unavailable"
        assert "disk is full" not in refused.json()["detail"]  # the store's error is for the log and /readyz
        failures = [entry for entry in entries if entry["event"] == "store_write_failed"]
        assert len(failures) == 1 and failures[0]["exc_info"] is True  # once, with its traceback
        assert await service.bus.pending_count() == 0  # nothing stored
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "append failed" in ready.json()["detail"]
        assert "disk is full" in ready.json()["detail"]

        monkeypatch.setattr(sqlite_bus, "_append", real_append)
        assert (await post(client, 2)).status_code == 202
        assert (await client.get("/readyz")).status_code == 200  # a write landed: ready again


async def test_any_error_of_a_bus_append_is_a_503_never_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    registry, _ = recording()
    async with service_client(registry) as (client, service):

        async def broken(events: object) -> list[int | None]:
            raise ConnectionResetError("the store went away")

        monkeypatch.setattr(service.bus, "append", broken)
        refused = await post(client, 1)
        assert (refused.status_code, refused.json()["error"]) == (503, "store_unavailable")
        assert refused.headers["retry-after"] == "1"


async def test_readiness_writes_so_a_store_that_only_reads_is_not_ready(tmp_path: Path) -> None:
    registry, _ = recording()
    async with service_client(registry, bus_url=store_url(tmp_path)) as (client, service):
        assert (await client.get("/readyz")).status_code == 200
        connection = service.bus._store._connection  # type: ignore[attr-defined]
        writes = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}

        def reads_only(action: int, name: str | None, value: str | None, *_: object) -> int:
            # a write refused as a full or read-only disk refuses it; a pragma with a value sets something
            refused = action in writes or (action == sqlite3.SQLITE_PRAGMA and value is not None)
            return sqlite3.SQLITE_DENY if refused else sqlite3.SQLITE_OK

        connection.set_authorizer(reads_only)
        assert (await service.bus.pending_count()) == 0  # reads still work
        ready = await client.get("/readyz")
        assert ready.status_code == 503, ready.json()
        connection.set_authorizer(None)
        assert (await client.get("/readyz")).status_code == 200


async def test_below_the_disk_reserve_new_events_get_503_disk_full_and_it_lifts_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(disk_reserve, "CHECK_EVERY_SECONDS", 0.05)
    registry, handled = recording()
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    async with service_client(registry, bus_url=store_url(tmp_path), min_free_bytes=free * 4) as (client, service):
        refused = await post(client, 1)
        assert refused.status_code == 503 and refused.json()["error"] == "disk_full"
        assert refused.headers["retry-after"] == "1"
        assert "SERVICE_MIN_FREE_BYTES" in (await client.get("/readyz")).json()["detail"]
        service.disk_reserve.min_free_bytes = 1  # space came back
        await asyncio.sleep(0.06)
        assert (await post(client, 2, "after")).status_code == 202
        assert (await client.get("/readyz")).status_code == 200
        await until(lambda: handled == ["after"])


@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_a_store_file_deleted_or_replaced_under_the_service_stops_intake_and_readiness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.setattr(sqlite_bus, "FILE_CHECK_SECONDS", 0.05)
    registry, _ = recording()
    path = tmp_path / "events.db"
    async with service_client(registry, bus_url=store_url(tmp_path)) as (client, _service):
        assert (await post(client, 1)).status_code == 202
        if how == "deleted":
            path.unlink()
        else:
            sqlite3.connect(tmp_path / "other.db").close()
            os.replace(tmp_path / "other.db", path)
        await asyncio.sleep(0.06)
        refused = await post(client, 2)
        assert refused.status_code == 503 and refused.json()["error"] == "store_unavailable"
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and how in ready.json()["detail"]
        assert path.exists() == (how == "replaced")  # never silently made again


async def test_a_checkpoint_thread_that_starts_after_the_store_file_was_deleted_makes_no_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the thread opens its own connection once it runs; on a busy machine that can be after the file is gone
    deleted = threading.Event()
    monkeypatch.setattr(loop_store, "_run_nicer_by", lambda _niceness: deleted.wait(5))
    path = tmp_path / "events.db"
    bus = sqlite_bus.SQLiteBus(str(path))
    await bus.open()
    try:
        path.unlink()
        deleted.set()
        checkpointer = bus._store._checkpointer
        assert checkpointer is not None
        checkpointer.join(5)
        assert not checkpointer.is_alive()  # it gave up: nothing to checkpoint
        assert not path.exists()
        with pytest.raises(StoreGone, match="deleted"):
            bus._check_file(always=True)
    finally:
        await bus.close()
    assert not path.exists()


@pytest.mark.parametrize("operation", ["complete", "retry", "dead_letter"])
async def test_a_settle_write_that_fails_is_retried_until_it_lands_on_every_error_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    attempts: list[str] = []
    registry = HandlerRegistry()

    @registry.on(PING, Ping, max_attempts=1 if operation == "dead_letter" else 5)
    async def settle(data: Ping, context: HandlerContext) -> None:
        attempts.append(context.event.id)
        if operation != "complete" and len(attempts) == 1:
            raise RuntimeError("first attempt fails")

    errors = [sqlite3.OperationalError("disk I/O error"), StoreUnavailable("refusing writes"), RuntimeError("bug?")]
    async with service_client(registry, bus_url=store_url(tmp_path), lease_seconds=60) as (client, service):
        real = getattr(service.bus, operation)

        async def flaky(delivery: Delivery, *args: Any) -> None:
            if errors:
                raise errors.pop(0)
            await real(delivery, *args)

        monkeypatch.setattr(service.bus, operation, flaky)
        assert (await post(client, 1, "settled")).status_code == 202
        await until(lambda: not errors, timeout=10)
        assert (await client.get("/readyz")).status_code in (200, 503)

        async def settled() -> bool:
            if operation == "dead_letter":
                return len(await service.bus.dead_letters()) == 1
            return await service.bus.pending_count() == 0

        deadline = time.monotonic() + 10  # well inside the 60 s lease: not a redelivery
        while not await settled():
            assert time.monotonic() < deadline, f"the {operation} never landed"
            await asyncio.sleep(0.02)
        assert (await client.get("/readyz")).status_code == 200
    assert attempts == ["settled"] * (1 if operation != "retry" else 2)


async def test_concurrent_requests_cannot_take_the_backlog_past_its_bound() -> None:
    release = asyncio.Event()
    registry = HandlerRegistry()

    @registry.on(PING, Ping)
    async def held(data: Ping, context: HandlerContext) -> None:
        await release.wait()

    bound = 20
    async with service_client(registry, max_pending=bound) as (client, service):
        answers = await asyncio.gather(*(post(client, n) for n in range(100)))
        accepted = sum(1 for answer in answers if answer.status_code == 202)
        refused = [answer for answer in answers if answer.status_code == 503]
        pending = await service.bus.pending_count()
        release.set()
    # one request may go in while the estimate is at the bound (one delivery each here)
    assert accepted == pending <= bound + 1
    assert refused and all(answer.headers["retry-after"] == "1" for answer in refused)
    assert {answer.json()["error"] for answer in refused} == {"backlog_full"}


async def test_while_draining_new_events_get_503_with_retry_after() -> None:
    registry, _ = recording()
    async with service_client(registry) as (client, service):
        service.begin_drain()
        refused = await post(client, 1)
    assert (refused.status_code, refused.json()["error"]) == (503, "draining")
    assert refused.headers["retry-after"] == "1"
