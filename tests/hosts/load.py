"""Bounded HTTP load through the load balancer: threads posting unique CloudEvents, recording every outcome."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

EVENT_TYPE = "com.example.order.placed"


@dataclass
class LoadResult:
    accepted_ids: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())


class EventLoad:
    """Posts order.placed events to host:port from `workers` threads until stopped or `max_seconds` pass.

    Each thread pauses between requests: the point is steady traffic across the switch (~70 requests/s here),
    not saturation, which would starve the deploy itself of CPU on a 2-core machine."""

    def __init__(self, host: str, port: int, token: str, source: str, workers: int = 4, max_seconds: float = 420,
                 pause_seconds: float = 0.05) -> None:
        self.host, self.port, self.token, self.source = host, port, token, source
        self.workers, self.max_seconds, self.pause_seconds = workers, max_seconds, pause_seconds
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> EventLoad:
        deadline = time.monotonic() + self.max_seconds
        self._threads = [threading.Thread(target=self._post_until, args=(deadline,), daemon=True)
                         for _ in range(self.workers)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _post_until(self, deadline: float) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        while not self._stop.is_set() and time.monotonic() < deadline:
            event_id = str(uuid.uuid4())
            order_id = f"order-{event_id[:8]}"
            body = json.dumps({
                "specversion": "1.0", "id": event_id, "source": self.source, "type": EVENT_TYPE,
                "subject": order_id, "datacontenttype": "application/json",
                "data": {"order_id": order_id, "customer_id": "c-1", "amount_cents": 1250, "currency": "EUR"},
            })
            headers = {"Content-Type": "application/cloudevents+json", "Authorization": f"Bearer {self.token}"}
            try:
                connection.request("POST", "/events", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                outcome = str(response.status)
            except (OSError, http.client.HTTPException) as error:
                outcome = type(error).__name__
                connection.close()
                connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
            with self._lock:
                self.result.statuses[outcome] += 1
                if outcome == "202":
                    self.result.accepted_ids.append(event_id)
                else:
                    self.result.failures.append(f"{time.strftime('%H:%M:%S')} {event_id}: {outcome}")
            time.sleep(self.pause_seconds)
        connection.close()
