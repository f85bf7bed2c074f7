"""Locust users that post CloudEvents: one event per request, or a batch per request."""

from __future__ import annotations

import json
import os
import random
from collections import deque
from typing import Any

from locust import FastHttpUser, task
from locust.user.wait_time import constant_throughput

from . import run_state

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
# 202: stored durably; 200: stored and handled within the `Prefer: wait` time
ACCEPTED_STATUSES = (200, 202)
# How many recently accepted events a user remembers to pick duplicates from.
DUPLICATE_MEMORY = 1000


class CloudEventsUser(FastHttpUser):
    """Common part: event generation from the mix, duplicates, auth and counting into the ledger."""

    abstract = True

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.mix = run_state.event_mix(options)
        self.events_path = options.events_path
        self.duplicate_ratio = options.duplicate_ratio
        self.recently_accepted: deque[dict[str, Any]] = deque(maxlen=DUPLICATE_MEMORY)
        self.headers = {}
        if options.prefer_wait > 0:
            # the service then answers 200 with the handlers' results once they finished, or 202 when they did not
            self.headers["Prefer"] = f"wait={options.prefer_wait:g}"
        token = os.environ.get("LOADTEST_AUTH_TOKEN")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._throughput = constant_throughput(options.user_throughput) if options.user_throughput > 0 else None

    def wait_time(self) -> float:
        return self._throughput(self) if self._throughput else 0.0

    def next_event(self) -> tuple[dict[str, Any], bool]:
        """A new event, or (by the duplicate ratio) one already accepted; and whether it is such a duplicate."""
        # load generation, not security: the standard generator is the right one (S311)
        if self.recently_accepted and self.duplicate_ratio and random.random() < self.duplicate_ratio:  # noqa: S311
            return random.choice(self.recently_accepted), True  # noqa: S311
        return self.mix.next_event(), False

    def post_events(self, events: list[tuple[dict[str, Any], bool]], content_type: str, body: Any, name: str) -> None:
        ledger = run_state.ledger
        for event, _ in events:
            ledger.count(event["type"], "sent")
        headers = {**self.headers, "Content-Type": content_type}
        with self.client.post(
            self.events_path, data=json.dumps(body), headers=headers, name=name, catch_response=True
        ) as response:
            if response.status_code not in ACCEPTED_STATUSES:
                for event, _ in events:
                    ledger.count(event["type"], "rejected")
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            for event, duplicate in events:
                ledger.count(event["type"], "duplicates_sent" if duplicate else "accepted")
                if not duplicate:
                    self.recently_accepted.append(event)
            try:
                reply = response.json()
                ledger.count_reply(int(reply.get("accepted", 0)), int(reply.get("duplicates", 0)))
            except (ValueError, TypeError, AttributeError):
                response.failure(f"{response.status_code} without the JSON body {{accepted, duplicates}}")


class SingleEventUser(CloudEventsUser):
    """One structured-mode CloudEvent per request."""

    @task
    def post_one_event(self) -> None:
        event, duplicate = self.next_event()
        self.post_events([(event, duplicate)], STRUCTURED, event, name="POST /events (single)")


class BatchEventUser(CloudEventsUser):
    """`--batch-size` events per request, in batched content mode."""

    @task
    def post_batch(self) -> None:
        events = [self.next_event() for _ in range(self.environment.parsed_options.batch_size)]
        self.post_events(events, BATCH, [event for event, _ in events], name="POST /events (batch)")
