"""CloudEvents 1.0 over HTTP: structured, binary and batch modes, parsed into one event shape.

Parsing is done here with msgspec rather than with the cloudevents SDK because this is the hot path
(docs/performance.md); the SDK is what the tests use as the client, so both sides of the spec are exercised.
"""

from __future__ import annotations

import re
from enum import Enum
from types import GenericAlias
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import unquote_to_bytes

import msgspec

SPEC_VERSION = "1.0"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
REQUIRED = ("id", "source", "specversion", "type")
OPTIONAL = ("subject", "time", "datacontenttype", "dataschema")
EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")  # matched whole (fullmatch): `$` would let a final newline through
ORDERING_EXTENSION = "partitionkey"
INTEGER_MIN, INTEGER_MAX = -(2**31), 2**31 - 1  # the CloudEvents Integer type
# How deep `data` may nest arrays and objects: far below where decoding or encoding it would exhaust the stack
# (msgspec gives up near 1,000 levels, less when the stack is already deep), so no later step can.
MAX_DATA_DEPTH = 64

_decode_json = msgspec.json.Decoder().decode
# a batch's members are kept as raw JSON first: each is stored as sent (see parse_batch)
_decode_batch = msgspec.json.Decoder(list[msgspec.Raw]).decode
_encode_json = msgspec.json.Encoder().encode


class RejectionReason(Enum):
    """Why a request is refused: its `events_rejected_total{reason}` label (docs/service-contract.md) and the HTTP
    status it is answered with."""

    UNAUTHORIZED = ("unauthorized", 401)
    BAD_SIGNATURE = ("bad_signature", 401)  # auth.py: missing, wrong or stale webhook signature
    RATE_LIMITED = ("rate_limited", 429)  # auth.py: over SERVICE_RATE_LIMIT_PER_SECOND for its token
    DRAINING = ("draining", 503)
    BACKLOG_FULL = ("backlog_full", 503)
    UNSUPPORTED_MEDIA_TYPE = ("unsupported_media_type", 415)
    TOO_LARGE = ("too_large", 413)
    MALFORMED = ("malformed", 400)
    INVALID_ATTRIBUTES = ("invalid_attributes", 400)
    UNKNOWN_TYPE = ("unknown_type", 422)
    INVALID_DATA = ("invalid_data", 422)

    def __init__(self, label: str, status: int) -> None:
        self.label = label
        self.status = status


class EventRejected(Exception):
    """A request that cannot be accepted: its reason, the reason's HTTP status, a JSON-ready body (`error` is the
    finer code clients read) and the headers the answer needs. Counted once, where ingress answers it.

    `status` overrides the reason's for the rare answer HTTP prescribes its own code for (501 for a transfer coding
    the service cannot decode), so it is still counted under a reason."""

    def __init__(
        self,
        reason: RejectionReason,
        error: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        status: int | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.status = reason.status if status is None else status
        self.body = {"error": error, "detail": detail, **extra}
        self.headers = headers or {}


class CloudEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One validated event. `data` is still plain JSON; the handler's schema is applied at ingress and dispatch."""

    id: str
    source: str
    type: str
    specversion: str = SPEC_VERSION
    subject: str | None = None
    time: str | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: Any = None
    extensions: dict[str, Any] = {}

    @property
    def ordering_key(self) -> str | None:
        """Events with the same key are handled strictly in arrival order, per handler."""
        key = self.extensions.get(ORDERING_EXTENSION)
        return str(key) if key is not None else self.subject

    def to_json(self) -> bytes:
        """The structured-mode JSON form, as stored and as replayed."""
        return _encode_json(self.to_mapping())

    def to_mapping(self) -> dict[str, Any]:
        mapping: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
        }
        for name in OPTIONAL:
            value = getattr(self, name)
            if value is not None:
                mapping[name] = value
        mapping.update(self.extensions)
        if self.data is not None:
            mapping["data"] = self.data
        return mapping


def event_from_mapping(mapping: Any, index: int | None = None) -> CloudEvent:
    """Validate one event's attributes (structured or batch member) and build the event."""
    where: dict[str, Any] = {} if index is None else {"index": index}
    if not isinstance(mapping, dict):
        raise EventRejected(RejectionReason.MALFORMED, "malformed_event", "an event must be a JSON object", **where)
    if "data_base64" in mapping:
        raise EventRejected(
            RejectionReason.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_data",
            "data_base64 (binary data) is not supported: send JSON data",
            **where,
        )
    if _nested_deeper(mapping.get("data"), MAX_DATA_DEPTH):
        raise _too_deep(where)
    problems: dict[str, str] = {}
    for name in REQUIRED:
        value = mapping.get(name)
        if value is None:
            problems[name] = "missing"
        elif not isinstance(value, str) or not value:
            problems[name] = "must be a non-empty string"
    if "specversion" not in problems and mapping["specversion"] != SPEC_VERSION:
        problems["specversion"] = f"must be {SPEC_VERSION!r}"
    for name in OPTIONAL:
        value = mapping.get(name)
        if value is not None and not isinstance(value, str):
            problems[name] = "must be a string"
    time = mapping.get("time")
    if isinstance(time, str) and not _is_rfc3339(time):
        problems["time"] = "must be an RFC 3339 date-time (section 5.6), such as 2026-12-01T18:00:00Z"
    extensions: dict[str, Any] = {}
    for name, value in mapping.items():
        if name in REQUIRED or name in OPTIONAL or name == "data":
            continue
        if not EXTENSION_NAME.fullmatch(name):
            problems[name] = "extension names are 1 to 20 lower-case letters and digits"
        elif value is not None and (not isinstance(value, str | int | bool)):
            problems[name] = "extension values must be strings, integers or booleans"
        elif isinstance(value, int) and not INTEGER_MIN <= value <= INTEGER_MAX:
            problems[name] = f"integers must be from {INTEGER_MIN} to {INTEGER_MAX} (32 bits)"
        elif value is not None:
            extensions[name] = value
    if problems:
        names = ", ".join(sorted(problems))
        raise EventRejected(
            RejectionReason.INVALID_ATTRIBUTES,
            "invalid_attributes",
            f"invalid CloudEvents attributes: {names}",
            attributes=problems,
            **where,
        )
    return CloudEvent(
        id=mapping["id"],
        source=mapping["source"],
        type=mapping["type"],
        specversion=mapping["specversion"],
        subject=mapping.get("subject"),
        time=time,
        datacontenttype=mapping.get("datacontenttype"),
        dataschema=mapping.get("dataschema"),
        data=mapping.get("data"),
        extensions=extensions,
    )


def _nested_json(levels: int) -> Any:
    """The type of JSON values that nest arrays and objects at most `levels` deep, for msgspec to check as it
    decodes."""
    scalar: Any = str | int | float | bool | None
    value = scalar
    for _ in range(levels):
        value = scalar | GenericAlias(list, (value,)) | GenericAlias(dict, (str, value))
    return value


# The quick way checks data's depth while decoding it, up to the depth nearly all data stays within; deeper data
# takes the long way, which measures it. (One type for all MAX_DATA_DEPTH levels cannot be built: the union's size
# grows exponentially with each level; 6 levels take 1 ms at import, 8 take 20 ms.)
_PLAIN_DATA_DEPTH = 6
if TYPE_CHECKING:
    _PlainData = Any
else:
    _PlainData = _nested_json(_PLAIN_DATA_DEPTH)
_Integer = Annotated[int, msgspec.Meta(ge=INTEGER_MIN, le=INTEGER_MAX)]


class _PlainEvent(msgspec.Struct, forbid_unknown_fields=True):
    """An event with no attributes but the spec's own and the ordering extension, typed as event_from_mapping checks
    them: most events are this, and msgspec decodes and checks one from its JSON in one call, where the checks in
    Python were a third of what a batch cost (docs/performance.md, run 11). Its data nests at most
    _PLAIN_DATA_DEPTH levels, checked in the same call: measuring it afterwards cost 7-10 % of an event.
    """

    id: Annotated[str, msgspec.Meta(min_length=1)]
    source: Annotated[str, msgspec.Meta(min_length=1)]
    type: Annotated[str, msgspec.Meta(min_length=1)]
    specversion: Literal["1.0"]
    subject: str | None = None
    time: str | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: _PlainData = None
    partitionkey: str | _Integer | bool | None = None


_decode_plain = msgspec.json.Decoder(_PlainEvent).decode


def event_from_json(body: bytes | msgspec.Raw, index: int | None = None) -> CloudEvent:
    """One event (structured mode, or a batch member) from its JSON: what event_from_mapping accepts, and nothing else.

    An event that is not plain (other extensions, data_base64, or anything that fails the plain checks) takes the
    long way, so each rejection is worded in one place.
    """
    try:
        plain: _PlainEvent | None = _decode_plain(body)
    except msgspec.MsgspecError:
        plain = None
    except (UnicodeDecodeError, RecursionError) as error:
        raise _undecodable(error, body, index) from None
    if plain is None or (plain.time is not None and not _is_rfc3339(plain.time)):
        return event_from_mapping(_parse_json(body, index), index)
    return CloudEvent(
        id=plain.id,
        source=plain.source,
        type=plain.type,
        specversion=plain.specversion,
        subject=plain.subject,
        time=plain.time,
        datacontenttype=plain.datacontenttype,
        dataschema=plain.dataschema,
        data=plain.data,
        extensions={} if plain.partitionkey is None else {ORDERING_EXTENSION: plain.partitionkey},
    )


def parse_structured(body: bytes) -> CloudEvent:
    return event_from_json(body)


def parse_batch(body: bytes, max_events: int) -> tuple[list[CloudEvent], list[bytes]]:
    """The batch's events, and each member's JSON as sent: that is what gets stored, so nothing is encoded again."""
    try:
        members = _decode_batch(body)
    except msgspec.ValidationError:
        raise EventRejected(
            RejectionReason.MALFORMED, "malformed_batch", "a batch must be a JSON array of events"
        ) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as error:
        raise _undecodable(error, body) from None
    if len(members) > max_events:
        raise EventRejected(
            RejectionReason.TOO_LARGE,
            "batch_too_large",
            f"a batch holds at most {max_events} events, got {len(members)}",
            max_events=max_events,
        )
    events = [event_from_json(member, index) for index, member in enumerate(members)]
    return events, [bytes(member) for member in members]


def parse_binary(headers: dict[str, str], body: bytes) -> CloudEvent:
    """Binary mode: attributes in ce-* headers, the body is the data.

    `headers` are as received, decoded as latin-1 (one character a byte). Each ce-* value is decoded as the HTTP
    binding asks (section 3.1.3.2): a double-quoted string is unquoted, then one round of percent-decoding, and what
    results must be UTF-8.
    """
    mapping: dict[str, Any] = {
        name[3:]: _header_attribute(name, value) for name, value in headers.items() if name.startswith("ce-")
    }
    if "data" in mapping:
        raise EventRejected(
            RejectionReason.INVALID_ATTRIBUTES,
            "invalid_attributes",
            "invalid CloudEvents attributes: data",
            attributes={"data": "in binary mode the data is the body, never a ce-data header"},
        )
    content_type = headers.get("content-type")
    if content_type:
        if not is_json_media_type(content_type):
            raise EventRejected(
                RejectionReason.UNSUPPORTED_MEDIA_TYPE,
                "unsupported_data",
                f"data of content type {content_type!r} is not supported: send JSON data",
            )
        mapping["datacontenttype"] = content_type
    if body:
        mapping["data"] = _parse_json(body)
    return event_from_mapping(mapping)


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _parse_json(body: bytes | msgspec.Raw, index: int | None = None) -> Any:
    try:
        return _decode_json(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as error:
        raise _undecodable(error, body, index) from None


def _undecodable(error: Exception, body: bytes | msgspec.Raw, index: int | None = None) -> EventRejected:
    """The 400 for JSON msgspec could not decode. Invalid UTF-8 (in a string msgspec raises UnicodeDecodeError,
    elsewhere the JSON is malformed) and nesting deeper than msgspec's recursion limit each get their own code."""
    where: dict[str, Any] = {} if index is None else {"index": index}
    if isinstance(error, RecursionError):
        return _too_deep(where)
    if isinstance(error, UnicodeDecodeError) or not _is_utf8(body):
        return EventRejected(
            RejectionReason.MALFORMED, "invalid_utf8", "the JSON is not valid UTF-8 (RFC 8259, section 8.1)", **where
        )
    return EventRejected(RejectionReason.MALFORMED, "malformed_json", f"the body is not valid JSON: {error}", **where)


def _is_utf8(body: bytes | msgspec.Raw) -> bool:
    try:
        bytes(body).decode()
    except UnicodeDecodeError:
        return False
    return True


def _too_deep(where: dict[str, Any]) -> EventRejected:
    return EventRejected(
        RejectionReason.MALFORMED,
        "nesting_too_deep",
        f"data nests arrays and objects more than {MAX_DATA_DEPTH} levels deep",
        max_depth=MAX_DATA_DEPTH,
        **where,
    )


def _nested_deeper(value: Any, levels: int) -> bool:
    """Whether `value` nests arrays and objects more than `levels` deep; it recurses at most `levels` + 1 calls."""
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    return levels == 0 or any(_nested_deeper(child, levels - 1) for child in children)


# a whole quoted-string of RFC 9110 section 5.6.4, and one quoted-pair in it
_QUOTED_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def _header_attribute(name: str, value: str) -> str:
    """A ce-* header's value as the attribute's string (HTTP binding, section 3.1.3.2)."""
    if '"' in value:  # older senders quoted values with spaces instead of percent-encoding them
        value = _QUOTED_STRING.sub(lambda quoted: _QUOTED_PAIR.sub(r"\1", quoted[1]), value)
    if "%" not in value and value.isascii():
        return value
    try:
        # the header's bytes (latin-1 gives them back one for one), percent-decoded once; raw non-ASCII bytes are
        # taken as UTF-8 too, so what the client meant is kept rather than read as latin-1
        return unquote_to_bytes(value.encode("latin-1")).decode("utf-8")
    except UnicodeDecodeError:
        raise EventRejected(
            RejectionReason.MALFORMED,
            "invalid_utf8",
            f"the {name} header is not UTF-8 once percent-decoded (CloudEvents HTTP binding, section 3.1.3.2)",
            header=name,
        ) from None


# RFC 3339 section 5.6's date-time with the ranges of its fields: months 01-12, days to 31, hours to 23, minutes to
# 59, seconds to 60, offsets to 23:59; "T" and "Z" also in lower case, as section 5.6 allows; ASCII digits only
_DATE_TIME = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)"
    r"(?:\.[0-9]+)?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_rfc3339(value: str) -> bool:
    """RFC 3339's grammar and ranges (the regex), the days of the month (leap years too), and a leap second (:60)
    only in the last minute of a UTC day. Its fields sit at fixed places, so they are read by position."""
    if _DATE_TIME.fullmatch(value) is None:
        return False
    day = value[8:10]
    if day > "28" and int(day) > _days_in_month(int(value[:4]), int(value[5:7])):
        return False
    if value[17:19] == "60":
        sign = value[-6]  # of a numeric offset; a "Z" leaves a digit here
        offset = (int(value[-5:-3]) * 60 + int(value[-2:])) * (-1 if sign == "-" else 1) if sign in "+-" else 0
        return (int(value[11:13]) * 60 + int(value[14:16]) - offset) % (24 * 60) == 23 * 60 + 59
    return True


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        return 28
    return _DAYS_IN_MONTH[month]


def decode_stored(body: bytes) -> CloudEvent:
    """Rebuild an event from its stored structured JSON.

    No second validation: only events that passed event_from_mapping are stored, and this runs once per delivery.
    """
    mapping = _decode_json(body)
    return CloudEvent(
        id=mapping.pop("id"),
        source=mapping.pop("source"),
        type=mapping.pop("type"),
        specversion=mapping.pop("specversion"),
        subject=mapping.pop("subject", None),
        time=mapping.pop("time", None),
        datacontenttype=mapping.pop("datacontenttype", None),
        dataschema=mapping.pop("dataschema", None),
        data=mapping.pop("data", None),
        # what is left are the extension attributes; a null one was dropped at ingress, as here
        extensions={name: value for name, value in mapping.items() if value is not None},
    )
