"""The scale-out bus: Redis Streams shared by any number of service processes.

Events go to one of N partition streams by a hash of their ordering key. Each handler reads every partition
through its own consumer group. A partition is owned by one process at a time (a lease in Redis, renewed while
the process lives): only the owner reads it, so the events of one key reach each handler in order even while
processes come and go. When an owner dies its lease lapses (SERVICE_REDIS_LEASE_SECONDS), another process takes
the partition over and claims (XAUTOCLAIM) what the dead one had read but not finished; the scripts fence the
lapsed owner (redis_scripts.py), so its late acknowledgements do not land. docs/event-bus.md has the whole design.

Store failures: no call is retried inside the client (a re-sent read would take new entries while the lost one's
stay pending unseen); every failure surfaces. A read that may have been lost moves this process's read epoch on and
takes back what its pending list holds that no lane knows (`_resync_reads`), before anything newer is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from ..logs import get_logger
from ..settings import Settings
from . import redis_scripts as scripts
from .base import DeadLetter, Delivery, NewEvent, StoreUnavailable, WorkSignal
from .redis_batching import Batcher
from .redis_lanes import Entry, Lane, RedisDelivery, stream_order

log = get_logger(__name__)

ResultT = TypeVar("ResultT")
AckItem = tuple[int, str, str, int]  # partition, handler, entry id, 1 when it was a delivery owed to the handler
LaneId = tuple[int, str]

READ_BATCH = 256  # entries read per partition and handler at a time; also the most buffered per lane
READ_EVERY_SECONDS = 0.05  # while enough is buffered, read new entries at most this often
TRIM_EVERY_SECONDS = 5.0
PAGE = 1000
# what a failing Redis raises: unreachable or hung (connection errors, socket timeouts) or refusing (error replies
# such as -OOM, -NOREPLICAS, -READONLY, -MISCONF, -LOADING)
STORE_ERRORS = (RedisError, OSError, TimeoutError)
# an acknowledgement, retry or dead letter that has failed this long is given up: the delivery is released and
# delivered again (from this process's pending list, or by the partition's next owner), so no key stays blocked
SETTLE_GIVE_UP_SECONDS = 30.0
READER_TTL_MS = 24 * 3600 * 1000  # a read epoch outlives any pause; if it lapses, the next read resyncs
HEALTH_TTL_MS = 10_000


class RedisBus:
    """EventBus on Redis Streams; see the module docstring for partitions, leases and takeover."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        partitions: int = 16,
        lease_seconds: float = 3.0,
        dedup_retention_seconds: float = 7 * 24 * 3600,
        socket_timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.partitions = partitions
        self._lease_seconds = lease_seconds
        self._lease_ms = max(1, int(lease_seconds * 1000))
        self._tick_seconds = min(1.0, lease_seconds / 3)
        self._retention_ms = max(1, int(dedup_retention_seconds * 1000))
        self._owner = uuid.uuid4().hex
        # socket timeouts bound every call, so a Redis outage turns into errors (and /readyz 503), never a hang;
        # no retries inside the client: see the module docstring
        self._client = redis_asyncio.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=min(2.0, socket_timeout),
            retry=Retry(NoBackoff(), 0),
        )
        self._append_script = self._client.register_script(scripts.APPEND)
        self._ack_script = self._client.register_script(scripts.ACK)
        self._dead_letter_script = self._client.register_script(scripts.DEAD_LETTER)
        self._retry_script = self._client.register_script(scripts.RETRY)
        self._read_script = self._client.register_script(scripts.READ)
        self._fence_reads_script = self._client.register_script(scripts.FENCE_READS)
        self._replay_script = self._client.register_script(scripts.REPLAY)
        self._renew_script = self._client.register_script(scripts.RENEW)
        self._release_script = self._client.register_script(scripts.RELEASE)
        self._appends: Batcher[NewEvent, int] = Batcher(self._flush_appends, max_items=500)
        self._acks: Batcher[AckItem, int] = Batcher(self._flush_acks, max_items=2000)
        self._handlers: set[str] = set()
        self._owned: set[int] = set()
        self._releasing: set[int] = set()
        # per owned partition, until when (monotonic) its lease is surely still ours: counted from before the call
        # that set or renewed it; past that nothing of it is handed out, whatever Redis says later
        self._valid_until: dict[int, float] = {}
        self._read_epoch = 0
        self._resync = True  # the first claim sets the read epoch
        self._failing_since: dict[tuple[int, str, str], float] = {}
        self._lanes: dict[LaneId, Lane] = {}
        self._in_flight: dict[tuple[int, str, str], Entry] = {}
        self._consuming = False
        self._closing = False
        self._maintenance: asyncio.Task[None] | None = None
        self._last_trim = 0.0
        self._last_read = 0.0
        self._rotation = 0
        self._work = WorkSignal()

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisBus:
        return cls(
            settings.bus_url,
            prefix=settings.redis_key_prefix,
            partitions=settings.redis_partitions,
            lease_seconds=settings.redis_lease_seconds,
            dedup_retention_seconds=settings.dedup_retention_seconds,
            socket_timeout=settings.redis_socket_timeout_seconds,
        )

    def _key(self, *parts: object) -> str:
        return ":".join((self.prefix, *(str(part) for part in parts)))

    # lifecycle

    async def open(self) -> None:
        await self.ping()
        await self._check_partition_count()

    async def close(self) -> None:
        """Stop owning partitions (their unfinished entries go to the next owner) and disconnect."""
        self._closing = True
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        try:
            if self._consuming:
                if self._owned:
                    await self._release_script(keys=[self._key("lease", p) for p in self._owned], args=[self._owner])
                await self._client.zrem(self._key("consumers"), self._owner)
                await self._client.delete(self._key("reader", self._owner))
        except Exception:  # noqa: BLE001 - closing must not fail; unreleased leases lapse on their own
            log.warning("redis_release_failed", detail="leases lapse on their own after SERVICE_LEASE_SECONDS")
        finally:
            self._owned.clear()
            self._lanes.clear()
            await self._client.aclose()

    async def _check_partition_count(self) -> None:
        key = self._key("partitions")
        await self._client.set(key, self.partitions, nx=True)
        stored = int(await self._client.get(key) or self.partitions)
        if stored == self.partitions:
            return
        open_deliveries = await self.pending_count()
        if open_deliveries:
            raise RuntimeError(
                f"SERVICE_REDIS_PARTITIONS={self.partitions} but the bus under prefix {self.prefix!r} has "
                f"{stored} partitions and {open_deliveries} open deliveries: stop ingress, let the workers finish, "
                "then start with the new count (docs/event-bus.md)"
            )
        await self._client.set(key, self.partitions)
        log.warning("redis_partitions_changed", before=stored, after=self.partitions)

    # ingress

    async def append(self, events: Sequence[NewEvent]) -> list[int | None]:
        if not events:
            return []
        try:
            positions = await self._appends.submit(list(events))
        except STORE_ERRORS as error:  # nothing of this request counts as stored: the client retries (dedup)
            raise StoreUnavailable(f"Redis did not take the events: {_describe(error)}") from error
        if any(positions):
            self._handlers.update(handler for new in events for handler in new.handlers)
            self._work.wake()
        return [position or None for position in positions]

    def partition_of(self, new: NewEvent) -> int:
        """A stable hash (not Python's salted hash()): every process must agree on a key's partition."""
        key = new.event.ordering_key
        basis = key if key is not None else f"{new.event.source}\n{new.event.id}"
        return zlib.crc32(basis.encode()) % self.partitions

    async def _flush_appends(self, events: list[NewEvent]) -> list[int]:
        arguments: list[Any] = [self.prefix, self.partitions, self._retention_ms, len(events)]
        for new in events:
            event = new.event
            key = event.ordering_key
            arguments += [
                f"{len(event.source)}:{event.source}{event.id}",
                self.partition_of(new),
                "" if key is None else "=" + key,
                scripts.SEPARATOR.join(new.handlers),
                new.body,
            ]
        positions = await self._append_script(args=arguments)
        return [int(position) for position in positions]

    # consuming

    async def claim(self, limit: int) -> list[Delivery]:
        if not self._consuming:
            await self._start_consuming()
        if self._resync:
            await self._resync_reads()
        await self._adopt_missing_lanes()
        try:
            await self._read_new()
        except STORE_ERRORS:
            self._resync = True  # the read may have run without its reply reaching us: look before reading on
            raise
        now, valid_from = time.time(), time.monotonic()
        lanes = [
            lane
            for (partition, _), lane in self._lanes.items()
            if partition not in self._releasing and self._valid_until.get(partition, 0.0) > valid_from
        ]
        self._rotation = (self._rotation + 1) % max(len(lanes), 1)
        deliveries: list[Delivery] = []
        for lane in lanes[self._rotation :] + lanes[: self._rotation]:  # no lane starves the others
            for entry in lane.take_due(now, limit - len(deliveries)):
                self._in_flight[(lane.partition, lane.handler, entry.entry_id)] = entry
                deliveries.append(
                    RedisDelivery(
                        position=entry.seq,
                        handler=lane.handler,
                        attempts=entry.attempts,
                        body=entry.body,
                        partition=lane.partition,
                        entry_id=entry.entry_id,
                    )
                )
            if len(deliveries) >= limit:
                break
        return deliveries

    async def complete(self, delivery: Delivery) -> None:
        located = _located(delivery)
        item = (located.partition, located.handler, located.entry_id, 1)
        outcome = await self._settled(located, "ack", lambda: self._acks.submit([item]))
        if outcome is None:
            self._requeue(located, delivery.attempts, time.time())
            return
        if outcome == [-1]:
            self._fenced(located, "ack")
        self._forget(located)
        self._work.wake()  # the next event of this delivery's ordering key may be due now

    async def retry(self, delivery: Delivery, error: str, delay_seconds: float) -> None:
        located = _located(delivery)
        attempts, due_at = delivery.attempts + 1, time.time() + delay_seconds
        state = f"{attempts}|{due_at}"
        arguments: list[Any] = [self.prefix, self._owner, located.partition, located.handler, located.entry_id, state]
        # kept in Redis so that a process taking the partition over continues the count and the backoff
        outcome = await self._settled(located, "retry", lambda: self._retry_script(args=arguments))
        if outcome is not None and int(outcome) == -1:  # the partition's new owner has it
            self._fenced(located, "retry")
            self._forget(located)
            return
        self._requeue(located, attempts, due_at)

    async def dead_letter(self, delivery: Delivery, error: str) -> None:
        located = _located(delivery)
        event = delivery.event
        fields: list[Any] = [
            "seq", delivery.position, "handler", delivery.handler, "partition", located.partition,
            "key", "" if event.ordering_key is None else "=" + event.ordering_key, "id", event.id,
            "source", event.source, "type", event.type, "attempts", delivery.attempts + 1, "error", error,
            "failed_at", repr(time.time()), "body", delivery.body,
        ]  # fmt: skip
        arguments = [self.prefix, self._owner, located.partition, located.handler, located.entry_id, *fields]
        outcome = await self._settled(located, "dead_letter", lambda: self._dead_letter_script(args=arguments))
        if outcome is None:
            self._requeue(located, delivery.attempts, time.time())
            return
        if int(outcome) == -1:
            self._fenced(located, "dead_letter")
        self._forget(located)
        self._work.wake()

    async def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        rows = _rows(await self._client.xrange(self._key("dead"), count=limit))
        letters = [_dead_letter_from(fields) for _, fields in rows]
        return sorted(letters, key=lambda letter: letter.position)

    async def replay(self, event_ids: Sequence[str] | None) -> int:
        wanted = None if event_ids is None else set(event_ids)
        chosen: list[str] = []
        start = "-"
        while True:
            rows = _rows(await self._client.xrange(self._key("dead"), min=start, count=PAGE))
            chosen += [entry_id for entry_id, fields in rows if wanted is None or fields[b"id"].decode() in wanted]
            if len(rows) < PAGE:
                break
            start = "(" + rows[-1][0]
        replayed = 0
        for at in range(0, len(chosen), PAGE):
            replayed += int(await self._replay_script(args=[self.prefix, *chosen[at : at + PAGE]]))
        if replayed:
            self._work.wake()
        return replayed

    async def pending_count(self) -> int:
        return max(0, int(await self._client.get(self._key("owed")) or 0))

    async def ping(self) -> None:
        """A write, not PING: Redis answers PING while it refuses every write (-NOREPLICAS, -OOM, -READONLY)."""
        try:
            await self._client.set(self._key("health"), self._owner, px=HEALTH_TTL_MS)
        except STORE_ERRORS as error:
            raise StoreUnavailable(f"Redis does not take a write: {_describe(error)}") from error

    async def wait_for_work(self, timeout: float) -> None:
        await self._work.wait(timeout)

    # reading the owned partitions

    async def _adopt_missing_lanes(self) -> None:
        """Open a lane per (owned partition, handler), starting with what earlier owners left pending."""
        missing = [
            (partition, handler)
            for partition in sorted(self._owned - self._releasing)
            for handler in sorted(self._handlers)
            if (partition, handler) not in self._lanes
        ]
        for partition, handler in missing:
            lane = Lane(partition, handler)
            for key, entry in self._in_flight.items():  # still running here: keep blocking its key
                if key[:2] == (partition, handler):
                    lane.add(entry)
            await self._claim_pending(lane)
            if partition in self._owned and partition not in self._releasing:  # still ours after the awaits
                self._lanes[(partition, handler)] = lane

    async def _claim_pending(self, lane: Lane) -> None:
        stream = self._key("stream", lane.partition)
        retries = self._key("retries", lane.handler)
        start = "0-0"
        while True:
            try:
                reply = await self._client.xautoclaim(stream, lane.handler, self._owner, 0, start, count=PAGE)
            except ResponseError as error:
                if "NOGROUP" not in str(error):
                    raise
                await self._create_group(lane.partition, lane.handler)
                return
            start, claimed, deleted = reply[0], reply[1], reply[2] if len(reply) > 2 else []
            if deleted:
                await self._acks.submit([(lane.partition, lane.handler, _text(entry_id), 1) for entry_id in deleted])
            fields_of = [f"{lane.partition}/{_text(entry_id)}" for entry_id, _ in claimed]
            states = await self._client.hmget(retries, fields_of) if fields_of else []
            for (entry_id, fields), state in zip(claimed, states, strict=True):
                entry = self._entry_from(_text(entry_id), fields, lane.handler)
                if entry is None:  # not owed to this handler: acknowledge it and move on
                    await self._acks.submit([(lane.partition, lane.handler, _text(entry_id), 0)])
                    continue
                if (lane.partition, lane.handler, entry.entry_id) in self._in_flight:
                    continue
                if state is not None:
                    attempts, _, due_at = _text(state).partition("|")
                    entry.attempts, entry.due_at = int(attempts), float(due_at)
                lane.add(entry)
            if _text(start) == "0-0":
                return

    async def _read_new(self) -> None:
        # under load the worker claims after every finished delivery: read only when the lanes run low or the
        # last read is a poll interval old, not once per delivery
        buffered = sum(lane.waiting for lane in self._lanes.values())
        now = time.monotonic()
        if buffered >= READ_BATCH and now - self._last_read < READ_EVERY_SECONDS:
            return
        self._last_read = now
        wanted: dict[str, list[int]] = {}
        for (partition, handler), lane in self._lanes.items():
            if partition not in self._releasing and lane.waiting < READ_BATCH:
                wanted.setdefault(handler, []).append(partition)
        if not wanted:
            return
        lanes = [(handler, partition) for handler, partitions in wanted.items() for partition in partitions]
        arguments: list[Any] = [self.prefix, self._owner, self._read_epoch, READ_BATCH]
        for handler, partition in lanes:
            arguments += [handler, partition]
        reply = await self._read_script(args=arguments)
        if int(reply[0]) == -1:  # the epoch moved on (or lapsed): resync before reading again
            self._resync = True
            return
        skips: list[AckItem] = []
        for at, (handler, partition) in enumerate(lanes):
            status, rows = int(reply[1 + 2 * at]), reply[2 + 2 * at]
            if status == -2:
                await self._create_group(partition, handler)
                continue
            target = self._lanes.get((partition, handler))
            for raw_id, flat in rows:
                entry_id = _text(raw_id)
                entry = self._entry_from(entry_id, dict(zip(flat[::2], flat[1::2], strict=True)), handler)
                if entry is None or target is None:
                    skips.append((partition, handler, entry_id, 0 if entry is None else 1))
                    continue
                target.add(entry)
        if skips:
            # entries of other types are acknowledged at once; an entry read into a dropped lane is left
            # pending for whoever owns the partition now
            await self._acks.submit([skip for skip in skips if skip[3] == 0])

    def _entry_from(self, entry_id: str, fields: dict[bytes, bytes] | None, handler: str) -> Entry | None:
        """The entry if it is owed to `handler`; None for an entry of another handler (or a deleted one)."""
        if not fields or handler not in fields[b"handlers"].decode().split(scripts.SEPARATOR):
            return None
        key = fields[b"key"].decode()
        return Entry(entry_id, int(fields[b"seq"]), key[1:] if key.startswith("=") else None, fields[b"body"])

    async def _create_group(self, partition: int, handler: str) -> None:
        # the group was removed by hand or the stream was deleted: start from the beginning, nothing is skipped
        with contextlib.suppress(ResponseError):
            await self._client.xgroup_create(self._key("stream", partition), handler, id="0", mkstream=True)
        await self._client.sadd(self._key("handlers"), handler)

    async def _flush_acks(self, items: list[AckItem]) -> list[int]:
        arguments: list[Any] = [self.prefix, self._owner]
        for item in items:
            arguments += item
        return [int(result) for result in await self._ack_script(args=arguments)]

    def _requeue(self, located: RedisDelivery, attempts: int, due_at: float) -> None:
        """Back into its lane, in its place (its key stays held): handed out again from `due_at` on."""
        self._in_flight.pop((located.partition, located.handler, located.entry_id), None)
        lane = self._lanes.get((located.partition, located.handler))
        if lane is not None:
            lane.reschedule(located.entry_id, attempts, due_at)
        self._work.wake()

    def _forget(self, located: RedisDelivery) -> None:
        self._in_flight.pop((located.partition, located.handler, located.entry_id), None)
        lane = self._lanes.get((located.partition, located.handler))
        if lane is not None:
            lane.finish(located.entry_id)

    async def _settled(
        self, located: RedisDelivery, operation: str, write: Callable[[], Awaitable[ResultT]]
    ) -> ResultT | None:
        """One try of a write that settles a delivery (an ack, a retry, a dead letter). A failure raises
        StoreUnavailable and the worker tries again (worker.py: every error kind, with a backoff), until the write
        lands or it has failed for SETTLE_GIVE_UP_SECONDS: then the delivery is released (None) and the caller puts
        it back in its lane, so it is delivered again rather than staying "running" forever with its key held (a
        lane dropped meanwhile leaves it to the partition's next owner, which finds it pending)."""
        key = (located.partition, located.handler, located.entry_id)
        try:
            result = await write()
        except STORE_ERRORS as error:
            failing_since = self._failing_since.setdefault(key, time.monotonic())
            if time.monotonic() - failing_since < SETTLE_GIVE_UP_SECONDS:
                raise StoreUnavailable(f"Redis did not take the {operation}: {_describe(error)}") from error
            log.error(
                "redis_delivery_released",
                operation=operation,
                handler=located.handler,
                position=located.position,
                failing_seconds=SETTLE_GIVE_UP_SECONDS,
                error=_describe(error),
            )
            self._failing_since.pop(key, None)
            return None
        self._failing_since.pop(key, None)
        return result

    def _fenced(self, located: RedisDelivery, operation: str) -> None:
        """Another process holds the partition now: it has the entry (XAUTOCLAIM) and delivers it again."""
        log.warning("redis_settle_fenced", operation=operation, partition=located.partition, handler=located.handler)
        self._valid_until.pop(located.partition, None)  # hand out nothing more of it; the next tick drops it

    async def _resync_reads(self) -> None:
        """Move the read epoch on, then take into the lanes every entry this process has pending that no lane
        knows: what a read took whose reply was lost (Redis killed after it wrote the read to its AOF, or hung past
        the socket timeout and running the queued read on resume). Any read sent before the epoch moved either ran
        before it (its entries are found here) or finds the epoch changed and takes nothing. The lanes keep stream
        order, so nothing found here runs behind a later event of its key."""
        epoch = self._read_epoch + 1
        await self._fence_reads_script(keys=[self._key("reader", self._owner)], args=[epoch, READER_TTL_MS])
        self._read_epoch = epoch
        for lane_id, lane in list(self._lanes.items()):
            if self._lanes.get(lane_id) is lane:
                await self._claim_pending(lane)
        self._resync = False
        log.info("redis_reads_resynced", epoch=epoch)

    # partitions: leases, rebalancing, trimming

    async def _start_consuming(self) -> None:
        # the loop first: if this first tick fails (Redis away), the loop keeps trying
        self._consuming = True
        self._maintenance = asyncio.create_task(self._maintain(), name="redis-bus-maintenance")
        await self._tick()

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self._tick_seconds)
            try:
                await self._tick()
            except Exception as error:  # noqa: BLE001 - Redis may come back: keep ticking, /readyz reports it
                log.warning("redis_maintenance_failed", error=f"{type(error).__name__}: {error}")

    async def _tick(self) -> None:
        """Heartbeat, renew leases, hand surplus partitions back, take free ones up to a fair share, trim."""
        await self._renew()  # first: under OOM the heartbeat below is refused, the lease upkeep is not
        now_ms = int(time.time() * 1000)
        consumers = self._key("consumers")
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zadd(consumers, {self._owner: now_ms})
            pipe.zremrangebyscore(consumers, "-inf", now_ms - self._lease_ms)
            pipe.zcard(consumers)
            pipe.smembers(self._key("handlers"))
            _, _, live, handlers = await pipe.execute()
        self._handlers.update(_text(name) for name in handlers)
        await self._finish_releases()
        share = math.ceil(self.partitions / max(int(live), 1))
        active = sorted(self._owned - self._releasing)
        if len(active) > share:
            self._releasing.update(active[share:])
            log.info("redis_partitions_released", partitions=active[share:], share=share)
            await self._finish_releases()
        elif len(active) < share:
            await self._acquire(share - len(active))
        if time.monotonic() - self._last_trim > TRIM_EVERY_SECONDS:
            self._last_trim = time.monotonic()
            await self._trim()

    async def _renew(self) -> None:
        if not self._owned:
            return
        owned = sorted(self._owned)
        sent_at = time.monotonic()
        kept = await self._renew_script(keys=[self._key("lease", p) for p in owned], args=[self._owner, self._lease_ms])
        for partition, still in zip(owned, kept, strict=True):
            if int(still):
                self._valid_until[partition] = sent_at + self._lease_seconds
        lost = [partition for partition, still in zip(owned, kept, strict=True) if not int(still)]
        if lost:
            log.warning("redis_partitions_lost", partitions=lost)
            for partition in lost:
                self._drop(partition)

    async def _finish_releases(self) -> None:
        busy = {partition for partition, _, _ in self._in_flight}
        done = [partition for partition in self._releasing if partition not in busy]
        if done:
            await self._release_script(keys=[self._key("lease", p) for p in done], args=[self._owner])
            for partition in done:
                self._drop(partition)

    async def _acquire(self, wanted: int) -> None:
        # start at a different place in each process so that newcomers do not all race for partition 0
        offset = zlib.crc32(self._owner.encode()) % self.partitions
        candidates = [(offset + step) % self.partitions for step in range(self.partitions)]
        candidates = [partition for partition in candidates if partition not in self._owned]
        taken: list[int] = []
        for partition in candidates:
            if len(taken) >= wanted:
                break
            sent_at = time.monotonic()
            if await self._client.set(self._key("lease", partition), self._owner, nx=True, px=self._lease_ms):
                taken.append(partition)
                self._valid_until[partition] = sent_at + self._lease_seconds
        if taken:
            self._owned.update(taken)
            log.info("redis_partitions_taken", partitions=taken)
            self._work.wake()

    def _drop(self, partition: int) -> None:
        self._owned.discard(partition)
        self._releasing.discard(partition)
        self._valid_until.pop(partition, None)
        for lane_id in [lane_id for lane_id in self._lanes if lane_id[0] == partition]:
            del self._lanes[lane_id]

    async def _trim(self) -> None:
        """Cut each owned stream below the oldest entry some group still needs: nothing unacked is trimmed."""
        for partition in sorted(self._owned - self._releasing):
            stream = self._key("stream", partition)
            try:
                groups = await self._client.xinfo_groups(stream)
            except ResponseError:
                continue  # no stream yet
            floors: list[str] = []
            for group in groups:
                floor = _text(group["last-delivered-id"])
                if int(group["pending"]):
                    summary = await self._client.xpending(stream, group["name"])
                    floor = _text(summary["min"])
                floors.append(floor)
            if floors:
                oldest_needed = min(floors, key=stream_order)
                if oldest_needed != "0-0":
                    await self._client.xtrim(stream, minid=oldest_needed, approximate=True)


def _located(delivery: Delivery) -> RedisDelivery:
    if not isinstance(delivery, RedisDelivery):
        raise TypeError("the Redis bus only takes back deliveries it handed out")
    return delivery


def _dead_letter_from(fields: dict[bytes, bytes]) -> DeadLetter:
    return DeadLetter(
        position=int(fields[b"seq"]),
        event_id=fields[b"id"].decode(),
        source=fields[b"source"].decode(),
        event_type=fields[b"type"].decode(),
        handler=fields[b"handler"].decode(),
        attempts=int(fields[b"attempts"]),
        last_error=fields[b"error"].decode(),
        failed_at=float(fields[b"failed_at"]),
    )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _rows(reply: Any) -> list[tuple[str, dict[bytes, bytes]]]:
    """XRANGE/XREADGROUP rows as (entry id, fields); redis-py types them loosely."""
    return [(_text(entry_id), fields) for entry_id, fields in reply or []]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
