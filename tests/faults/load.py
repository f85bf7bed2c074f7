"""The load driver: events with unique ids at a steady rate to a list of URLs, each send's answer recorded."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from .probe import PLACED

HEADERS = {"content-type": "application/cloudevents+json"}


@dataclass(frozen=True)
class Send:
    event_id: str
    started: float
    finished: float
    status: int  # 0: no answer (refused, reset, timed out)
    retry_after: str | None = None
    error_code: str | None = None


def event(event_id: str, n: int, *, keys: int = 50, poison: bool = False, customer: str = "c") -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "/faults",
        "type": PLACED,
        "subject": f"k-{n % keys}",
        "datacontenttype": "application/json",
        "data": {"order_id": f"o-{n}", "customer_id": "poison" if poison else customer, "amount_cents": n,
                 "currency": "EUR"},
    }


def send_one(client: httpx.Client, url: str, body: dict[str, object], timeout: float = 10.0) -> Send:
    started = time.monotonic()
    try:
        response = client.post(f"{url.rstrip('/')}/events", content=json.dumps(body).encode(), headers=HEADERS,
                               timeout=timeout)
    except httpx.HTTPError:
        return Send(str(body["id"]), started, time.monotonic(), 0)
    code = None
    if response.status_code >= 400:
        try:
            code = response.json().get("error")
        except (ValueError, AttributeError):
            code = "<not json>"
    return Send(str(body["id"]), started, time.monotonic(), response.status_code,
                response.headers.get("retry-after"), code)


class LoadDriver:
    """See the package docstring (faults/__init__.py) for the API."""

    def __init__(self, urls: Sequence[str], *, rate: float = 100.0, threads: int = 8, duplicates: float = 0.0,
                 concurrent_duplicates: float = 0.5, keys: int = 50, poison: float = 0.0, run: str | None = None,
                 timeout: float = 10.0, seed: int = 19) -> None:
        self.urls = list(urls)
        self.rate = rate
        self.threads = threads
        self.duplicates = duplicates
        self.concurrent_duplicates = concurrent_duplicates
        self.keys = keys
        self.poison = poison
        self.run = run or uuid.uuid4().hex[:8]
        self.timeout = timeout
        self.sends: list[Send] = []
        self.marks: dict[str, float] = {}
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._next = 0
        self._sent_ids: list[tuple[str, int, bool]] = []
        # slot -> (the slot whose moment it shares, the event): a concurrent duplicate goes out with its first send
        self._twins: dict[int, tuple[int, tuple[str, int, bool]]] = {}
        self._started = 0.0

    def mark(self, name: str) -> float:
        self.marks[name] = time.monotonic()
        return self.marks[name]

    def _take(self) -> tuple[int, int, tuple[str, int, bool]]:
        """The next slot, the moment (a slot number) to send at, and what: a fresh id, or a repeat of one."""
        with self._lock:
            slot = self._next
            self._next += 1
            twin = self._twins.pop(slot, None)
            if twin:
                return slot, twin[0], twin[1]
            if self._sent_ids and self._random.random() < self.duplicates:
                if self._random.random() < self.concurrent_duplicates:
                    # the same id twice at the same moment: a fresh event now, its twin (next slot) at this moment
                    fresh = self._fresh()
                    self._twins[slot + 1] = (slot, fresh)
                    return slot, slot, fresh
                return slot, slot, self._random.choice(self._sent_ids)
            return slot, slot, self._fresh()

    def _fresh(self) -> tuple[str, int, bool]:
        n = len(self._sent_ids)
        item = (f"{self.run}-{n}", n, self._random.random() < self.poison)
        self._sent_ids.append(item)
        return item

    def _loop(self) -> None:
        interval = 1.0 / self.rate
        with httpx.Client() as client:
            while not self._stop.is_set():
                slot, moment, (event_id, n, poison) = self._take()
                due = self._started + moment * interval
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                urls = self.urls
                url = urls[slot % len(urls)]
                result = send_one(client, url, event(event_id, n, keys=self.keys, poison=poison), self.timeout)
                with self._lock:
                    self.sends.append(result)

    def start(self) -> LoadDriver:
        self._stop.clear()
        with self._lock:
            self._started = time.monotonic() - self._next / self.rate
        self._workers = [threading.Thread(target=self._loop, daemon=True) for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        alive = [worker for worker in self._workers if worker.is_alive()]
        assert not alive, f"{len(alive)} load threads still sending after {timeout}s"

    def run_for(self, seconds: float) -> None:
        self.start()
        time.sleep(seconds)
        self.stop()

    def snapshot(self) -> list[Send]:
        with self._lock:
            return list(self.sends)

    def ids_sent(self) -> list[str]:
        with self._lock:
            return [event_id for event_id, _, _ in self._sent_ids]

    def poisoned_ids(self) -> set[str]:
        with self._lock:
            return {event_id for event_id, _, poison in self._sent_ids if poison}
