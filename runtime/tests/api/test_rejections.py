"""Refused requests: each reason is counted once in events_rejected_total, under its own label, when it is answered."""

import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from event_runtime.cloudevents import RejectionReason
from event_runtime.ingress import IngressApp
from event_runtime.service import Service
from event_runtime.settings import Settings
from event_runtime.testing import EventFactory
from event_runtime.testing.bus import TEST_SETTINGS

from ..sample_service import ORDER_PLACED, registry

TOKEN = "rejections-token"
STRUCTURED = {"content-type": "application/cloudevents+json"}
AUTHORIZED = {**STRUCTURED, "authorization": f"Bearer {TOKEN}"}
MAX_BODY_BYTES = 2000
Api = tuple[httpx.AsyncClient, Service]
Refuse = Callable[[httpx.AsyncClient, Service, EventFactory], Awaitable[httpx.Response]]


def order(**overrides: object) -> dict[str, object]:
    return {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 500, "currency": "EUR", **overrides}


@pytest.fixture
async def api_without_workers() -> AsyncIterator[Api]:
    """A service whose workers do not run: what it accepts stays pending, so the bound can be reached at will."""
    settings = Settings(**{**TEST_SETTINGS, "auth_tokens": TOKEN, "max_body_bytes": MAX_BODY_BYTES, "max_pending": 1})
    service = Service(registry, settings)
    await service.start(run_workers=False)
    transport = httpx.ASGITransport(app=IngressApp(service, run_workers=False))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
            yield client, service
    finally:
        await service.stop()


async def post(client: httpx.AsyncClient, body: object, headers: dict[str, str] = AUTHORIZED) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post("/events", content=content, headers=headers)


async def malformed(client: httpx.AsyncClient, service: Service, events: EventFactory) -> httpx.Response:
    return await post(client, b'{"id": ')


async def invalid_attributes(client: httpx.AsyncClient, service: Service, events: EventFactory) -> httpx.Response:
    return await post(client, {"specversion": "1.0", "type": ORDER_PLACED})


async def unauthorized(client: httpx.AsyncClient, service: Service, events: EventFactory) -> httpx.Response:
    return await post(client, events.event(ORDER_PLACED, order()), STRUCTURED)


async def too_large(client: httpx.AsyncClient, service: Service, events: EventFactory) -> httpx.Response:
    return await post(client, b"x" * (MAX_BODY_BYTES + 1))


async def unsupported_media_type(client: httpx.AsyncClient, service: Service, events: EventFactory) -> httpx.Response:
    return await post(client, order(), {**AUTHORIZED, "content-type": "text/plain"})


async def unknown_type(client: httpx.AsyncClient, service: Service, events: EventFactory) -> httpx.Response:
    return await post(client, events.event("com.example.nobody.listens", {}))


async def invalid_data(client: httpx.AsyncClient, service: Service, events: EventFactory) -> httpx.Response:
    return await post(client, events.event(ORDER_PLACED, order(amount_cents="lots")))


async def draining(client: httpx.AsyncClient, service: Service, events: EventFactory) -> httpx.Response:
    service.begin_drain()
    return await post(client, events.event(ORDER_PLACED, order()))


@asynccontextmanager
async def client_with(service: Service, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    """A client of another app over the same service (its store and metrics), built with these settings on top."""
    original = service.settings
    service.settings = original.model_copy(update=settings)
    try:
        app = IngressApp(service, run_workers=False)
    finally:
        service.settings = original
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service.test") as client:
        yield client


async def bad_signature(client: httpx.AsyncClient, service: Service, events: EventFactory) -> httpx.Response:
    key = "whsec_" + "a2V5LW9mLXRoZS1yZWplY3Rpb25zLXRlc3Qtc2VuZGVy"
    async with client_with(service, signing_keys=key) as signing:
        stamp = str(int(time.time()))
        signature = {"webhook-id": "m-1", "webhook-timestamp": stamp, "webhook-signature": "v1,bm90IGl0"}
        return await post(signing, events.event(ORDER_PLACED, order()), {**AUTHORIZED, **signature})


async def rate_limited(client: httpx.AsyncClient, service: Service, events: EventFactory) -> httpx.Response:
    async with client_with(service, rate_limit_per_second=0.001, rate_limit_burst=1) as limited:
        assert (await post(limited, events.event(ORDER_PLACED, order()))).status_code == 202
        return await post(limited, events.event(ORDER_PLACED, order(order_id="o-2")))


async def backlog_full(client: httpx.AsyncClient, service: Service, events: EventFactory) -> httpx.Response:
    assert (await post(client, events.event(ORDER_PLACED, order()))).status_code == 202  # two deliveries, over 1
    await service.backlog.refresh()
    return await post(client, events.event(ORDER_PLACED, order(order_id="o-2")))


REFUSALS: dict[RejectionReason, Refuse] = {
    RejectionReason.MALFORMED: malformed,
    RejectionReason.INVALID_ATTRIBUTES: invalid_attributes,
    RejectionReason.UNAUTHORIZED: unauthorized,
    RejectionReason.BAD_SIGNATURE: bad_signature,
    RejectionReason.RATE_LIMITED: rate_limited,
    RejectionReason.TOO_LARGE: too_large,
    RejectionReason.UNSUPPORTED_MEDIA_TYPE: unsupported_media_type,
    RejectionReason.UNKNOWN_TYPE: unknown_type,
    RejectionReason.INVALID_DATA: invalid_data,
    RejectionReason.DRAINING: draining,
    RejectionReason.BACKLOG_FULL: backlog_full,
}


def rejected_counts(metrics_text: str) -> dict[str, float]:
    return {
        match["reason"]: float(match["count"])
        for match in re.finditer(
            r'^events_rejected_total\{reason="(?P<reason>[^"]+)"\} (?P<count>\S+)$', metrics_text, re.M
        )
    }


def test_every_rejection_reason_has_a_request_that_is_refused_for_it() -> None:
    assert set(REFUSALS) == set(RejectionReason)


@pytest.mark.parametrize("reason", list(RejectionReason), ids=lambda reason: reason.label)
async def test_each_rejection_is_counted_once_under_its_own_reason(
    api_without_workers: Api, event_factory: EventFactory, reason: RejectionReason
) -> None:
    client, service = api_without_workers

    response = await REFUSALS[reason](client, service, event_factory)

    assert response.status_code == reason.status
    counts = rejected_counts((await client.get("/metrics")).text)
    assert counts == {other.label: 1.0 if other is reason else 0.0 for other in RejectionReason}


@pytest.mark.parametrize("refuse", [draining, backlog_full], ids=["draining", "backlog_full"])
async def test_a_request_without_credentials_is_401_even_when_the_service_would_refuse_it_anyway(
    api_without_workers: Api, event_factory: EventFactory, refuse: Refuse
) -> None:
    client, service = api_without_workers
    await refuse(client, service, event_factory)

    response = await post(client, event_factory.event(ORDER_PLACED, order(order_id="o-3")), STRUCTURED)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
