"""The AsyncAPI document from a handler registry: a channel and message per event type with the msgspec data schema,
a receive operation per handler over HTTP POST, a send operation per declared follow-up. The AsyncAPI CLI validates
a bake's document in tests/test_api_documents.py."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from event_runtime import HandlerContext, HandlerRegistry
from event_runtime.api_docs import asyncapi_document

from ..sample_service import ORDER_CANCELLED, ORDER_PLACED, OrderPlaced, registry
from .api_documents_support import NOBODY, STOCK_RESERVED, refs, registry_with_follow_ups, resolve, settings


def channel_of(document: dict[str, Any], event_type: str) -> tuple[str, dict[str, Any]]:
    [(key, channel)] = [(k, c) for k, c in document["channels"].items() if c["title"] == event_type]
    return key, channel


def test_every_event_type_is_a_channel_whose_message_carries_the_msgspec_data_schema() -> None:
    document = asyncapi_document(registry, settings(), "1.2.3")
    assert (document["asyncapi"], document["info"]["title"], document["info"]["version"]) == ("3.0.0", "shop", "1.2.3")
    assert sorted(c["title"] for c in document["channels"].values()) == sorted([ORDER_PLACED, ORDER_CANCELLED])
    _, channel = channel_of(document, ORDER_PLACED)
    assert channel["address"] == "/events"
    [message_ref] = channel["messages"].values()
    message = resolve(document, message_ref["$ref"])
    assert (message["name"], message["contentType"]) == (ORDER_PLACED, "application/cloudevents+json")
    event = resolve(document, message["payload"]["$ref"])
    assert event["properties"]["type"] == {"const": ORDER_PLACED}
    assert {"specversion", "id", "source", "type", "data"} <= set(event["required"])
    data = resolve(document, event["properties"]["data"]["$ref"])
    (_,), components = msgspec.json.schema_components([OrderPlaced], ref_template="#/components/schemas/{name}")
    assert data == components["OrderPlaced"]  # the schema ingress checks the data against, as msgspec states it
    assert data["properties"]["currency"]["pattern"] == "^[A-Z]{3}$"


def test_each_handler_is_a_receive_operation_bound_to_http_post() -> None:
    document = asyncapi_document(registry, settings(), "1.2.3")
    receiving = {op["title"]: op for op in document["operations"].values() if op["action"] == "receive"}
    assert sorted(receiving) == ["release_stock", "reserve_stock", "send_order_confirmation"]
    for name, operation in receiving.items():
        event_type = registry.by_name(name).event_type  # type: ignore[union-attr]
        key, _ = channel_of(document, event_type)
        assert operation["channel"] == {"$ref": f"#/channels/{key}"}
        assert operation["bindings"]["http"]["method"] == "POST"
        assert resolve(document, operation["messages"][0]["$ref"])  # the channel's own message
    assert not [op for op in document["operations"].values() if op["action"] == "send"]  # nothing declared


def test_declared_follow_ups_are_send_operations_on_their_types_channel() -> None:
    document = asyncapi_document(registry_with_follow_ups(), settings(), "1.2.3")
    sending = [op for op in document["operations"].values() if op["action"] == "send"]
    cancelled_key, _ = channel_of(document, ORDER_CANCELLED)
    assert [(op["title"], op["channel"]) for op in sending] == [
        (f"cancel_when_out_of_stock publishes {ORDER_CANCELLED}", {"$ref": f"#/channels/{cancelled_key}"})
    ]
    assert "`/shop`" in sending[0]["description"]  # the follow-up's source: SERVICE_EVENT_SOURCE
    handler = next(op for op in document["operations"].values() if op["title"] == "cancel_when_out_of_stock")
    assert handler["description"] == "Cancel the order when a SKU is out of stock."
    assert channel_of(document, STOCK_RESERVED)


def test_a_follow_up_nobody_handles_gets_a_channel_that_says_so() -> None:
    combined = registry_with_follow_ups(unhandled=True)
    assert combined.unhandled_follow_ups() == [("cancel_when_out_of_stock", NOBODY)]
    document = asyncapi_document(combined, settings(), "1.2.3")
    _, channel = channel_of(document, NOBODY)
    assert "no handler (publishing it fails)" in channel["description"]


def test_publishes_takes_a_list_of_types() -> None:
    with pytest.raises(TypeError, match="not one string"):
        HandlerRegistry().on(ORDER_PLACED, OrderPlaced, publishes=ORDER_CANCELLED)


def test_types_and_names_that_are_no_safe_keys_get_distinct_keys_and_every_ref_resolves() -> None:
    odd = HandlerRegistry()
    for index, event_type in enumerate(["urn:shop/order placed", "urn:shop/order_placed"]):

        @odd.on(event_type, dict, name=f"handler {index}")
        async def handle(data: dict[str, Any], context: HandlerContext) -> None: ...

    document = asyncapi_document(odd, settings(), "1")
    assert len(document["channels"]) == 2 and len(document["operations"]) == 2
    for key in [*document["channels"], *document["operations"], *document["components"]["schemas"]]:
        assert key.replace(".", "").replace("-", "").replace("_", "").isalnum(), key
    for ref in refs(document):
        assert resolve(document, ref) is not None, ref
    follow_ups = asyncapi_document(registry_with_follow_ups(unhandled=True), settings(), "1")
    for ref in refs(follow_ups):
        assert resolve(follow_ups, ref) is not None, ref
