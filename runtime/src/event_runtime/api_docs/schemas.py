"""The JSON Schemas both documents share: each event type's data (from its msgspec schema) and its whole event.

Component names: the data schemas keep msgspec's names (the Struct's); the runtime's own schemas start with
`runtime.`, which no Python class name can, so the two never collide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from ..cloudevents import EXTENSION_NAME, INTEGER_MAX, INTEGER_MIN, SPEC_VERSION
from ..registry import HandlerRegistry

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")  # component and channel keys of both specs are [A-Za-z0-9._-]+


def component_key(name: str) -> str:
    return _KEY_UNSAFE.sub("_", name) or "_"


def unique_keys(names: list[str]) -> dict[str, str]:
    """name -> a component key, distinct for distinct names even where their safe forms would coincide."""
    keys: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        key = base = component_key(name)
        counter = 2
        while key in taken:
            key, counter = f"{base}-{counter}", counter + 1
        keys[name] = key
        taken.add(key)
    return keys


@dataclass(frozen=True)
class EventSchemas:
    """Per event type: its component key, its data schema (inline or a $ref), whether data is required; plus the
    components those refer to."""

    keys: dict[str, str]  # event type -> key
    data: dict[str, dict[str, Any]]  # event type -> data schema
    data_required: dict[str, bool]
    components: dict[str, dict[str, Any]]  # component key -> schema (data schemas, then `runtime.*` events)

    def event_ref(self, key: str, ref_prefix: str) -> dict[str, str]:
        """A $ref to the whole-event schema of the type whose key is `key`."""
        return {"$ref": f"{ref_prefix}{self.event_component(key)}"}

    @staticmethod
    def event_component(key_or_type: str) -> str:
        return f"runtime.event.{component_key(key_or_type)}"


def event_schemas(registry: HandlerRegistry, ref_prefix: str, extra_types: list[str] | None = None) -> EventSchemas:
    """The schemas of every registered type, and of `extra_types` (declared follow-ups nobody handles: their data
    is any JSON)."""
    types = registry.event_types
    schema_types = [registry.schema_for(t) for t in types]
    inline, components = msgspec.json.schema_components(schema_types, ref_template=ref_prefix + "{name}")
    clashing = sorted(name for name in components if name.startswith("runtime."))
    if clashing:  # cannot happen for classes, but schema_components names other things too
        raise ValueError(f"data schema names {clashing} collide with the runtime's own")
    everything = [*types, *(t for t in extra_types or [] if t not in types)]
    keys = unique_keys(everything)
    data: dict[str, dict[str, Any]] = {t: schema for t, schema in zip(types, inline, strict=True)}
    required = {t: _data_required(registry, t) for t in types}
    for extra in everything[len(types) :]:
        data[extra] = {"description": "no handler subscribes to this type: publishing it fails for good"}
        required[extra] = False
    all_components: dict[str, dict[str, Any]] = dict(components)
    all_components[ATTRIBUTES] = attributes_schema()
    for event_type in everything:
        all_components[EventSchemas.event_component(keys[event_type])] = event_schema(
            event_type, data[event_type], required[event_type]
        )
    return EventSchemas(keys, data, required, all_components)


ATTRIBUTES = "runtime.CloudEventAttributes"


def _data_required(registry: HandlerRegistry, event_type: str) -> bool:
    """Whether an event of this type must carry data: its schema refuses `null` (an absent `data`)."""
    subscriptions = registry.for_type(event_type)
    try:
        subscriptions[0].decode(None)
    except msgspec.ValidationError:
        return True
    return False


def _attribute_properties() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "specversion": {"const": SPEC_VERSION, "description": "CloudEvents version"},
        "id": {"type": "string", "minLength": 1, "description": "unique per source: (source, id) is de-duplicated"},
        "source": {"type": "string", "minLength": 1, "description": "URI-reference of the event's producer"},
        "type": {"type": "string", "minLength": 1, "description": "the event type: which handlers see it"},
        "subject": {
            **text,
            "description": "the ordering key when there is no partitionkey: same key, handled in arrival order",
        },
        "time": {
            **text,
            "format": "date-time",
            "description": "RFC 3339 section 5.6 date-time (docs/service-contract.md lists what is refused)",
        },
        "datacontenttype": {**text, "description": "JSON only: application/json or a +json type"},
        "dataschema": {**text, "description": "URI of the data's schema (not fetched)"},
        "partitionkey": {
            "anyOf": [
                {"type": "string"},
                {"type": "integer", "minimum": INTEGER_MIN, "maximum": INTEGER_MAX},
                {"type": "boolean"},
            ],
            "description": "CloudEvents partitioning extension: the ordering key, before subject",
        },
        "traceparent": {**text, "description": "CloudEvents distributed-tracing extension (W3C trace context)"},
    }


def _extension_value() -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "string"},
            {"type": "integer", "minimum": INTEGER_MIN, "maximum": INTEGER_MAX},
            {"type": "boolean"},
            {"type": "null"},
        ],
        "description": "an extension attribute: String, Integer (32 bits) or Boolean; null is absent",
    }


def _name_pattern() -> str:
    return f"^{EXTENSION_NAME.pattern}$"


def attributes_schema() -> dict[str, Any]:
    """Any CloudEvent this service parses, whatever its type (structured mode, or a batch member)."""
    return {
        "title": "CloudEvent",
        "description": "A CloudEvents 1.0 event in structured mode. Any other attribute is an extension.",
        "type": "object",
        "properties": {**_attribute_properties(), "data": {"description": "the event's JSON data"}},
        "required": ["specversion", "id", "source", "type"],
        "propertyNames": {"pattern": _name_pattern()},
        "additionalProperties": _extension_value(),
    }


def event_schema(event_type: str, data: dict[str, Any], data_required: bool) -> dict[str, Any]:
    """An event of one type: the CloudEvents attributes with `type` fixed, and its data schema."""
    properties = _attribute_properties()
    properties["type"] = {"const": event_type}
    properties["data"] = data  # nested at most MAX_DATA_DEPTH levels, then checked against it
    return {
        "title": event_type,
        "type": "object",
        "properties": properties,
        "required": ["specversion", "id", "source", "type", *(["data"] if data_required else [])],
        "propertyNames": {"pattern": _name_pattern()},
        "additionalProperties": _extension_value(),
    }
