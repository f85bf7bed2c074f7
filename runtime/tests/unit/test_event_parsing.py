"""Parsing an event's JSON: the quick way for plain events accepts and rejects exactly what the full checks do."""

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from event_runtime import cloudevents
from event_runtime.cloudevents import (
    CloudEvent,
    EventRejected,
    event_from_json,
    event_from_mapping,
)

PLAIN = {
    "specversion": "1.0",
    "id": "e-1",
    "source": "/shop",
    "type": "com.example.order.placed",
    "subject": "order-1",
    "time": "2026-12-01T18:00:00+01:00",
    "datacontenttype": "application/json",
    "data": {"order_id": "order-1", "amount_cents": 1250},
}
# every attribute the quick way knows, and a few it does not (valid and invalid extension names, binary data)
NAMES = [*PLAIN, "dataschema", "partitionkey", "traceparent", "retries", "Bad-Name", "data_base64", "extensions"]
SAMPLE_VALUES: list[Any] = [
    *["1.0", "0.3", "", "x", "2026-12-01T18:00:00Z", "2026-12-01T18:00:00", "not a time"],
    *[None, True, False, 0, 7, 1.0, 2.5, [1], {"a": 1}],
]
VALUES = st.one_of(
    st.sampled_from(SAMPLE_VALUES),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
)


def outcome(parse: Any, argument: Any) -> CloudEvent | tuple[int, dict[str, Any]]:
    """The event parsed, or the status and body of the rejection."""
    try:
        return parse(argument)  # type: ignore[no-any-return]
    except EventRejected as rejection:
        return rejection.status, rejection.body


def test_each_attribute_of_each_kind_of_value_gets_what_the_full_checks_give() -> None:
    changed = [{**PLAIN, name: value} for name in NAMES for value in SAMPLE_VALUES]
    without_one = [{name: value for name, value in PLAIN.items() if name != left_out} for left_out in PLAIN]

    differing = [
        mapping
        for mapping in [PLAIN, *changed, *without_one]
        if outcome(event_from_json, json.dumps(mapping).encode()) != outcome(event_from_mapping, mapping)
    ]

    assert differing == []


@settings(max_examples=300, deadline=None)
@given(
    changes=st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=3),
    dropped=st.sets(st.sampled_from(list(PLAIN)), max_size=2),
)
def test_any_mix_of_attributes_gets_from_its_json_what_the_full_checks_give(
    changes: dict[str, Any], dropped: set[str]
) -> None:
    mapping = {name: value for name, value in {**PLAIN, **changes}.items() if name not in dropped}

    assert outcome(event_from_json, json.dumps(mapping).encode()) == outcome(event_from_mapping, mapping)


@pytest.mark.parametrize(
    "body",
    [b"[1]", b"null", b'"event"', b"{", b'{"id": "\\ud800"}', b""],
    ids=["array", "null", "string", "truncated", "lone surrogate", "empty"],
)
def test_json_that_is_no_event_object_is_rejected_with_400(body: bytes) -> None:
    with pytest.raises(EventRejected) as rejected:
        event_from_json(body)

    assert rejected.value.status == 400


def test_a_plain_event_skips_the_full_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    def full_checks(mapping: Any, index: int | None = None) -> CloudEvent:
        raise AssertionError("a plain event went the long way")

    monkeypatch.setattr(cloudevents, "event_from_mapping", full_checks)

    event = event_from_json(json.dumps({**PLAIN, "partitionkey": "customer-7"}).encode())

    assert (event.id, event.ordering_key, event.data) == ("e-1", "customer-7", PLAIN["data"])
