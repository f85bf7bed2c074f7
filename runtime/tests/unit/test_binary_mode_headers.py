"""Binary mode: ce-* header values are decoded as the CloudEvents HTTP binding says (section 3.1.3.2).

Headers arrive as the ASGI server hands them over, bytes decoded as latin-1 (one character a byte), which is how
ingress builds the dict parse_binary reads.
"""

import pytest

from event_runtime.cloudevents import EventRejected, parse_binary

ATTRIBUTES = {"ce-specversion": "1.0", "ce-id": "b-1", "ce-source": "/shop", "ce-type": "com.example.order.placed"}


def as_received(value: bytes) -> str:
    return value.decode("latin-1")


def subject_of(raw_value: bytes) -> str | None:
    return parse_binary({**ATTRIBUTES, "ce-subject": as_received(raw_value)}, b"").subject


@pytest.mark.parametrize(
    ("raw_value", "subject"),
    [
        (b"order-1", "order-1"),
        (b"Euro%20%E2%82%AC%20%F0%9F%98%80", "Euro \u20ac \U0001f600"),  # the binding's own example
        (b"%e2%82%ac", "\u20ac"),  # lower-case hex must be accepted
        (b"%6F%72%64%65%72", "order"),  # unnecessarily encoded: accepted
        (b"50%25", "50%"),
        (b"%2541", "%41"),  # a single round of decoding
        (b'"order 1"', "order 1"),  # a quoted-string, as older senders wrote spaces
        (b'"say \\"hi\\""', 'say "hi"'),
        (b"caf\xc3\xa9", "caf\u00e9"),  # raw UTF-8 bytes: what the client meant, not latin-1
    ],
)
def test_a_header_value_is_unquoted_percent_decoded_once_and_read_as_utf8(raw_value: bytes, subject: str) -> None:
    assert subject_of(raw_value) == subject


@pytest.mark.parametrize(
    "raw_value",
    [b"%C0%A0", b"%FF", b"%ED%A0%80", b"%E2%82", b"caf\xe9", b"\xff"],
    ids=["overlong", "not a start byte", "a surrogate", "truncated", "raw latin-1", "raw 0xff"],
)
def test_a_header_value_that_is_not_utf8_once_decoded_is_refused_naming_the_header(raw_value: bytes) -> None:
    with pytest.raises(EventRejected) as rejected:
        subject_of(raw_value)

    assert rejected.value.status == 400
    assert (rejected.value.body["error"], rejected.value.body["header"]) == ("invalid_utf8", "ce-subject")


def test_data_comes_from_the_body_never_from_a_ce_data_header() -> None:
    with pytest.raises(EventRejected) as rejected:
        parse_binary({**ATTRIBUTES, "ce-data": "smuggled"}, b"")

    assert rejected.value.body["attributes"] == {"data": "in binary mode the data is the body, never a ce-data header"}


@pytest.mark.parametrize(
    ("body", "error"),
    [(b'{"note": "caf\xe9"}', "invalid_utf8"), (b"[" * 100 + b"]" * 100, "nesting_too_deep"), (b"{", "malformed_json")],
)
def test_a_body_that_is_no_json_data_is_refused_with_its_own_code(body: bytes, error: str) -> None:
    with pytest.raises(EventRejected) as rejected:
        parse_binary({**ATTRIBUTES, "content-type": "application/json"}, body)

    assert (rejected.value.status, rejected.value.body["error"]) == (400, error)
