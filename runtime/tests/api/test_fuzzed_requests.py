"""Arbitrary requests straight into the ASGI app: whatever the bytes, encodings, nesting and headers, the answer is
one JSON response under 500, an error names itself, and what is stored is exactly what was accepted.

The socket-level fuzzer against a real bake (tests/test_adversarial_fuzz.py at the top) covers the HTTP layer; this
one covers the app's own parsing, in process, so it runs in seconds in the runtime's suite.
"""

import json
from collections.abc import AsyncIterator, MutableMapping
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_runtime.ingress import IngressApp
from event_runtime.service import Service
from event_runtime.settings import Settings
from event_runtime.testing.bus import TEST_SETTINGS

from ..sample_service import ORDER_PLACED, registry

TOKEN = "fuzz-token"
HANDLERS_OF_ORDER_PLACED = 2  # the only known type sent: each accepted event adds this many pending deliveries
STRUCTURED, BATCH = b"application/cloudevents+json", b"application/cloudevents-batch+json"
ORDER = {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 500, "currency": "EUR"}
NAMES = ["id", "source", "type", "specversion", "subject", "time", "datacontenttype", "dataschema", "data"]
NAMES += ["partitionkey", "traceparent", "data_base64", "Bad", "ext\n", "a" * 21]
TIMES = ["2026-12-01T18:00:00Z", "2016-12-31T23:59:60z", "2026-W48-2T18:00:00Z", "2026-02-30T00:00:00Z", "x"]
NOT_UTF8 = [b"\xff", b"\xfe", b"\xc0\xa0", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\xf8\x88\x80\x80\x80"]

# Strategies are built once, here: building them inside each draw cost hypothesis more than the requests did.
# values of every JSON kind, nested ones too, sampled: a recursive strategy cost hypothesis ten times as much to draw
SAMPLE_VALUES: list[Any] = [None, True, False, 0, -1, 7, 2**31, -(2**31) - 1, 2**63, 1.5, -0.0, 1e308, float("nan")]
SAMPLE_VALUES += ["", "1.0", ORDER_PLACED, "caf\u00e9", "\u20ac \U0001f600", "\x00", "\ud800", "%C0%A0", '"q"', "a\nb"]
SAMPLE_VALUES += [[], {}, [1, "x"], {"a": {"b": [None]}}, {"order_id": 5}, [[[[[[[[1]]]]]]]], TIMES]
attribute_values = st.one_of(st.sampled_from(SAMPLE_VALUES + TIMES), st.integers(), st.text(max_size=8))
changes = st.lists(st.tuples(st.sampled_from(NAMES) | st.text(max_size=6), attribute_values), max_size=3)
event_ids = st.sampled_from(["e-1", "e-2", "e-3", "e-4"]) | st.text(min_size=1, max_size=6)
event_types = st.sampled_from([ORDER_PLACED, ORDER_PLACED, "com.example.unknown"])
manglings = st.sampled_from(["as is", "as is", "as is", "not utf-8", "cut", "deep", "deep objects", "random bytes"])
fractions = st.floats(0, 1)
depths = st.sampled_from([63, 64, 65, 66, 200, 999, 1000, 1001, 5000])
random_bodies = st.binary(max_size=200)
header_encodings = st.sampled_from(["percent", "percent", "utf-8", "latin-1", "quoted", "bytes"])
header_bytes = st.binary(max_size=12)
EXTRA_HEADERS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                *[b"transfer-encoding", b"content-encoding", b"content-length", b"prefer", b"authorization"],
                *[b"ce-type", b"content-type", b"ce-specversion", b"ce-", b"x-anything"],
            ]
        ),
        st.sampled_from([b"chunked", b"gzip, chunked", b"gzip", b"identity", b"\xb2", b"9" * 40, b"wait=nan"])
        | st.binary(max_size=10),
    ),
    max_size=2,
)


def event(draw: st.DrawFn) -> dict[str, Any]:
    """An order.placed event (or one of an unknown type) with a few attributes changed, added or removed."""
    mapping: dict[str, Any] = {
        "specversion": "1.0",
        "id": draw(event_ids),
        "source": "/fuzz",
        "type": draw(event_types),
        "data": ORDER,
    }
    for name, value in draw(changes):
        if value is None and draw(st.booleans()):
            mapping.pop(name, None)
        else:
            mapping[name] = value
    return mapping


def mangled(draw: st.DrawFn, body: bytes) -> bytes:
    """The body, maybe with bytes that are not UTF-8 put in, cut short, its data nested very deep, or replaced."""
    how = draw(manglings)
    if how == "not utf-8":
        at = int(len(body) * draw(fractions))
        return body[:at] + draw(st.sampled_from(NOT_UTF8)) + body[at:]
    if how == "cut":
        return body[: int(len(body) * draw(fractions))]
    if how.startswith("deep"):
        levels = draw(depths)
        opener, closer = (b'{"a":', b"}") if how == "deep objects" else (b"[", b"]")
        return body.replace(json.dumps(ORDER).encode(), opener * levels + b"1" + closer * levels, 1)
    if how == "random bytes":
        return draw(random_bodies)
    return body


def as_json(value: Any, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def header_value(draw: st.DrawFn, value: Any) -> bytes:
    """A ce-* header value as some client might write it: percent-encoded, raw UTF-8, latin-1 or any bytes."""
    text = value if isinstance(value, str) else json.dumps(value)
    how = draw(header_encodings)
    if how == "percent":
        return quote(text, safe="", errors="surrogatepass").encode()
    if how == "utf-8":
        return text.encode("utf-8", "surrogatepass")
    if how == "latin-1":
        return text.encode("latin-1", "replace")
    if how == "quoted":
        return b'"' + text.replace("\\", "\\\\").replace('"', '\\"').encode("utf-8", "surrogatepass") + b'"'
    return draw(header_bytes)


@st.composite
def requests(draw: st.DrawFn) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """(headers, body) of a structured, batch, binary or garbage request."""
    mode = draw(st.sampled_from(["structured", "batch", "binary", "garbage"]))
    ascii_only = draw(st.booleans())
    headers: list[tuple[bytes, bytes]] = []
    if draw(st.integers(0, 9)):
        headers.append((b"authorization", b"Bearer " + TOKEN.encode()))
    if mode == "structured":
        headers.append((b"content-type", STRUCTURED))
        body = mangled(draw, as_json(event(draw), ascii_only))
    elif mode == "batch":
        headers.append((b"content-type", BATCH))
        body = mangled(draw, as_json([event(draw) for _ in range(draw(st.integers(0, 3)))], ascii_only))
    elif mode == "binary":
        mapping = event(draw)
        data = mapping.pop("data", None)
        headers.append((b"content-type", draw(st.sampled_from([b"application/json", b"text/plain", b"x+json"]))))
        headers += [
            (b"ce-" + name.encode("utf-8", "surrogatepass"), header_value(draw, v)) for name, v in mapping.items()
        ]
        body = b"" if data is None else mangled(draw, as_json(data, ascii_only))
    else:
        headers.append((b"content-type", draw(st.sampled_from([STRUCTURED, BATCH, b"application/json", b""]))))
        body = draw(random_bodies)
    headers += draw(EXTRA_HEADERS)
    return [(name.lower(), value) for name, value in headers], body


async def call(app: IngressApp, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> list[dict[str, Any]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/events",
        "raw_path": b"/events",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    incoming = [{"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks]
    incoming[-1]["more_body"] = False
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    return sent


@pytest.fixture
async def app() -> AsyncIterator[IngressApp]:
    service = Service(registry, Settings(**{**TEST_SETTINGS, "auth_tokens": TOKEN, "max_body_bytes": 20_000}))
    await service.start(run_workers=False)
    try:
        yield IngressApp(service, run_workers=False)
    finally:
        await service.stop()


@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(request=requests(), split=st.integers(1, 4))
async def test_any_request_gets_one_json_answer_under_500_and_stores_only_what_it_accepted(
    app: IngressApp, request: tuple[list[tuple[bytes, bytes]], bytes], split: int
) -> None:
    headers, body = request
    step = max(1, -(-len(body) // split))
    chunks = [body[start : start + step] for start in range(0, len(body), step)] or [b""]
    pending_before = await app.service.bus.pending_count()

    sent = await call(app, headers, chunks)

    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    status = sent[0]["status"]
    answer = json.loads(sent[1]["body"])
    # 501 is what HTTP prescribes for a transfer coding the server does not know (RFC 9112 section 6.1)
    assert status < 500 or (status, answer["error"]) == (501, "unsupported_transfer_coding"), answer
    assert dict(sent[0]["headers"])[b"content-type"] == b"application/json"
    accepted = answer["accepted"] if status == 202 else 0
    if status >= 400:
        assert isinstance(answer["error"], str) and answer["error"]
    else:  # an empty batch too (the spec allows it): 202, nothing accepted
        assert status == 202
    assert await app.service.bus.pending_count() - pending_before == HANDLERS_OF_ORDER_PLACED * accepted
