"""CloudEvents 1.0 over HTTP: structured, binary and batch modes, parsed into one event shape.

Parsing is done here with msgspec rather than with the cloudevents SDK because this is the hot path
(docs/performance.md); the SDK is what the tests use as the client, so both sides of the spec are exercised.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import msgspec

SPEC_VERSION = "1.0"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
REQUIRED = ("id", "source", "specversion", "type")
OPTIONAL = ("subject", "time", "datacontenttype", "dataschema")
EXTENSION_NAME = re.compile(r"^[a-z0-9]+$")
ORDERING_EXTENSION = "partitionkey"

_decode_json = msgspec.json.Decoder().decode
# a batch's members are kept as raw JSON first: each is stored as sent (see parse_batch)
_decode_batch = msgspec.json.Decoder(list[msgspec.Raw]).decode
_encode_json = msgspec.json.Encoder().encode


class RejectionReason(Enum):
    """Why a request is refused: its `events_rejected_total{reason}` label (docs/service-contract.md) and the HTTP
    status it is answered with."""

    UNAUTHORIZED = ("unauthorized", 401)
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
    finer code clients read) and the headers the answer needs. Counted once, where ingress answers it."""

    def __init__(
        self,
        reason: RejectionReason,
        error: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.status = reason.status
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
        problems["time"] = "must be an RFC 3339 timestamp with a time zone"
    extensions: dict[str, Any] = {}
    for name, value in mapping.items():
        if name in REQUIRED or name in OPTIONAL or name == "data":
            continue
        if not EXTENSION_NAME.match(name):
            problems[name] = "extension names are lower-case letters and digits only"
        elif value is not None and (not isinstance(value, str | int | bool)):
            problems[name] = "extension values must be strings, integers or booleans"
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


class _PlainEvent(msgspec.Struct, forbid_unknown_fields=True):
    """An event with no attributes but the spec's own and the ordering extension, typed as event_from_mapping checks
    them: most events are this, and msgspec decodes and checks one from its JSON in one call, where the checks in
    Python were a third of what a batch cost (docs/performance.md, run 11)."""

    id: Annotated[str, msgspec.Meta(min_length=1)]
    source: Annotated[str, msgspec.Meta(min_length=1)]
    type: Annotated[str, msgspec.Meta(min_length=1)]
    specversion: Literal["1.0"]
    subject: str | None = None
    time: str | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: Any = None
    partitionkey: str | int | bool | None = None


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
    if plain is None or (plain.time is not None and not _is_rfc3339(plain.time)):
        return event_from_mapping(_parse_json(body), index)
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
    except msgspec.DecodeError as error:
        raise EventRejected(
            RejectionReason.MALFORMED, "malformed_json", f"the body is not valid JSON: {error}"
        ) from None
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
    """Binary mode: attributes in ce-* headers (percent-encoded), the body is the data."""
    mapping: dict[str, Any] = {name[3:]: unquote(value) for name, value in headers.items() if name.startswith("ce-")}
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


def _parse_json(body: bytes) -> Any:
    try:
        return _decode_json(body)
    except msgspec.DecodeError as error:
        raise EventRejected(
            RejectionReason.MALFORMED, "malformed_json", f"the body is not valid JSON: {error}"
        ) from None


def _is_rfc3339(value: str) -> bool:
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


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
