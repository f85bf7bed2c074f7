"""A stored event, as the store hands it to a handler, is the event ingress validated, whichever mode it came in."""

import json

import pytest

from event_runtime.cloudevents import decode_stored, parse_batch, parse_structured

BASE = {"specversion": "1.0", "id": "e-1", "source": "/shop", "type": "com.example.order.placed", "data": {"n": 1}}


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"subject": "o-1", "time": "2026-11-27T07:00:00Z", "partitionkey": "k-1", "traceparent": "00-ab-cd-01"},
        {"subject": None, "partitionkey": None, "retries": 3, "urgent": True},
    ],
    ids=["plain", "optional attributes and extensions", "null attributes"],
)
def test_what_a_handler_gets_back_equals_what_ingress_accepted(extra: dict[str, object]) -> None:
    body = json.dumps({**BASE, **extra}).encode()
    accepted = parse_structured(body)
    [in_batch], [stored_member] = parse_batch(b"[" + body + b"]", 10)

    assert decode_stored(body) == accepted
    assert decode_stored(stored_member) == in_batch == accepted
    assert decode_stored(accepted.to_json()) == accepted
