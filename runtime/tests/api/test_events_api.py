"""POST /events and the probes, one test per answer the API can give."""

import json

import httpx
import pytest

from event_runtime.service import Service
from event_runtime.testing import EventFactory, service_client

from ..sample_service import ORDER_CANCELLED, ORDER_PLACED, registry

Api = tuple[httpx.AsyncClient, Service]
STRUCTURED = {"content-type": "application/cloudevents+json"}
BATCH = {"content-type": "application/cloudevents-batch+json"}


def order(order_id: str = "o-1", **overrides: object) -> dict[str, object]:
    return {"order_id": order_id, "customer_id": "c-1", "amount_cents": 500, "currency": "EUR", **overrides}


async def post(client: httpx.AsyncClient, body: object, headers: dict[str, str] = STRUCTURED) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post("/events", content=content, headers=headers)


async def test_a_structured_event_is_accepted_with_202(api: Api, event_factory: EventFactory) -> None:
    client, _ = api
    response = await post(client, event_factory.event(ORDER_PLACED, order()))
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0}


async def test_a_binary_mode_event_is_accepted(api: Api) -> None:
    client, _ = api
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "b-1",
        "ce-source": "/shop",
        "ce-type": ORDER_PLACED,
        "ce-subject": "o%2D1",
        "content-type": "application/json",
    }
    response = await post(client, order(), headers)
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0}


async def test_a_batch_counts_accepted_and_duplicate_events(api: Api, event_factory: EventFactory) -> None:
    client, service = api
    first = event_factory.event(ORDER_PLACED, order("o-1"))
    batch = [first, event_factory.event(ORDER_CANCELLED, {"order_id": "o-1"}), first]
    response = await post(client, batch, BATCH)
    assert response.json() == {"accepted": 2, "duplicates": 1}
    assert service.metrics.duplicates._value.get() == 1


async def test_waiting_on_a_batch_reports_only_its_new_events(api: Api, event_factory: EventFactory) -> None:
    client, _ = api
    seen_before = event_factory.event(ORDER_PLACED, order("o-2"))
    await post(client, seen_before)
    first, last = event_factory.event(ORDER_PLACED, order("o-1")), event_factory.event(ORDER_PLACED, order("o-3"))
    response = await client.post(
        "/events", content=json.dumps([first, seen_before, last]), headers={**BATCH, "prefer": "wait=5"}
    )
    assert response.status_code == 200
    assert (response.json()["accepted"], response.json()["duplicates"]) == (2, 1)
    reserved = {
        r["id"]: r["result"]["reserved_for"] for r in response.json()["results"] if r["handler"] == "reserve_stock"
    }
    assert reserved == {first["id"]: "o-1", last["id"]: "o-3"}


@pytest.mark.parametrize(
    ("body", "error"), [(b'{"id": "not-a-list"}', "malformed_batch"), (b'[{"id": ', "malformed_json")]
)
async def test_a_batch_that_is_not_a_json_array_is_400(api: Api, body: bytes, error: str) -> None:
    client, service = api
    response = await post(client, body, BATCH)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert await service.bus.pending_count() == 0


async def test_waiting_returns_200_with_each_handlers_result(api: Api, event_factory: EventFactory) -> None:
    client, _ = api
    event = event_factory.event(ORDER_PLACED, order("o-7"))
    response = await client.post("/events", content=json.dumps(event), headers={**STRUCTURED, "prefer": "wait=5"})
    assert response.status_code == 200
    results = {result["handler"]: result for result in response.json()["results"]}
    assert results["reserve_stock"]["result"] == {"reserved_for": "o-7", "attempt": 1}
    assert results["send_order_confirmation"]["status"] == "processed"


async def test_malformed_json_is_400(api: Api) -> None:
    client, _ = api
    response = await post(client, b'{"id": ')
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"


async def test_missing_and_invalid_attributes_are_400_naming_them(api: Api) -> None:
    client, _ = api
    response = await post(client, {"specversion": "0.3", "type": ORDER_PLACED, "source": "", "data": order()})
    assert response.status_code == 400
    assert response.json()["attributes"] == {
        "id": "missing",
        "source": "must be a non-empty string",
        "specversion": "must be '1.0'",
    }


async def test_a_batch_with_one_bad_event_is_rejected_whole_naming_its_index(
    api: Api, event_factory: EventFactory
) -> None:
    client, service = api
    good = event_factory.event(ORDER_PLACED, order())
    response = await post(client, [good, {**good, "id": "x", "time": "yesterday"}], BATCH)
    assert response.status_code == 400
    assert response.json()["index"] == 1
    assert await service.bus.pending_count() == 0


async def test_an_unknown_event_type_is_422(api: Api, event_factory: EventFactory) -> None:
    client, _ = api
    response = await post(client, event_factory.event("com.example.nobody.listens", {}))
    assert response.status_code == 422
    assert response.json()["error"] == "unknown_type"


async def test_data_failing_its_schema_is_422_with_the_field(api: Api, event_factory: EventFactory) -> None:
    client, _ = api
    response = await post(client, event_factory.event(ORDER_PLACED, order(amount_cents="lots")))
    assert response.status_code == 422
    assert response.json()["errors"] == [{"path": "$.amount_cents", "message": "Expected `int`, got `str`"}]


async def test_a_body_over_the_limit_is_413() -> None:
    async with service_client(registry, max_body_bytes=1000) as (client, _):
        response = await post(client, b"x" * 1001)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


async def test_a_batch_over_the_maximum_is_413(event_factory: EventFactory) -> None:
    async with service_client(registry, max_batch_events=2) as (client, _):
        response = await post(client, event_factory.many(3, ORDER_CANCELLED, lambda n: {"order_id": str(n)}), BATCH)
    assert response.status_code == 413
    assert response.json()["error"] == "batch_too_large"


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", ""])
async def test_a_body_in_no_cloudevents_mode_is_415(api: Api, content_type: str) -> None:
    client, _ = api
    response = await post(client, order(), {"content-type": content_type})
    assert response.status_code == 415


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic dGVzdC10b2tlbg=="])
async def test_missing_or_wrong_credentials_are_401(
    api: Api, event_factory: EventFactory, authorization: str | None
) -> None:
    client, service = api
    headers = dict(STRUCTURED)
    if authorization:
        headers["authorization"] = authorization
    del client.headers["authorization"]
    response = await post(client, event_factory.event(ORDER_PLACED, order()), headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert service.metrics.rejected_by_reason["unauthorized"]._value.get() == 1


async def test_while_draining_new_events_get_503_and_readiness_fails(api: Api, event_factory: EventFactory) -> None:
    client, service = api
    assert (await client.get("/readyz")).status_code == 200
    service.begin_drain()
    refused = await post(client, event_factory.event(ORDER_PLACED, order()))
    assert refused.status_code == 503
    assert refused.json()["error"] == "draining"
    assert service.metrics.rejected_by_reason["draining"]._value.get() == 1
    readiness = await client.get("/readyz")
    assert readiness.status_code == 503
    assert readiness.json()["detail"] == "draining"
    assert (await client.get("/healthz")).status_code == 200


async def test_metrics_expose_the_contract_series(api: Api, event_factory: EventFactory) -> None:
    client, _ = api
    await client.post(
        "/events",
        content=json.dumps(event_factory.event(ORDER_PLACED, order())),
        headers={**STRUCTURED, "prefer": "wait=5"},
    )
    text = (await client.get("/metrics")).text
    for line in (
        "events_received_total 1.0",
        "events_accepted_total 1.0",
        'events_processed_total{handler="reserve_stock",type="com.example.order.placed"} 1.0',
        'events_dead_lettered_total{handler="release_stock",type="com.example.order.cancelled"} 0.0',
        "bus_pending_events 0.0",
    ):
        assert line in text
    assert 'handler_duration_seconds_count{handler="reserve_stock"} 1.0' in text


async def test_unknown_routes_and_methods_answer_404_and_405(api: Api) -> None:
    client, _ = api
    assert (await client.get("/nowhere")).status_code == 404
    assert (await client.get("/events")).status_code == 405
