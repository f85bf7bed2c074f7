"""GET /asyncapi.json and /openapi.json through the ASGI app: the generated documents, behind the senders' tokens
when set (a refusal not counted as a rejected event), GET only; and real error answers carry the codes the OpenAPI
document lists for their status."""

from __future__ import annotations

import json
from typing import Any

from event_runtime.api_docs import asyncapi_document, openapi_document
from event_runtime.testing import EventFactory
from event_runtime.testing.bus import service_client

from ..sample_service import ORDER_PLACED, registry

TOKEN = "documents-token"
STRUCTURED = {"content-type": "application/cloudevents+json"}


async def test_the_served_documents_are_the_generated_ones() -> None:
    async with service_client(registry) as (client, service):
        for path, build in (("/asyncapi.json", asyncapi_document), ("/openapi.json", openapi_document)):
            answer = await client.get(path)
            assert (answer.status_code, answer.headers["content-type"]) == (200, "application/json"), path
            assert answer.json() == json.loads(json.dumps(build(registry, service.settings, service.version)))
            again = await client.get(path)
            assert again.content == answer.content  # built once, served as bytes


async def test_with_tokens_set_the_documents_ask_for_a_senders_token() -> None:
    async with service_client(registry, auth_tokens=TOKEN, metrics_token="metrics-only") as (client, _):
        for path in ("/asyncapi.json", "/openapi.json"):
            for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Bearer metrics-only"}):
                refused = await client.get(path, headers=headers)
                assert refused.status_code == 401, (path, headers)
                assert refused.json()["error"] == "unauthorized"
                assert refused.headers["www-authenticate"] == "Bearer"
            repeated = await client.get(path, headers=[("authorization", f"Bearer {TOKEN}")] * 2)
            assert repeated.status_code == 401
            assert (await client.get(path, headers={"authorization": f"Bearer {TOKEN}"})).status_code == 200
        metrics = (await client.get("/metrics", headers={"authorization": "Bearer metrics-only"})).text
        assert 'events_rejected_total{reason="unauthorized"} 0.0' in metrics


async def test_the_documents_take_get_only() -> None:
    async with service_client(registry) as (client, _):
        for method in ("POST", "PUT", "DELETE"):
            answer = await client.request(method, "/openapi.json")
            assert (answer.status_code, answer.headers["allow"]) == (405, "GET, HEAD")
            assert answer.json()["error"] == "method_not_allowed"


def documented_codes(document: dict[str, Any], status: int) -> list[str]:
    schema = document["paths"]["/events"]["post"]["responses"][str(status)]["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[1]
    return list(document["components"]["schemas"][name]["properties"]["error"]["enum"])


async def test_real_error_answers_carry_a_code_documented_for_their_status(event_factory: EventFactory) -> None:
    data = {"order_id": "o", "customer_id": "c", "amount_cents": 1, "currency": "EUR"}
    good = event_factory.event(ORDER_PLACED, data)
    requests: list[tuple[dict[str, str], bytes]] = [
        (STRUCTURED, b"{"),
        (STRUCTURED, b"[]"),
        (STRUCTURED, json.dumps({**good, "specversion": "0.3"}).encode()),
        (STRUCTURED, json.dumps({**good, "type": "no.such.type"}).encode()),
        (STRUCTURED, json.dumps({**good, "data": {"order_id": "o"}}).encode()),
        ({"content-type": "text/plain"}, b"hello"),
        ({"content-type": "application/cloudevents-batch+json"}, b"{}"),
        ({"content-type": "application/cloudevents-batch+json"}, json.dumps([good] * 3).encode()),
        ({**STRUCTURED, "content-encoding": "gzip"}, b"{}"),
        ({"content-type": "application/json", "ce-specversion": "1.0", "ce-id": "1"}, b"{}"),
        ({**STRUCTURED, "transfer-encoding": "gzip, chunked"}, b"{}"),
        (STRUCTURED, b"x" * 5000),
        ({}, b""),
    ]
    async with service_client(registry, auth_tokens=TOKEN, max_batch_events=2, max_body_bytes=4096) as (client, s):
        document = openapi_document(registry, s.settings, s.version)
        statuses = set()
        for headers, body in [*requests, ({"authorization": "Bearer wrong", **STRUCTURED}, b"{}")]:
            answer = await client.post("/events", content=body, headers={"authorization": f"Bearer {TOKEN}", **headers})
            assert answer.status_code >= 400, (headers, body[:50])
            assert answer.json()["error"] in documented_codes(document, answer.status_code), answer.json()
            statuses.add(answer.status_code)
    assert statuses == {400, 401, 413, 415, 422, 501}
