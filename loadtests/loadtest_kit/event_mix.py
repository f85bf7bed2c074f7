"""The weighted mix of CloudEvents a load test sends, read from `event-mix.json`.

Each entry of the file names an event type, its weight in the mix, the data field that carries the ordering key
and a data sample whose string values may be generators:

- `"{int:LO:HI}"` a random integer in [LO, HI] (the whole string becomes a JSON number);
- `"{float:LO:HI}"` a random float in [LO, HI];
- `"{choice:A|B|C}"` one of the listed strings;
- `"{uuid}"` a random UUID;
- any other text is kept; generators inside a longer string (`"customer-{int:1:50}"`) are formatted into it.

The ordering key of an event is `ordering_key_format` (default `"key-{n}"`) with n drawn from
`range(ordering_keys)`; it is sent as the CloudEvents `subject` and written into `ordering_key_field` of the data.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MIX_FILE = Path(__file__).resolve().parent.parent / "event-mix.json"

_GENERATOR = re.compile(r"\{(int|float|choice|uuid)(?::([^{}]*))?\}")

ValueFactory = Callable[[random.Random], Any]


class EventMixError(ValueError):
    """The event-mix file is not usable; the message says which entry and why."""


@dataclass(frozen=True)
class EventKind:
    """One event type of the mix and how to make its data."""

    type: str
    weight: float
    source: str
    ordering_key_field: str | None
    ordering_key_format: str
    handlers: tuple[str, ...] | None
    make_data: ValueFactory


class EventMix:
    """Draws CloudEvents (as dicts) by weight from the kinds of the mix."""

    def __init__(self, kinds: list[EventKind], ordering_keys: int, rng: random.Random | None = None) -> None:
        if not kinds:
            raise EventMixError("the event mix has no events")
        if ordering_keys < 1:
            raise EventMixError(f"ordering_keys must be at least 1, got {ordering_keys}")
        self.kinds = kinds
        self.ordering_keys = ordering_keys
        self._weights = [kind.weight for kind in kinds]
        self._rng = rng or random.Random()  # noqa: S311  (test data, not secrets)

    @property
    def types(self) -> list[str]:
        return [kind.type for kind in self.kinds]

    def kind_of(self, event_type: str) -> EventKind | None:
        return next((kind for kind in self.kinds if kind.type == event_type), None)

    def next_event(self) -> dict[str, Any]:
        """A new event with a unique id, drawn by weight."""
        rng = self._rng
        kind = rng.choices(self.kinds, weights=self._weights)[0]
        ordering_key = kind.ordering_key_format.format(n=rng.randrange(self.ordering_keys))
        data = kind.make_data(rng)
        if kind.ordering_key_field:
            data[kind.ordering_key_field] = ordering_key
        return {
            "specversion": "1.0",
            "id": uuid.uuid4().hex,
            "source": kind.source,
            "type": kind.type,
            "subject": ordering_key,
            "datacontenttype": "application/json",
            "data": data,
        }


def load_event_mix(path: Path | str = DEFAULT_MIX_FILE, ordering_keys: int = 1000) -> EventMix:
    """Read and check an event-mix file; errors name the file and the entry."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise EventMixError(f"{path}: {error}") from error
    default_source = document.get("source", "/loadtests")
    entries = document.get("events")
    if not isinstance(entries, list) or not entries:
        raise EventMixError(f"{path}: 'events' must be a non-empty list")
    kinds = [_parse_kind(entry, default_source, f"{path}: events[{index}]") for index, entry in enumerate(entries)]
    return EventMix(kinds, ordering_keys)


def _parse_kind(entry: Any, default_source: str, where: str) -> EventKind:
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise EventMixError(f"{where}: needs a 'type' string")
    weight = entry.get("weight", 1)
    if not isinstance(weight, (int, float)) or weight <= 0:
        raise EventMixError(f"{where}: 'weight' must be a positive number")
    handlers = entry.get("handlers")
    if handlers is not None and not (isinstance(handlers, list) and all(isinstance(h, str) for h in handlers)):
        raise EventMixError(f"{where}: 'handlers' must be a list of handler names")
    data = entry.get("data", {})
    if not isinstance(data, dict):
        raise EventMixError(f"{where}: 'data' must be an object")
    return EventKind(
        type=entry["type"],
        weight=float(weight),
        source=entry.get("source", default_source),
        ordering_key_field=entry.get("ordering_key_field"),
        ordering_key_format=entry.get("ordering_key_format", "key-{n}"),
        handlers=tuple(handlers) if handlers is not None else None,
        make_data=_compile(data, f"{where}.data"),
    )


def _compile(sample: Any, where: str) -> ValueFactory:
    """Turn a data sample into a function that makes a fresh value each call (parsed once, not per event)."""
    if isinstance(sample, dict):
        fields = [(key, _compile(value, f"{where}.{key}")) for key, value in sample.items()]
        return lambda rng: {key: make(rng) for key, make in fields}
    if isinstance(sample, list):
        items = [_compile(value, f"{where}[{index}]") for index, value in enumerate(sample)]
        return lambda rng: [make(rng) for make in items]
    if isinstance(sample, str):
        return _compile_string(sample, where)
    return lambda rng: sample


def _compile_string(text: str, where: str) -> ValueFactory:
    whole = _GENERATOR.fullmatch(text)
    if whole:
        return _generator(whole.group(1), whole.group(2), where)
    parts: list[ValueFactory] = []
    position = 0
    for match in _GENERATOR.finditer(text):
        literal = text[position : match.start()]
        parts.append(lambda rng, literal=literal: literal)
        make = _generator(match.group(1), match.group(2), where)
        parts.append(lambda rng, make=make: str(make(rng)))
        position = match.end()
    if not parts:
        return lambda rng: text
    tail = text[position:]
    return lambda rng: "".join(part(rng) for part in parts) + tail


def _generator(name: str, argument: str | None, where: str) -> ValueFactory:
    try:
        if name == "int":
            low, high = (int(bound) for bound in (argument or "").split(":"))
            return lambda rng: rng.randint(low, high)
        if name == "float":
            low_f, high_f = (float(bound) for bound in (argument or "").split(":"))
            return lambda rng: rng.uniform(low_f, high_f)
        if name == "choice":
            options = (argument or "").split("|")
            if not argument:
                raise ValueError("no options")
            return lambda rng: rng.choice(options)
        return lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4))
    except ValueError as error:
        raise EventMixError(f"{where}: bad generator {{{name}:{argument}}}: {error}") from error
