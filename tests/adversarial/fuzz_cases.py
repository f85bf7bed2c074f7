"""The fuzzer's requests: hypothesis draws a recipe (mode, events, encodings, sizes, framing, headers, mutations),
`render` turns it into the exact bytes sent on one connection, with what a correct server may answer.

Rendering is separate from drawing so each case gets unique event ids (the store check needs them) and sizes of
megabytes cost a multiplication, not a draw.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from support import CACHE_DIR

from adversarial.bakes import TOKEN
from adversarial.raw_http import chunked, request

PLACED = "com.example.order.placed"
CANCELLED = "com.example.order.cancelled"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
SOURCE = "/fuzz"
MAX_BODY = 1 << 20  # the service's default SERVICE_MAX_BODY_BYTES: sizes are drawn around it
MISSING = "<missing>"
# hypothesis keeps its caches in .cache/ with the tests' others, out of the collection's way (tox.ini norecursedirs)
set_hypothesis_home_dir(CACHE_DIR / "hypothesis")
BAD = "@@BAD@@"  # stands in a JSON string for raw bytes that JSON text cannot carry
NEST = "@@NEST@@"  # stands in for deeply nested JSON that json.dumps would recurse on
PAD = "@@PAD@@"  # stands in for megabytes of padding, spliced in as bytes

# bytes no valid UTF-8 JSON string holds, and escapes that decode to no Unicode scalar
BAD_BYTES = (
    b"\xff",
    b"\xfe\xff",
    b"\xc0\xaf",  # overlong '/'
    b"\xe0\x80\x80",  # overlong NUL
    b"\xed\xa0\x80",  # a surrogate, UTF-8 encoded
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\xe2\x82",  # truncated sequence
    b"\x80",  # lone continuation byte
    b"\x00",  # raw NUL (JSON forbids raw control characters)
    b"\x1f\n\t",
    b"\\ud800",  # lone high surrogate escape
    b"\\udc00\\ud800",  # reversed pair
    b"\\u0000",
    b"\\x41",  # not a JSON escape
)
# ways to nest: a deep array, a deep object, alternating
NESTINGS = ("array", "object", "mixed")
DEPTHS = (2, 64, 500, 999, 1000, 1001, 5000, 100_000)
# bytes of padding in an event, around the body limit
PAD_SIZES = (100,) * 3 + (8_000,) * 3 + (65_536,) * 2 + (MAX_BODY - 600, MAX_BODY + 1, 3 * MAX_BODY)
TIMES = (
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00.123456+02:00",
    "2026-01-01T00:00:00z",
    "2016-12-31T23:59:60Z",
    "2026-W01-1T00:00:00+00:00",
    "20260101T000000Z",
    "2026-01-01",
    "2026-02-30T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01 00:00:00Z",
    "",
    "not a time",
)
EXTENSION_NAMES = ("partitionkey", "traceparent", "abc123", "a" * 20, "a" * 21, "Upper", "a\n", "a-b", "", "é")
EXTENSION_VALUES: tuple[Any, ...] = (
    "k", 1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63, True, False, None, 1.5, [], {}, {"a": 1},
)
ATTRIBUTES = ("id", "source", "type", "specversion", "subject", "time", "datacontenttype", "dataschema", "data")
STRUCTURED_TYPES = (STRUCTURED, STRUCTURED + "; charset=utf-8", "APPLICATION/CLOUDEVENTS+JSON", STRUCTURED + "; x=y")
BINARY_TYPES = ("application/json", "application/json; charset=utf-8", "text/plain", "application/xml", "", None)
TRANSFER_CODINGS = ("chunked", "Chunked", "gzip, chunked", "chunked, gzip", "identity", "chunked ", "x-unknown",
                    "chunked, chunked")
CONTENT_LENGTHS = ("abc", "-1", "+5", "1e3", "0x10", " 12 ", "99999999999999999999999", "12, 12", "")
BAD_CHUNK_SIZES = (b"zz", b"-1", b"ffffffffffffffffffffff", b"", b" 5", b"5 ; ext=\x00")
FRAMINGS = (
    "cl-absent", "cl-short", "cl-long", "cl-dup-same", "cl-dup-different", "cl-bad", "te-bad-size", "te-no-last",
    "te-extensions", "te-trailer", "te-and-cl", "te-coding", "te-dup", "pipeline", "pipeline-garbage", "http10",
    "expect-continue", "bare-lf", "obs-fold", "half-close",
)
HEADER_MUTATIONS = (
    "dup-auth-same", "dup-auth-different", "dup-content-type", "dup-ce-type-same", "dup-ce-type-different",
    "huge-header", "many-headers", "non-latin1-value", "non-latin1-name", "bad-name", "no-host", "long-url",
    "query", "absolute-form", "junk-prefer", "connection-close",
)
HUGE_HEADER_SIZES = (8_192, 65_536, 1 << 20, 4 << 20)
MANY_HEADER_COUNTS = (100, 1_000, 10_000)
URL_LENGTHS = (2_048, 8_192, 65_536, 1 << 20)
AUTH = ("good",) * 12 + ("missing", "wrong", "basic", "lower-case-scheme")


@dataclass(frozen=True)
class EventRecipe:
    kind: str  # placed | cancelled | unknown-type | other-data | not-an-object
    overrides: tuple[tuple[str, Any], ...] = ()
    extensions: tuple[tuple[str, Any], ...] = ()
    text: str = ""


@dataclass(frozen=True)
class Recipe:
    mode: str  # structured | binary | batch | garbage
    events: tuple[EventRecipe, ...]
    bad_bytes: bytes | None = None
    bad_in: str = "data"  # structured/batch: data | subject | id | key; binary: header | percent | data
    nesting: tuple[str, int] | None = None
    pad: int = 0
    framing: str = "cl"  # cl | chunked | one of FRAMINGS
    framing_detail: Any = None
    chunk_sizes: tuple[int, ...] = ()
    header_mutation: str | None = None
    header_detail: Any = None
    auth: str = "good"
    content_type: str | None = STRUCTURED
    whole_body: str | None = None  # utf-16 | bom: the encoding of the whole body
    mutations: tuple[tuple[str, float, bytes], ...] = ()  # garbage: (op, where as a fraction, bytes)
    noise: bytes = b""
    batch_extra: str | None = None  # many | members-not-objects | not-an-array | empty


@dataclass
class Case:
    """One connection's worth of bytes and what a correct server may do with them."""

    number: int
    kind: str  # a label for the figures: mode, plus framing or header mutation
    payload: bytes
    keep_alive: bool  # a single well-framed request: sent on a reused connection
    answers: int | None  # responses owed (None: unknown, at least one unless `may_wait`)
    may_wait: bool  # the request may be incomplete: the server may wait for its read timeout, then 408 or close
    ids: list[str] = field(default_factory=list)  # event ids that a 2xx answer stores (empty: unknown after mutation)
    allowed_5xx: tuple[int, ...] = ()  # 501 for a transfer coding it does not implement, 505 for a version
    half_close: bool = False  # the client shuts its sending side once the request is out, and waits for the answer


# ---------------------------------------------------------------------------------------------------------- drawing

# Fixed values where a draw per character would cost more than it finds: hypothesis spends its draws on the
# combinations, and st.text() still reaches arbitrary Unicode now and then.
TEXTS = ("", "x", "é", "€", "😀", "\u0000", "\u202e", "\ufeff", "a" * 300, "line\nbreak", "tab\t", "quote\"", "\\",
         "%zz", "%ff", "%00", "<script>", "null", "\U0010ffff")
ODD_VALUES: tuple[Any, ...] = (
    MISSING, MISSING, "", None, 0, -1, 2**64, 1.5, True, [], {}, [1, "a"], {"a": {"b": [None]}}, "x", "1.0", "2.0",
    "com.example.nobody", "é", "😀", " ", "a" * 2048,
)
# Strategies are built once: one built inside a draw is validated again at every draw (most of the run's time).
_text = st.sampled_from(TEXTS) | st.text(max_size=8)
_kinds = st.sampled_from(("placed",) * 6 + ("cancelled", "cancelled", "unknown-type", "other-data"))
_override_counts = st.sampled_from((0, 0, 0, 0, 1, 2))
_attributes = st.sampled_from(ATTRIBUTES)
_times = st.sampled_from(TIMES)
_odd_values = st.sampled_from(ODD_VALUES) | _text
_one_in_ten = st.integers(0, 9)
_extension_names = st.sampled_from(EXTENSION_NAMES)
_extension_values = st.sampled_from(EXTENSION_VALUES)
_modes = st.sampled_from(("structured",) * 7 + ("binary",) * 6 + ("batch",) * 4 + ("garbage",) * 3)
_auth = st.sampled_from(AUTH)
# one dimension of trouble per case most of the time, sometimes two, so each is reached often
_troubles = st.sampled_from(
    [(), (), ("bytes",), ("bytes",), ("nesting",), ("size",), ("framing",), ("framing",), ("headers",), ("headers",),
     ("bytes", "headers"), ("nesting", "framing"), ("size", "framing"), ("size", "headers"), ("bytes", "framing")]
)
_bad_bytes = st.sampled_from(BAD_BYTES)
_binary_places = st.sampled_from(("header", "percent", "data"))
_json_places = st.sampled_from(("data", "subject", "id", "key"))
_whole_bodies = st.sampled_from((None,) * 7 + ("utf-16", "bom", "latin-1"))
_nestings = st.tuples(st.sampled_from(NESTINGS), st.sampled_from(DEPTHS))
_pads = st.sampled_from(PAD_SIZES)
_framings = st.sampled_from(("chunked",) * 4 + FRAMINGS)
_chunk_sizes = st.lists(st.integers(1, 4096), max_size=4).map(tuple)
_header_mutations = st.sampled_from(HEADER_MUTATIONS)
_structured_types = st.sampled_from(STRUCTURED_TYPES)
_binary_types = st.sampled_from(BINARY_TYPES)
_batch_extras = st.sampled_from((None,) * 8 + ("many", "members-not-objects", "not-an-array", "empty"))
_framing_details: dict[str, st.SearchStrategy[Any]] = {
    "cl-short": st.integers(1, 64),
    "cl-long": st.integers(1, 64),
    "cl-bad": st.sampled_from(CONTENT_LENGTHS),
    "cl-dup-different": st.sampled_from(CONTENT_LENGTHS),
    "te-bad-size": st.sampled_from(BAD_CHUNK_SIZES),
    "te-coding": st.sampled_from(TRANSFER_CODINGS),
    "pipeline": st.integers(2, 4),
    "pipeline-garbage": st.integers(2, 4),
}
_non_latin1 = st.text(st.characters(min_codepoint=256), min_size=1, max_size=8)
_header_details: dict[str, st.SearchStrategy[Any]] = {
    "huge-header": st.sampled_from(HUGE_HEADER_SIZES),
    "many-headers": st.sampled_from(MANY_HEADER_COUNTS),
    "long-url": st.sampled_from(URL_LENGTHS),
    "non-latin1-value": _non_latin1,
    "non-latin1-name": _non_latin1,
    "bad-name": st.sampled_from(("Bad Name", "x(y)", "@", "", "x\x00y", "ce-type ")),
}
# a truncation or a deletion makes the request incomplete (the server waits for its read timeout): rarer
_mutation_ops = st.sampled_from(("flip",) * 4 + ("insert",) * 3 + ("duplicate", "lf", "noise-only", "delete",
                                                                   "truncate"))
_mutations = st.tuples(_mutation_ops, st.floats(0, 1), st.binary(min_size=1, max_size=8))
_mutation_lists = st.lists(_mutations, min_size=1, max_size=2).map(tuple)
_noise = st.binary(max_size=400)


@st.composite
def event_recipes(draw: st.DrawFn) -> EventRecipe:
    kind = draw(_kinds)
    overrides: list[tuple[str, Any]] = []
    for _ in range(draw(_override_counts)):
        name = draw(_attributes)
        overrides.append((name, draw(_times if name == "time" else _odd_values)))
    if draw(_one_in_ten) == 0:
        overrides.append(("time", draw(_times)))
    extensions: list[tuple[str, Any]] = []
    if draw(_one_in_ten) < 2:
        extensions.append((draw(_extension_names), draw(_extension_values)))
    text = draw(_text) if kind in ("cancelled", "other-data") else ""
    return EventRecipe(kind, tuple(overrides), tuple(extensions), text)


_events = event_recipes()
_batch_events = st.lists(_events, min_size=1, max_size=4).map(tuple)


@st.composite
def recipes(draw: st.DrawFn) -> Recipe:
    """One fuzz case's recipe: about 35 % structured, 30 % binary, 20 % batch, 15 % garbage (mutated or noise)."""
    mode = draw(_modes)
    events = draw(_batch_events) if mode == "batch" else (draw(_events),)
    values: dict[str, Any] = {"mode": mode, "events": events, "auth": draw(_auth)}
    trouble = draw(_troubles)
    if "bytes" in trouble:
        values["bad_bytes"] = draw(_bad_bytes)
        values["bad_in"] = draw(_binary_places if mode == "binary" else _json_places)
        if mode != "binary":
            values["whole_body"] = draw(_whole_bodies)
    if "nesting" in trouble:
        values["nesting"] = draw(_nestings)
    if "size" in trouble:
        values["pad"] = draw(_pads)
    if "framing" in trouble:
        framing = draw(_framings)
        values["framing"] = framing
        values["chunk_sizes"] = draw(_chunk_sizes)
        if framing in _framing_details:
            values["framing_detail"] = draw(_framing_details[framing])
    if "headers" in trouble:
        mutation = draw(_header_mutations)
        values["header_mutation"] = mutation
        if mutation in _header_details:
            values["header_detail"] = draw(_header_details[mutation])
    if mode == "structured":
        values["content_type"] = draw(_structured_types)
    elif mode == "batch":
        values["content_type"] = BATCH
        values["batch_extra"] = draw(_batch_extras)
    elif mode == "binary":
        values["content_type"] = draw(_binary_types)
    else:  # garbage: a valid structured request, mutated, or noise
        values["mutations"] = draw(_mutation_lists)
        if any(op == "noise-only" for op, _, _ in values["mutations"]):
            values["noise"] = draw(_noise)
    return Recipe(**values)


# -------------------------------------------------------------------------------------------------------- rendering


def event_id(number: int, index: int) -> str:
    return f"fz-{number}-{index}"


def _data(kind: str, event: EventRecipe) -> Any:
    if kind == "placed":
        return {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 990, "currency": "EUR"}
    if kind == "cancelled":
        return {"order_id": "o-1", "reason": event.text[:400]}
    return {"anything": event.text}


def _mapping(event: EventRecipe, number: int, index: int) -> dict[str, Any]:
    types = {"placed": PLACED, "cancelled": CANCELLED, "unknown-type": "com.example.nobody"}
    mapping: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id(number, index),
        "source": SOURCE,
        "type": types.get(event.kind, PLACED),
        "datacontenttype": "application/json",
        "data": _data(event.kind, event),
    }
    for name, value in event.overrides:
        if value == MISSING:
            mapping.pop(name, None)
        else:
            mapping[name] = value
    for name, value in event.extensions:
        mapping[name] = value
    return mapping


def _nested(nesting: tuple[str, int]) -> bytes:
    shape, depth = nesting
    if shape == "array":
        return b"[" * depth + b"]" * depth
    if shape == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    half = depth // 2
    return b'[{"a":' * half + b"1" + b"}]" * half


def _json(mapping: Any, recipe: Recipe, where: str) -> bytes:
    """JSON text of `mapping` with the recipe's bad bytes, nesting and padding spliced in at their places."""
    text = json.dumps(mapping, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    if recipe.bad_bytes is not None and recipe.bad_in == where:
        text = text.replace(BAD.encode(), recipe.bad_bytes)
    else:
        text = text.replace(BAD.encode(), b"")
    if recipe.nesting is not None:
        text = text.replace(b'"' + NEST.encode() + b'"', _nested(recipe.nesting), 1)
    if recipe.pad:
        text = text.replace(PAD.encode(), b"p" * recipe.pad, 1)
    return text


def _decorated(mapping: dict[str, Any], recipe: Recipe, first: bool = True) -> dict[str, Any]:
    """Marks where the recipe's bytes, nesting and padding go (padding and nesting in the first event only); _json
    puts them in."""
    if recipe.bad_bytes is not None:
        if recipe.bad_in == "data" and isinstance(mapping.get("data"), dict):
            mapping["data"] = {**mapping["data"], "order_id": f"o{BAD}1"}
        elif recipe.bad_in == "subject":
            mapping["subject"] = f"s{BAD}"
        elif recipe.bad_in == "id" and isinstance(mapping.get("id"), str):
            mapping["id"] = mapping["id"] + BAD
        elif recipe.bad_in == "key":
            mapping[f"k{BAD}"] = "v"
    if recipe.nesting is not None and first:
        if isinstance(mapping.get("data"), dict):
            mapping["data"] = {**mapping["data"], "nested": NEST}
        else:
            mapping["data"] = NEST
    if recipe.pad and first:
        mapping["subject"] = PAD
    return mapping


def _auth_headers(recipe: Recipe) -> list[tuple[str, str]]:
    return {
        "good": [("Authorization", f"Bearer {TOKEN}")],
        "missing": [],
        "wrong": [("Authorization", "Bearer wrong-token")],
        "basic": [("Authorization", "Basic YWRtaW46YWRtaW4=")],
        "lower-case-scheme": [("Authorization", f"bearer {TOKEN}")],
    }[recipe.auth]


def _binary_value(value: Any, recipe: Recipe, name: str) -> bytes:
    text = value if isinstance(value, str) else json.dumps(value)
    encoded = quote(text, safe=" !#$&'()*+,/:;=?@[]~").encode("ascii")
    if recipe.bad_bytes is not None and name == "subject":
        if recipe.bad_in == "header":
            encoded += recipe.bad_bytes
        elif recipe.bad_in == "percent":
            encoded += b"".join(b"%%%02x" % byte for byte in recipe.bad_bytes) + b"%zz%"
    return encoded


def _body_and_headers(recipe: Recipe, number: int) -> tuple[bytes, list[tuple[Any, Any]], list[str]]:
    """The body, the mode's headers (not framing, auth or host) and the ids a 2xx stores."""
    headers: list[tuple[Any, Any]] = []
    if recipe.mode == "binary":
        event = recipe.events[0]
        mapping = _decorated(_mapping(event, number, 0), recipe)
        data = mapping.pop("data", None)
        mapping.pop("datacontenttype", None)
        for name, value in mapping.items():
            if value == PAD:  # binary mode: the padding goes in a ce- header, the 16 MiB ce-subject
                headers.append((b"ce-subject", b"p" * recipe.pad))
            else:
                headers.append((f"ce-{name}".encode(), _binary_value(value, recipe, name)))
        if recipe.bad_bytes is not None and "subject" not in mapping:
            headers.append((b"ce-subject", _binary_value("s", recipe, "subject")))
        if recipe.content_type is not None:
            headers.append((b"Content-Type", recipe.content_type.encode()))
        body = b"" if data is None else _json(data, recipe, "data")
        return body, headers, [event_id(number, 0)] if mapping.get("id") == event_id(number, 0) else []
    if recipe.content_type is not None:
        headers.append(("Content-Type", recipe.content_type))
    if recipe.mode == "batch":
        members = [
            _decorated(_mapping(event, number, index), recipe, first=index == 0)
            for index, event in enumerate(recipe.events)
        ]
        ids = [member["id"] for index, member in enumerate(members) if member.get("id") == event_id(number, index)]
        if recipe.batch_extra == "many":
            members += [_mapping(EventRecipe("placed"), number, 1000 + n) for n in range(1001)]
        body_value: Any = members
        if recipe.batch_extra == "members-not-objects":
            body_value = [*members, 1, "x", [], None]
        elif recipe.batch_extra == "not-an-array":
            body_value = members[0]
        elif recipe.batch_extra == "empty":
            body_value, ids = [], []
        body = _json(body_value, recipe, recipe.bad_in)
    else:
        mapping = _decorated(_mapping(recipe.events[0], number, 0), recipe)
        ids = [event_id(number, 0)] if mapping.get("id") == event_id(number, 0) else []
        body = _json(mapping, recipe, recipe.bad_in)
    if recipe.whole_body == "utf-16":
        body = body.decode("utf-8", "replace").encode("utf-16")
    elif recipe.whole_body == "bom":
        body = b"\xef\xbb\xbf" + body
    elif recipe.whole_body == "latin-1":
        body = body.decode("utf-8", "replace").encode("latin-1", "replace")
    return body, headers, ids


def _apply_header_mutation(recipe: Recipe, headers: list[tuple[Any, Any]], target: str) -> tuple[list, str]:
    mutation, detail = recipe.header_mutation, recipe.header_detail
    if mutation == "dup-auth-same":
        headers += [("Authorization", f"Bearer {TOKEN}")] * 2
    elif mutation == "dup-auth-different":
        headers += [("Authorization", "Bearer wrong-token"), ("Authorization", f"Bearer {TOKEN}")]
    elif mutation == "dup-content-type":
        headers += [("Content-Type", "text/plain")]
    elif mutation == "dup-ce-type-same":
        headers += [("ce-type", PLACED), ("ce-type", PLACED)]
    elif mutation == "dup-ce-type-different":
        headers += [("ce-type", "com.example.nobody"), ("ce-type", CANCELLED)]
    elif mutation == "huge-header":
        headers += [("X-Pad", "h" * detail)]
    elif mutation == "many-headers":
        headers += _many_headers(detail)
    elif mutation == "non-latin1-value":
        headers += [("X-Text", detail.encode("utf-8", "surrogatepass"))]
    elif mutation == "non-latin1-name":
        headers += [(f"X-{detail}".encode("utf-8", "surrogatepass"), b"v")]
    elif mutation == "bad-name":
        headers += [(detail.encode("latin-1"), b"v")]
    elif mutation == "long-url":
        target = "/events?q=" + "u" * detail
    elif mutation == "query":
        target = "/events?x=1&y=%ff"
    elif mutation == "absolute-form":
        target = "http://127.0.0.1/events"
    elif mutation == "junk-prefer":
        headers += [("Prefer", "wait=abc, respond-async")]
    elif mutation == "connection-close":
        headers += [("Connection", "close")]
    return headers, target


@functools.cache
def _many_headers(count: int) -> list[tuple[str, str]]:
    return [(f"X-H{n}", "v") for n in range(count)]


def render(recipe: Recipe, number: int) -> Case:
    """The bytes of case `number` and what may come back: event ids are unique per case."""
    body, mode_headers, ids = _body_and_headers(recipe, number)
    target = "/events"
    headers: list[tuple[Any, Any]] = [("Host", "127.0.0.1"), *_auth_headers(recipe), *mode_headers]
    no_host = recipe.header_mutation == "no-host"
    if no_host:
        headers = headers[1:]
    headers, target = _apply_header_mutation(recipe, headers, target)
    kind = recipe.mode
    may_wait = False
    answers: int | None = 1
    allowed: tuple[int, ...] = ()
    framing, detail = recipe.framing, recipe.framing_detail
    if framing == "cl":
        payload = request("POST", target, headers, body)
    elif framing == "chunked":
        payload = request("POST", target, [*headers, ("Transfer-Encoding", "chunked")], b"", content_length=False)
        payload += chunked(body, list(recipe.chunk_sizes))
    else:
        kind += f" {framing}"
        payload, answers, may_wait, allowed = _framed(recipe, framing, detail, target, headers, body)
    if recipe.header_mutation:
        kind += f" {recipe.header_mutation}"
    if recipe.mode == "garbage":
        payload, answers, may_wait = _mutated(payload, recipe)
        ids = []
    clean = all(b"\r" not in _bytes(v) and b"\n" not in _bytes(v) and b"\r" not in _bytes(n) and b"\n" not in _bytes(n)
                for n, v in headers)
    keep_alive = framing in ("cl", "chunked") and recipe.mode != "garbage" and clean
    if recipe.header_mutation == "connection-close":
        keep_alive = False
    if b"transfer-encoding" in payload.split(b"\r\n\r\n", 1)[0].lower():
        allowed += (501,)
    first_line = payload.split(b"\r\n", 1)[0]
    if not first_line.endswith((b"HTTP/1.1", b"HTTP/1.0")):
        allowed += (505,)
    half_close = framing == "half-close"
    return Case(number, kind, payload, keep_alive, answers, may_wait, ids, allowed, half_close)


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _framed(
    recipe: Recipe, framing: str, detail: Any, target: str, headers: list[tuple[Any, Any]], body: bytes
) -> tuple[bytes, int | None, bool, tuple[int, ...]]:
    """A request whose framing is wrong or unusual: (payload, answers owed, may wait for a timeout, allowed 5xx)."""
    plain = request("POST", target, headers, b"", content_length=False)
    head = plain[:-2]  # up to the last header line's CRLF, so framing headers can follow
    if framing == "cl-absent":
        return head + b"\r\n" + body, None, False, ()
    if framing == "cl-short":
        return head + b"Content-Length: %d\r\n\r\n" % max(len(body) - detail, 0) + body, None, False, ()
    if framing == "cl-long":
        return head + b"Content-Length: %d\r\n\r\n" % (len(body) + detail) + body, None, True, ()
    if framing == "cl-dup-same":
        return head + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(body), len(body)) + body, 1, False, ()
    if framing == "cl-dup-different":
        return head + b"Content-Length: %d\r\nContent-Length: %s\r\n\r\n" % (len(body), detail.encode()) + body, \
            None, True, ()
    if framing == "cl-bad":
        return head + b"Content-Length: " + detail.encode() + b"\r\n\r\n" + body, None, True, ()
    chunks = chunked(body, list(recipe.chunk_sizes))
    te = b"Transfer-Encoding: chunked\r\n"
    if framing == "te-bad-size":
        return head + te + b"\r\n" + detail + b"\r\n" + body[:5] + b"\r\n0\r\n\r\n", None, True, ()
    if framing == "te-no-last":
        return head + te + b"\r\n" + chunks[: -len(b"0\r\n\r\n")], None, True, ()
    if framing == "te-extensions":
        return head + te + b"\r\n" + chunks.replace(b"\r\n", b";name=value\r\n", 1), 1, False, ()
    if framing == "te-trailer":
        return head + te + b"\r\n" + chunks[:-2] + b"X-Trailer: t\r\n\r\n", 1, False, ()
    if framing == "te-and-cl":
        return head + te + b"Content-Length: %d\r\n\r\n" % len(body) + chunks, None, True, ()
    if framing == "te-coding":
        return head + b"Transfer-Encoding: " + detail.encode() + b"\r\n\r\n" + chunks, None, True, ()
    if framing == "te-dup":
        return head + te + te + b"\r\n" + chunks, None, True, ()
    if framing == "pipeline":
        one = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        return one * detail, detail, False, ()
    if framing == "pipeline-garbage":
        one = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        return one * (detail - 1) + b"\x16\x03\x01 garbage \xff\r\n\r\n", None, False, ()
    if framing == "http10":
        return plain.replace(b"HTTP/1.1", b"HTTP/1.0", 1)[:-2] + b"Content-Length: %d\r\n\r\n" % len(body) + body, 1, \
            False, ()
    if framing == "half-close":  # the request whole, then the client's FIN: it is still owed its answer
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body, 1, False, ()
    if framing == "expect-continue":
        return head + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body) + body, 1, False, ()
    if framing == "bare-lf":
        return (head + b"Content-Length: %d\r\n\r\n" % len(body)).replace(b"\r\n", b"\n") + body, None, True, ()
    if framing == "obs-fold":
        return head + b"X-Folded: a\r\n  b\r\nContent-Length: %d\r\n\r\n" % len(body) + body, None, True, ()
    raise AssertionError(framing)


def _mutated(payload: bytes, recipe: Recipe) -> tuple[bytes, int | None, bool]:
    data = bytearray(payload)
    for op, where, extra in recipe.mutations:
        position = min(int(where * len(data)), max(len(data) - 1, 0))
        if op == "flip" and data:
            data[position] ^= extra[0] or 0x01
        elif op == "insert":
            data[position:position] = extra
        elif op == "delete":
            del data[position : position + len(extra)]
        elif op == "duplicate":
            data[position:position] = data[position : position + 16]
        elif op == "truncate":
            del data[position:]
        elif op == "lf":
            data = bytearray(bytes(data).replace(b"\r\n", b"\n"))
        elif op == "noise-only":
            data = bytearray(recipe.noise or extra)
    # anything may now be incomplete in a way the server can only find out by waiting
    return bytes(data), None, True
