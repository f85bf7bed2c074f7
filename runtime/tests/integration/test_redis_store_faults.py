"""The Redis bus under store faults, against a redis-server of this module's own (it is hung, made to refuse
writes, killed and restarted, so never the shared one): a read lost in a hang is delivered while the process
runs, refused acknowledgements are retried until they land (or the delivery is released), append and ping raise
StoreUnavailable with the cause, a dead owner's partitions are served by another within 5 s and its late
acknowledgements are fenced, and the bus recovers by itself after Redis was killed and restarted."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis

from event_runtime.bus import redis_bus as redis_bus_module
from event_runtime.bus.base import StoreUnavailable
from event_runtime.bus.redis_bus import RedisBus
from event_runtime.registry import HandlerRegistry
from event_runtime.testing import BusHarness, EventFactory, RecordingHandler

pytestmark = pytest.mark.redis
PING = "test.ping"


class Ping(msgspec.Struct):
    n: int


class OwnRedis:
    """A redis-server on a free port, started and killed by PID; AOF (fsync always) in `directory` if given."""

    def __init__(self, directory: Path | None = None) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = ["--appendonly", "no"]
        if self.directory is not None:
            persistence = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)]
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence]
        self.process = subprocess.Popen([*command, "--daemonize", "no"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def signal(self, number: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, number)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(scope="module")
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def prefix() -> str:
    return f"faults-{uuid.uuid4().hex[:10]}"


Refuse = Callable[[str | None], None]


@pytest.fixture
def refuse_writes(own_redis: OwnRedis) -> Iterator[Refuse]:
    """`refuse("NOREPLICAS")`: every write is answered -NOREPLICAS (min-replicas-to-write 1, no replica);
    `refuse("READONLY")`: -READONLY, as after a failover (a replica of a master that is not there); `refuse(None)`
    takes writes again."""
    client = own_redis.client()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nobody = probe.getsockname()[1]

    def refuse(kind: str | None) -> None:
        client.config_set("min-replicas-to-write", 1 if kind == "NOREPLICAS" else 0)
        if kind == "READONLY":
            client.replicaof("127.0.0.1", nobody)
        else:
            client.replicaof("NO", "ONE")

    yield refuse
    refuse(None)
    client.config_set("maxmemory", 0)
    client.close()


def harness(url: str, prefix: str, handler: RecordingHandler, **settings: object) -> BusHarness:
    registry = HandlerRegistry()
    registry.on(PING, Ping)(handler)
    return BusHarness(registry, bus_url=url, redis_key_prefix=prefix, **settings)


def redis_of(harness: BusHarness) -> RedisBus:
    bus = harness.service.bus
    assert isinstance(bus, RedisBus)
    return bus


def in_key_order(handler: RecordingHandler) -> dict[str, list[int]]:
    by_key: dict[str, list[int]] = {}
    for data, context in handler.calls:
        by_key.setdefault(context.event.ordering_key or "", []).append(data.n)
    return by_key


async def pending_or_unknown(bus: object) -> int:
    """The pending count; -1 when this call failed (a pooled connection from before the restart fails once)."""
    assert isinstance(bus, RedisBus)
    try:
        return await bus.pending_count()
    except redis.exceptions.ConnectionError:
        return -1


def pings(count: int, keys: int) -> list[dict[str, object]]:
    return EventFactory().many(count, PING, lambda n: {"n": n}, subject_for=lambda n: f"k{n % keys}")


async def test_a_read_lost_in_a_hang_past_the_socket_timeout_is_delivered_while_the_process_runs(
    own_redis: OwnRedis, prefix: str
) -> None:
    handler = RecordingHandler()
    # a lease far longer than the hang: the partitions stay this process's, so no takeover hides a lost read
    async with harness(own_redis.url, prefix, handler, redis_lease_seconds=30, redis_socket_timeout_seconds=0.5) as h:
        events = pings(24, keys=4)
        await h.publish(events[0])
        await h.drain()
        await h.publish(*events[1:])
        own_redis.signal(signal.SIGSTOP)  # the read below reaches Redis, which runs it only after SIGCONT
        try:
            with pytest.raises(Exception, match="Timeout"):
                await h.service.workers.run_once()
        finally:
            own_redis.signal(signal.SIGCONT)
        await h.drain(timeout=10)
    assert sorted(handler.event_ids) == sorted(str(event["id"]) for event in events)
    assert in_key_order(handler) == {f"k{k}": [n for n in range(24) if n % 4 == k] for k in range(4)}


class ReplyCutter:
    """A TCP proxy in front of Redis that can lose one reply: `cut(marker)` makes the next request holding
    `marker` reach Redis and run there, then drops its reply and closes the connection, as when Redis is killed
    after it wrote a command to its AOF and before it answered (the window CI hit with kill -9)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.marker: bytes | None = None
        self.cuts = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> ReplyCutter:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    def cut(self, marker: bytes) -> None:
        self.marker = marker

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        upstream_in, upstream_out = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        replies = asyncio.create_task(self._pipe(upstream_in, client_out))
        try:
            while data := await client_in.read(65536):
                upstream_out.write(data)
                await upstream_out.drain()
                if self.marker is not None and self.marker in data:
                    self.marker = None
                    replies.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await replies
                    await upstream_in.read(65536)  # Redis ran it and answered; the answer goes nowhere
                    self.cuts += 1
                    break
        finally:
            replies.cancel()
            client_out.close()
            upstream_out.close()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()


async def test_a_read_whose_reply_was_lost_is_delivered_while_the_process_runs(
    own_redis: OwnRedis, prefix: str
) -> None:
    handler = RecordingHandler()
    proxy = ReplyCutter(own_redis.port)
    async with proxy, harness(proxy.url, prefix, handler, redis_lease_seconds=30) as h:
        events = pings(24, keys=4)
        await h.publish(events[0])
        await h.drain()
        await h.publish(*events[1:])
        proxy.cut(redis_of(h)._read_script.sha.encode())  # the next read's entries go pending, unseen
        with pytest.raises(redis.exceptions.ConnectionError):
            await h.service.workers.run_once()
        assert proxy.cuts == 1
        await h.drain(timeout=10)
    assert sorted(handler.event_ids) == sorted(str(event["id"]) for event in events)
    assert in_key_order(handler) == {f"k{k}": [n for n in range(24) if n % 4 == k] for k in range(4)}


async def test_a_read_sent_before_the_epoch_moved_on_takes_nothing(own_redis: OwnRedis, prefix: str) -> None:
    async with harness(own_redis.url, prefix, RecordingHandler(), redis_lease_seconds=30) as h:
        await h.publish(*pings(4, keys=4))
        bus = redis_of(h)
        await bus.claim(0)  # consuming: leases taken, read epoch set, the 4 entries read into the lanes
        await h.publish(*pings(4, keys=4))
        stale_epoch = bus._read_epoch
        await bus._resync_reads()
        arguments: list[Any] = [bus.prefix, bus._owner, stale_epoch, 100]
        for partition in range(bus.partitions):
            arguments += ["recording", partition]
        assert await bus._read_script(args=arguments) == [-1]  # a late read: fenced, reads nothing
        pending = sum(int(own_redis.client().xpending(bus._key("stream", p), "recording")["pending"])
                      for p in range(bus.partitions))  # fmt: skip
        assert pending == 4  # only what the first claim read
        await h.drain()
        assert await bus.pending_count() == 0


@pytest.mark.parametrize("refusal", ["NOREPLICAS", "READONLY"])
async def test_settles_refused_by_redis_are_retried_until_they_land_and_no_key_stays_blocked(
    own_redis: OwnRedis, prefix: str, refuse_writes: Refuse, refusal: str
) -> None:
    refuse = refuse_writes
    handler = RecordingHandler()
    async with harness(own_redis.url, prefix, handler, redis_lease_seconds=30) as h:
        events = pings(12, keys=3)
        await h.publish(*events)
        bus = redis_of(h)
        deliveries = await bus.claim(10)  # the head of each key: 3 deliveries
        assert len(deliveries) == 3
        refuse(refusal)
        settling = [asyncio.create_task(h.service.workers._deliver(d)) for d in deliveries]
        await asyncio.sleep(1.0)
        assert not any(task.done() for task in settling)  # retried, not given up and not dropped
        with pytest.raises(StoreUnavailable) as refused:
            await bus.ping()  # readiness fails while writes fail, though Redis answers PING
        assert refusal in str(refused.value.__cause__) or refusal in type(refused.value.__cause__).__name__.upper()
        with pytest.raises(StoreUnavailable) as refused:
            await h.publish(*pings(1, keys=1))
        assert isinstance(refused.value.__cause__, redis.exceptions.ResponseError)
        refuse(None)
        await asyncio.wait_for(asyncio.gather(*settling), 10)
        await bus.ping()
        await h.drain(timeout=10)
        assert await bus.pending_count() == 0
    assert sorted(handler.event_ids) == sorted(str(event["id"]) for event in events)  # each once
    assert in_key_order(handler) == {f"k{k}": [n for n in range(12) if n % 3 == k] for k in range(3)}


async def test_acks_go_through_under_oom_while_appends_get_store_unavailable(
    own_redis: OwnRedis, prefix: str, refuse_writes: Refuse
) -> None:
    handler = RecordingHandler()
    client = own_redis.client()
    async with harness(own_redis.url, prefix, handler, redis_lease_seconds=30) as h:
        await h.publish(*pings(6, keys=6))
        bus = redis_of(h)
        deliveries = await bus.claim(10)
        client.config_set("maxmemory", 1)  # every write that takes memory is refused -OOM
        with pytest.raises(StoreUnavailable) as refused:
            await h.publish(*pings(1, keys=1))
        assert isinstance(refused.value.__cause__, redis.exceptions.OutOfMemoryError)
        with pytest.raises(StoreUnavailable):
            await bus.ping()
        for delivery in deliveries:
            await asyncio.wait_for(bus.complete(delivery), 5)  # acknowledging frees memory: allowed under OOM
        assert await bus.pending_count() == 0
        client.config_set("maxmemory", 0)
    client.close()


async def test_an_ack_that_cannot_land_is_released_and_delivered_again(
    own_redis: OwnRedis, prefix: str, refuse_writes: Refuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse = refuse_writes
    monkeypatch.setattr(redis_bus_module, "SETTLE_GIVE_UP_SECONDS", 0.5)
    handler = RecordingHandler()
    async with harness(own_redis.url, prefix, handler, redis_lease_seconds=30) as h:
        events = pings(4, keys=1)
        await h.publish(*events)
        bus = redis_of(h)
        [first] = await bus.claim(10)
        refuse("NOREPLICAS")
        await asyncio.wait_for(h.service.workers._deliver(first), 10)  # gives up after 0.5 s: released
        assert bus._in_flight == {}
        refuse(None)
        await h.drain(timeout=10)
        assert await bus.pending_count() == 0
    n = [data.n for data, _ in handler.calls]
    assert n == [0, 0, 1, 2, 3]  # the released one ran again, still before the later events of its key


async def test_a_dead_owners_partitions_are_served_within_5_s_and_its_late_acks_are_fenced(
    own_redis: OwnRedis, prefix: str
) -> None:
    events = pings(30, keys=6)
    crashed = harness(own_redis.url, prefix, RecordingHandler())  # the default lease (3 s)
    await crashed.service.start(run_workers=False)
    await crashed.publish(*events)
    dead = redis_of(crashed)
    held = await dead.claim(4)
    assert len(held) == 4 and dead._maintenance is not None
    dead._maintenance.cancel()  # as after kill -9: no renewal, no release; its claims stay pending
    died_at = time.monotonic()

    survivor_handler = RecordingHandler()
    async with harness(own_redis.url, prefix, survivor_handler) as survivor:
        alive = redis_of(survivor)
        while len(alive._owned) < alive.partitions:
            assert time.monotonic() - died_at < 5.0, "the dead owner's partitions were not taken over within 5 s"
            await alive.claim(0)
            await asyncio.sleep(0.05)
        taken_over_after = time.monotonic() - died_at
        assert await dead.claim(10) == []  # its lease lapsed: it hands out nothing more, buffered or not
        for delivery in held:
            await dead.complete(delivery)  # late: fenced, the survivor has the entries now
        assert await alive.pending_count() == len(events)
        await survivor.drain(timeout=10)
    await dead._client.aclose()
    print(f"takeover after {taken_over_after:.2f} s")
    assert sorted(survivor_handler.event_ids) == sorted(str(event["id"]) for event in events)
    assert in_key_order(survivor_handler) == {f"k{k}": [n for n in range(30) if n % 6 == k] for k in range(6)}


async def test_the_bus_recovers_by_itself_after_redis_is_killed_and_restarted(tmp_path: Path, prefix: str) -> None:
    server = OwnRedis(tmp_path)
    server.start()
    handler = RecordingHandler()
    try:
        async with harness(server.url, prefix, handler) as h:
            h.service.workers.start()
            accepted = pings(40, keys=5)
            await h.publish(*accepted[:20])
            server.kill()
            with pytest.raises(StoreUnavailable) as refused:
                await h.publish(*accepted[20:])
            assert isinstance(refused.value.__cause__, redis.exceptions.ConnectionError)
            with pytest.raises(StoreUnavailable):
                await h.service.bus.ping()
            await asyncio.sleep(1.0)
            server.start()  # same port, same AOF
            deadline = time.monotonic() + 10
            while True:
                try:
                    await h.service.bus.ping()
                    break
                except StoreUnavailable:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)
            await h.publish(*accepted[20:])
            while await pending_or_unknown(h.service.bus):
                assert time.monotonic() < deadline + 10, "accepted events still pending after Redis came back"
                await asyncio.sleep(0.05)
    finally:
        server.kill()
    assert set(handler.event_ids) == {str(event["id"]) for event in accepted}
    for numbers in in_key_order(handler).values():  # a delivery cut off by the crash may run again, in place
        assert numbers == sorted(numbers)
