"""Requests a hostile or broken client sends: each is answered with a JSON 4xx (501 for a transfer coding) naming the
problem, and nothing of it is stored."""

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import msgspec
import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent as SdkEvent
from structlog.testing import capture_logs

from event_runtime.cloudevents import MAX_DATA_DEPTH
from event_runtime.registry import HandlerRegistry
from event_runtime.service import Service
from event_runtime.testing import EventFactory, RecordingHandler, service_client

from ..sample_service import ORDER_PLACED, registry

Api = tuple[httpx.AsyncClient, Service]
STRUCTURED = {"content-type": "application/cloudevents+json"}
BATCH = {"content-type": "application/cloudevents-batch+json"}
BINARY = {
    "ce-specversion": "1.0",
    "ce-id": "b-1",
    "ce-source": "/shop",
    "ce-type": ORDER_PLACED,
    "content-type": "application/json",
}
ORDER = {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 500, "currency": "EUR"}
MAX_BODY_BYTES = 2000


def structured(event_id: str = "s-1", **attributes: Any) -> bytes:
    event = {"specversion": "1.0", "id": event_id, "source": "/shop", "type": ORDER_PLACED, "data": ORDER}
    return json.dumps({**event, **attributes}).encode()


async def post(client: httpx.AsyncClient, body: bytes, headers: Any) -> httpx.Response:
    return await client.post("/events", content=body, headers=headers)


async def assert_refused(service: Service, response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert await service.bus.pending_count() == 0
    return body


NOT_UTF8 = {
    "structured, in an attribute": (structured().replace(b'"s-1"', b'"s-\xff"'), STRUCTURED),
    "structured, in data": (structured().replace(b'"o-1"', b'"o-\xe9"'), STRUCTURED),
    "batch, in its second event": (
        b"[" + structured() + b"," + structured("s-2").replace(b"c-1", b"\xc0\xa0") + b"]",
        BATCH,
    ),
    "binary, in the body": (json.dumps(ORDER).encode().replace(b"c-1", b"c-\xff"), BINARY),
    "binary, in a header": (json.dumps(ORDER).encode(), [*BINARY.items(), ("ce-subject", b"%C0%A0")]),
}


@pytest.mark.parametrize(("body", "headers"), NOT_UTF8.values(), ids=NOT_UTF8.keys())
async def test_invalid_utf8_is_400_invalid_utf8_in_every_mode(api: Api, body: bytes, headers: Any) -> None:
    client, service = api

    await assert_refused(service, await post(client, body, headers), 400, "invalid_utf8")


def deep(levels: int) -> bytes:
    return b'{"order_id": ' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"


@pytest.mark.parametrize("levels", [MAX_DATA_DEPTH + 1, 5000])
@pytest.mark.parametrize("mode", ["structured", "batch", "binary"])
async def test_data_nested_deeper_than_the_limit_is_400_in_every_mode(api: Api, mode: str, levels: int) -> None:
    client, service = api
    event = structured().replace(json.dumps(ORDER).encode(), deep(levels))
    body, headers = {
        "structured": (event, STRUCTURED),
        "batch": (b"[" + event + b"]", BATCH),
        "binary": (deep(levels), BINARY),
    }[mode]

    refusal = await assert_refused(service, await post(client, body, headers), 400, "nesting_too_deep")

    assert refusal["max_depth"] == MAX_DATA_DEPTH


async def test_data_nested_to_the_limit_reaches_the_schema_check(api: Api) -> None:
    client, service = api
    event = structured().replace(json.dumps(ORDER).encode(), deep(MAX_DATA_DEPTH))

    await assert_refused(service, await post(client, event, STRUCTURED), 422, "invalid_data")


@pytest.mark.parametrize(
    "duplicated",
    [("ce-type", "com.example.order.cancelled"), ("ce-id", "b-1"), ("authorization", "Bearer test-token")],
    ids=["a different ce-type", "the same ce-id again", "the same token again"],
)
async def test_a_duplicated_ce_or_authorization_header_is_400_naming_it(api: Api, duplicated: tuple[str, str]) -> None:
    client, service = api
    headers = [*BINARY.items(), ("authorization", "Bearer test-token"), duplicated]

    refusal = await assert_refused(
        service, await post(client, json.dumps(ORDER).encode(), headers), 400, "duplicate_header"
    )

    assert refusal["header"] == duplicated[0]


async def test_a_duplicated_content_type_is_400(api: Api) -> None:
    client, service = api
    headers = [*STRUCTURED.items(), ("content-type", "application/cloudevents-batch+json")]

    await assert_refused(service, await post(client, structured(), headers), 400, "duplicate_header")


async def test_a_list_header_sent_twice_is_read_as_one_list(api: Api) -> None:
    client, _ = api
    headers = [*STRUCTURED.items(), ("prefer", "respond-async"), ("prefer", "wait=5")]

    response = await post(client, structured(), headers)

    assert response.status_code == 200  # the wait in the second Prefer line was seen
    assert {result["handler"] for result in response.json()["results"]} == {"reserve_stock", "send_order_confirmation"}


@pytest.mark.parametrize(
    "transfer_encoding",
    [["gzip, chunked"], ["chunked, gzip"], ["identity"], ["gzip", "chunked"]],
    ids=["gzip then chunked", "chunked then gzip", "identity", "gzip and chunked on two lines"],
)
async def test_a_transfer_coding_other_than_chunked_is_501(api: Api, transfer_encoding: list[str]) -> None:
    client, service = api
    headers = [*STRUCTURED.items(), *(("transfer-encoding", coding) for coding in transfer_encoding)]

    await assert_refused(service, await post(client, structured(), headers), 501, "unsupported_transfer_coding")


async def test_a_chunked_body_is_read(api: Api) -> None:
    client, _ = api

    async def chunks() -> AsyncIterator[bytes]:
        body = structured()
        for start in range(0, len(body), 16):
            yield body[start : start + 16]

    response = await client.post("/events", content=chunks(), headers={**STRUCTURED, "transfer-encoding": "chunked"})

    assert response.status_code == 202


async def test_a_compressed_body_is_415_asking_for_identity(api: Api) -> None:
    client, service = api

    response = await post(client, structured(), {**STRUCTURED, "content-encoding": "gzip"})

    await assert_refused(service, response, 415, "unsupported_content_encoding")
    assert response.headers["accept-encoding"] == "identity"


@pytest.fixture
async def small_api() -> AsyncIterator[Api]:
    async with service_client(registry, max_body_bytes=MAX_BODY_BYTES) as api:
        yield api


async def test_a_binary_event_whose_header_alone_is_over_the_limit_is_413(small_api: Api) -> None:
    client, service = small_api
    headers = {**BINARY, "ce-subject": "s" * MAX_BODY_BYTES}

    refusal = await assert_refused(service, await post(client, b"", headers), 413, "event_too_large")

    assert refusal["max_bytes"] == MAX_BODY_BYTES


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_binary_event_over_the_limit_with_headers_and_body_together_is_413(
    small_api: Api, framing: str
) -> None:
    client, service = small_api
    data = json.dumps({**ORDER, "customer_id": "c" * 1000}).encode()  # under the limit by itself
    headers = {**BINARY, "ce-subject": "s" * 1000}

    async def chunked() -> AsyncIterator[bytes]:
        yield data

    response = await client.post("/events", content=data if framing == "content-length" else chunked(), headers=headers)

    await assert_refused(service, response, 413, "event_too_large")


async def test_a_binary_event_under_the_limit_with_its_headers_is_accepted(small_api: Api) -> None:
    client, _ = small_api
    response = await post(client, json.dumps(ORDER).encode(), {**BINARY, "ce-subject": "s" * 1000})

    assert response.status_code == 202


@pytest.mark.parametrize(
    "declared", ["\u00b2", "9" * 5000, "-1", "1e9"], ids=["superscript", "5000 digits", "-1", "1e9"]
)
async def test_a_content_length_that_is_no_plain_number_gets_no_5xx(api: Api, declared: str) -> None:
    client, _ = api
    body = structured()
    headers = [(b"content-type", STRUCTURED["content-type"].encode()), (b"content-length", declared.encode("latin-1"))]

    response = await client.send(client.build_request("POST", "/events", content=body, headers=headers))

    assert response.status_code < 500


async def test_a_failure_of_the_service_itself_is_a_json_500_with_its_traceback_logged(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, service = api

    async def broken_service(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the store is broken")  # a bug: a failing store is a 503 (tests/faults)

    monkeypatch.setattr(service, "accept", broken_service)
    with capture_logs() as entries:
        response = await post(client, structured(), STRUCTURED)

    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "the store is broken" not in response.text  # the details are for the log, not the client
    failures = [entry for entry in entries if entry["event"] == "post_events_failed"]
    assert failures and failures[0]["exc_info"] is True


class Order(msgspec.Struct):
    order_id: str


@pytest.fixture
async def recorded() -> AsyncIterator[tuple[httpx.AsyncClient, RecordingHandler]]:
    handler = RecordingHandler("recorded")
    recording = HandlerRegistry()
    recording.on(ORDER_PLACED, Order)(handler)
    async with service_client(recording) as (client, _):
        yield client, handler


@pytest.mark.parametrize("to_http", [to_binary_event, to_structured_event], ids=["binary", "structured"])
async def test_the_official_sdk_round_trips_text_and_times_in_both_modes(
    recorded: tuple[httpx.AsyncClient, RecordingHandler], event_factory: EventFactory, to_http: Any
) -> None:
    client, handler = recorded
    subject = 'Caf\u00e9 50% "\u20ac \U0001f600"'
    attributes = {
        "id": "sdk-1",
        "source": "/sdk",
        "type": ORDER_PLACED,
        "specversion": "1.0",
        "subject": subject,
        "time": datetime(2016, 12, 31, 23, 59, 59, 123456, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        "datacontenttype": "application/json",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }
    message = to_http(SdkEvent(attributes, {"order_id": "o-1"}))

    response = await client.post("/events", content=message.body, headers={**message.headers, "prefer": "wait=5"})

    assert response.status_code == 200, response.text
    event = handler.calls[0][1].event
    assert (event.subject, event.extensions["traceparent"]) == (subject, attributes["traceparent"])
    assert event.time is not None and datetime.fromisoformat(event.time) == attributes["time"]
