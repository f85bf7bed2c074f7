"""Valid CloudEvents for tests, with unique ids unless you give one."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from ..cloudevents import CloudEvent, event_from_mapping


class EventFactory:
    """Makes structured-mode CloudEvents (as dicts, ready to post or publish)."""

    def __init__(self, source: str = "/tests") -> None:
        self.source = source
        self._run = uuid.uuid4().hex[:8]
        self._counter = itertools.count(1)

    def event(
        self,
        event_type: str,
        data: Any,
        *,
        subject: str | None = None,
        event_id: str | None = None,
        source: str | None = None,
        **extensions: Any,
    ) -> dict[str, Any]:
        mapping: dict[str, Any] = {
            "specversion": "1.0",
            "id": event_id or f"{self._run}-{next(self._counter)}",
            "source": source or self.source,
            "type": event_type,
            "datacontenttype": "application/json",
            "data": msgspec.to_builtins(data),
        }
        if subject is not None:
            mapping["subject"] = subject
        mapping.update(extensions)
        return mapping

    def cloud_event(self, event_type: str, data: Any, **attributes: Any) -> CloudEvent:
        """The same, validated into the runtime's event object (what handlers see in `context.event`)."""
        return event_from_mapping(self.event(event_type, data, **attributes))

    def many(
        self,
        count: int,
        event_type: str,
        data_for: Callable[[int], Any],
        subject_for: Callable[[int], str | None] = lambda _: None,
    ) -> list[dict[str, Any]]:
        return [self.event(event_type, data_for(n), subject=subject_for(n)) for n in range(count)]
