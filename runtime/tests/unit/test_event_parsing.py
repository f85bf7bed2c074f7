"""Parsing an event's JSON: the quick way for plain events accepts and rejects exactly what the full checks do."""

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from event_runtime import cloudevents
from event_runtime.cloudevents import (
    INTEGER_MAX,
    INTEGER_MIN,
    MAX_DATA_DEPTH,
    CloudEvent,
    EventRejected,
    event_from_json,
    event_from_mapping,
    parse_batch,
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


def nested(levels: int) -> Any:
    """Data nesting arrays and objects `levels` deep, by turns."""
    value: Any = "leaf"
    for level in range(levels):
        value = [value] if level % 2 else {"n": value}
    return value


# every attribute the quick way knows, and a few it does not (valid and invalid extension names, binary data)
NAMES = [
    *[*PLAIN, "dataschema", "partitionkey", "traceparent", "retries", "Bad-Name", "data_base64", "extensions"],
    *["ext\n", "a" * 20, "a" * 21],
]
SAMPLE_VALUES: list[Any] = [
    *["1.0", "0.3", "", "x", "2026-12-01T18:00:00Z", "2026-12-01T18:00:00", "not a time"],
    *["2026-12-01t18:00:00z", "2016-12-31T23:59:60Z", "2016-12-31T23:58:60Z", "2026-W48-2T18:00:00Z"],
    *["20261201T180000Z", "2026-12-01T18:00:00+0100", "2026-02-29T00:00:00Z"],
    *[None, True, False, 0, 7, 1.0, 2.5, [1], {"a": 1}],
    *[INTEGER_MIN, INTEGER_MAX, INTEGER_MIN - 1, INTEGER_MAX + 1, 2**64],
    *[nested(6), nested(7), nested(MAX_DATA_DEPTH), nested(MAX_DATA_DEPTH + 1)],
]
VALUES = st.one_of(
    st.sampled_from(SAMPLE_VALUES),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.integers(0, MAX_DATA_DEPTH + 3).map(nested),
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


def rejection(parse: Any, argument: Any) -> dict[str, Any]:
    with pytest.raises(EventRejected) as rejected:
        parse(argument)
    assert rejected.value.status == 400
    return rejected.value.body


@pytest.mark.parametrize(
    "time",
    [
        "2026-12-01T18:00:00Z",
        "2026-12-01t18:00:00z",
        "2026-12-01T18:00:00.123456789-05:30",
        "2016-12-31T23:59:60Z",
        "1990-12-31T15:59:60-08:00",
        "2024-02-29T00:00:00+00:00",
        "2000-02-29T12:00:00-00:00",
    ],
)
def test_any_rfc3339_date_time_is_a_valid_time(time: str) -> None:
    assert event_from_mapping({**PLAIN, "time": time}).time == time


@pytest.mark.parametrize(
    "time",
    [
        "2026-W48-2T18:00:00Z",  # ISO 8601 week date
        "20261201T180000Z",  # ISO 8601 basic format
        "2026-12-01T18:00:00+0100",
        "2026-12-01 18:00:00Z",
        "2026-12-01T18:00:00",  # no offset
        "2026-12-01T18:00Z",
        "2026-12-01T18:00:00.Z",
        "2026-02-29T00:00:00Z",  # not a leap year
        "1900-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-12-01T24:00:00Z",
        "2026-12-01T18:60:00Z",
        "2016-12-31T23:58:60Z",  # a leap second is the last second of a UTC day
        "2026-12-01T18:00:00+24:00",
        "\uff12026-12-01T18:00:00Z",  # a full-width digit
        "2026-12-01T18:00:00Z\n",
    ],
)
def test_a_time_that_rfc3339_does_not_allow_is_refused(time: str) -> None:
    body = rejection(event_from_mapping, {**PLAIN, "time": time})

    assert list(body["attributes"]) == ["time"]


@pytest.mark.parametrize("name", ["ext\n", "a" * 21, "", "exT", "ext-1"])
def test_an_extension_name_is_one_to_twenty_lower_case_letters_and_digits_matched_whole(name: str) -> None:
    body = rejection(event_from_mapping, {**PLAIN, name: "x"})

    assert list(body["attributes"]) == [name]


def test_an_extension_name_of_twenty_characters_is_valid() -> None:
    assert event_from_mapping({**PLAIN, "a" * 20: "x"}).extensions == {"a" * 20: "x"}


@pytest.mark.parametrize("name", ["retries", "partitionkey"])
@pytest.mark.parametrize("value", [INTEGER_MIN - 1, INTEGER_MAX + 1, 2**64])
def test_an_integer_attribute_outside_32_bits_is_refused(name: str, value: int) -> None:
    body = rejection(event_from_json, json.dumps({**PLAIN, name: value}).encode())

    assert list(body["attributes"]) == [name]


@pytest.mark.parametrize("name", ["retries", "partitionkey"])
@pytest.mark.parametrize("value", [INTEGER_MIN, INTEGER_MAX])
def test_an_integer_attribute_at_the_ends_of_32_bits_is_valid(name: str, value: int) -> None:
    assert event_from_json(json.dumps({**PLAIN, name: value}).encode()).extensions == {name: value}


ENVELOPE = b'{"specversion": "1.0", "id": "e-1", "source": "/shop", "type": "com.example.order.placed"'


@pytest.mark.parametrize(
    "body",
    [
        ENVELOPE.replace(b'"e-1"', b'"e-\xff"') + b"}",
        ENVELOPE + b', "data": {"note": "caf\xe9"}}',
        ENVELOPE + b', "data": {"\xc0\xa0": 1}}',
        ENVELOPE + b', "traceparent": "\xed\xa0\x80"}',
        ENVELOPE + b"}\xff",
        b"\xff\xfe" + ENVELOPE.decode().encode("utf-16-le") + b"}\x00",
    ],
    ids=["in an attribute", "in data", "in a key", "a surrogate in an extension", "after the JSON", "UTF-16"],
)
def test_json_that_is_not_utf8_is_refused_as_such(body: bytes) -> None:
    assert rejection(event_from_json, body)["error"] == "invalid_utf8"


def test_a_batch_member_that_is_not_utf8_is_refused_naming_its_index() -> None:
    good = ENVELOPE + b"}"
    body = rejection(lambda batch: parse_batch(batch, 10), b"[" + good + b", " + good.replace(b"e-1", b"\xff") + b"]")

    assert (body["error"], body["index"]) == ("invalid_utf8", 1)


def with_data(levels: int, **attributes: Any) -> bytes:
    return (
        ENVELOPE
        + b"".join(b', "%s": "%s"' % (n.encode(), v.encode()) for n, v in attributes.items())
        + (b', "data": ' + b"[" * levels + b"]" * levels + b"}")
    )


@pytest.mark.parametrize("attributes", [{}, {"traceparent": "00-1"}], ids=["plain", "with an extension"])
def test_data_may_nest_up_to_the_depth_limit(attributes: dict[str, str]) -> None:
    assert event_from_json(with_data(MAX_DATA_DEPTH, **attributes)).data == nested_lists(MAX_DATA_DEPTH)


def nested_lists(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize("levels", [MAX_DATA_DEPTH + 1, 990, 100_000])
@pytest.mark.parametrize("attributes", [{}, {"traceparent": "00-1"}], ids=["plain", "with an extension"])
def test_data_nested_deeper_than_the_limit_is_refused_however_deep(levels: int, attributes: dict[str, str]) -> None:
    body = rejection(event_from_json, with_data(levels, **attributes))

    assert (body["error"], body["max_depth"]) == ("nesting_too_deep", MAX_DATA_DEPTH)


@pytest.mark.parametrize("levels", [MAX_DATA_DEPTH + 1, 100_000])
def test_a_batch_with_a_member_nested_too_deep_is_refused(levels: int) -> None:
    body = rejection(lambda batch: parse_batch(batch, 10), b"[" + ENVELOPE + b"}, " + with_data(levels) + b"]")

    assert body["error"] == "nesting_too_deep"
