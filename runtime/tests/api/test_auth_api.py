"""Signing, rate limits and the /metrics token, through the ASGI app: each answered as JSON, counted once, off unless
set."""

import base64
import json
import re
import time

import httpx

from event_runtime.auth import signed_headers
from event_runtime.testing import EventFactory
from event_runtime.testing.bus import service_client

from ..sample_service import ORDER_PLACED, registry

TOKEN, OTHER_TOKEN = "auth-api-token", "auth-api-other-token"
CURRENT = "whsec_" + base64.b64encode(b"the current key of the test sender").decode()
PREVIOUS = "whsec_" + base64.b64encode(b"the previous key of the test sender").decode()
UNKNOWN = "whsec_" + base64.b64encode(b"a key the service does not know of").decode()
STRUCTURED = {"content-type": "application/cloudevents+json"}


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {**STRUCTURED, "authorization": f"Bearer {token}"}


def order_event(events: EventFactory, order_id: str = "o-1") -> bytes:
    data = {"order_id": order_id, "customer_id": "c-1", "amount_cents": 500, "currency": "EUR"}
    return json.dumps(events.event(ORDER_PLACED, data)).encode()


def rejected(metrics_text: str, reason: str) -> float:
    found = re.search(rf'^events_rejected_total\{{reason="{reason}"\}} (\S+)$', metrics_text, re.M)
    assert found, reason
    return float(found[1])


async def test_a_signed_event_is_accepted_with_the_current_or_the_previous_key(event_factory: EventFactory) -> None:
    async with service_client(registry, auth_tokens=TOKEN, signing_keys=f"{CURRENT},{PREVIOUS}") as (client, _):
        for number, key in enumerate((CURRENT, PREVIOUS)):
            body = order_event(event_factory, f"o-{number}")
            response = await client.post(
                "/events", content=body, headers={**bearer(), **signed_headers(key, body, "m")}
            )
            assert response.status_code == 202, response.text


async def test_an_unsigned_or_wrongly_signed_request_is_a_401_before_its_body_is_parsed(
    event_factory: EventFactory,
) -> None:
    async with service_client(registry, auth_tokens=TOKEN, signing_keys=CURRENT) as (client, service):
        body = order_event(event_factory)
        not_json = b'{"specversion": "1.0", '  # would be a 400 malformed_json if it were parsed
        attempts = [
            (body, bearer()),
            (body, {**bearer(), **signed_headers(UNKNOWN, body, "m-1")}),
            (body + b" ", {**bearer(), **signed_headers(CURRENT, body, "m-1")}),
            (not_json, {**bearer(), **signed_headers(UNKNOWN, not_json, "m-1")}),
        ]
        for content, headers in attempts:
            response = await client.post("/events", content=content, headers=headers)
            assert response.status_code == 401
            assert response.json()["error"] == "bad_signature", response.text
        metrics = (await client.get("/metrics")).text
        assert rejected(metrics, "bad_signature") == len(attempts)
        assert rejected(metrics, "malformed") == 0
        assert await service.bus.pending_count() == 0


async def test_a_replayed_signed_request_older_than_the_window_is_a_stale_timestamp(
    event_factory: EventFactory,
) -> None:
    async with service_client(registry, signing_keys=CURRENT, signing_replay_window_seconds=60) as (client, _):
        body = order_event(event_factory)
        old = signed_headers(CURRENT, body, "m-2", int(time.time()) - 600)
        response = await client.post("/events", content=body, headers={**STRUCTURED, **old})
        assert response.status_code == 401
        assert response.json()["error"] == "stale_timestamp"
        assert rejected((await client.get("/metrics")).text, "bad_signature") == 1


async def test_a_binary_mode_event_is_refused_when_signing_is_on(event_factory: EventFactory) -> None:
    async with service_client(registry, signing_keys=CURRENT) as (client, _):
        body = b'{"order_id": "o-1", "customer_id": "c-1", "amount_cents": 1, "currency": "EUR"}'
        headers = {"content-type": "application/json", "ce-specversion": "1.0", "ce-id": "b-1", "ce-source": "/t"}
        headers["ce-type"] = ORDER_PLACED
        response = await client.post("/events", content=body, headers={**headers, **signed_headers(CURRENT, body, "m")})
        assert response.status_code == 401
        assert response.json()["error"] == "unsigned_attributes"


async def test_over_its_rate_a_token_gets_429_with_retry_after_and_another_token_is_not_held_back(
    event_factory: EventFactory,
) -> None:
    settings = {"auth_tokens": f"{TOKEN},{OTHER_TOKEN}", "rate_limit_per_second": 0.01, "rate_limit_burst": 2}
    async with service_client(registry, **settings) as (client, _):
        statuses = [
            (await client.post("/events", content=order_event(event_factory, f"o-{n}"), headers=bearer())).status_code
            for n in range(2)
        ]
        assert statuses == [202, 202]
        refused = await client.post("/events", content=order_event(event_factory, "o-3"), headers=bearer())
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["error"] == "rate_limited"
        assert int(refused.headers["retry-after"]) == refused.json()["retry_after_seconds"] >= 1
        other = await client.post("/events", content=order_event(event_factory, "o-4"), headers=bearer(OTHER_TOKEN))
        assert other.status_code == 202
        wrong = await client.post("/events", content=order_event(event_factory, "o-5"), headers=bearer("nope"))
        assert wrong.status_code == 401  # no valid token, no bucket
        metrics = (await client.get("/metrics")).text
        assert rejected(metrics, "rate_limited") == 1
        assert rejected(metrics, "backlog_full") == 0


async def test_without_a_rate_limit_a_token_is_never_429(event_factory: EventFactory) -> None:
    async with service_client(registry, auth_tokens=TOKEN) as (client, _):
        for n in range(150):  # more than the default burst
            response = await client.post("/events", content=order_event(event_factory, f"o-{n}"), headers=bearer())
            assert response.status_code == 202


async def test_metrics_need_their_own_token_when_one_is_set() -> None:
    async with service_client(registry, auth_tokens=TOKEN, metrics_token="scrape-token") as (client, _):
        for headers in ({}, {"authorization": f"Bearer {TOKEN}"}, {"authorization": "Bearer wrong"}):
            response = await client.get("/metrics", headers=headers)
            assert response.status_code == 401
            assert response.json()["error"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
        repeated = httpx.Headers([("authorization", "Bearer scrape-token"), ("authorization", "Bearer scrape-token")])
        assert (await client.get("/metrics", headers=repeated)).status_code == 401
        scraped = await client.get("/metrics", headers={"authorization": "Bearer scrape-token"})
        assert scraped.status_code == 200 and "events_received_total" in scraped.text
        assert rejected(scraped.text, "unauthorized") == 0  # a refused scrape is not a refused event
        assert (await client.get("/healthz")).status_code == 200  # probes stay open
        assert (await client.get("/readyz")).status_code == 200


async def test_metrics_are_open_without_a_metrics_token() -> None:
    async with service_client(registry, auth_tokens=TOKEN) as (client, _):
        assert (await client.get("/metrics")).status_code == 200
