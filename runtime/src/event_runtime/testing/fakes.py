"""Fake handlers that record what they saw, and a context for calling a real handler on its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..cloudevents import CloudEvent
from ..registry import HandlerContext, NonRetryableError


@dataclass
class RecordingPublisher:
    """Stands in for `context.publish`: keeps what a handler published."""

    published: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, type: str, data: Any, *, subject: str | None = None) -> str:
        self.published.append({"type": type, "data": data, "subject": subject})
        return f"published-{len(self.published)}"


def make_context(event: CloudEvent, *, handler: str = "under_test", attempt: int = 1) -> HandlerContext:
    """A context for calling one handler directly in a unit test; `context.publish.published` lists follow-ups."""
    return HandlerContext(event=event, handler=handler, attempt=attempt, publish=RecordingPublisher())


class RecordingHandler:
    """Succeeds and remembers every call: (data, context) in order."""

    def __init__(self, name: str = "recording") -> None:
        self.__name__ = name
        self.calls: list[tuple[Any, HandlerContext]] = []

    async def __call__(self, data: Any, context: HandlerContext) -> dict[str, Any]:
        self.calls.append((data, context))
        return {"handled": context.event.id}

    @property
    def event_ids(self) -> list[str]:
        return [context.event.id for _, context in self.calls]

    def ids_for_subject(self, subject: str) -> list[str]:
        return [context.event.id for _, context in self.calls if context.event.ordering_key == subject]


class FlakyHandler(RecordingHandler):
    """Fails the first `failures` calls for each event, then succeeds."""

    def __init__(self, failures: int, name: str = "flaky") -> None:
        super().__init__(name)
        self.failures = failures
        self.attempts: dict[str, int] = {}

    async def __call__(self, data: Any, context: HandlerContext) -> dict[str, Any]:
        seen = self.attempts[context.event.id] = self.attempts.get(context.event.id, 0) + 1
        if seen <= self.failures:
            raise ConnectionError(f"transient failure {seen} of {self.failures}")
        return await super().__call__(data, context)


class AlwaysFailingHandler(RecordingHandler):
    """Raises a retryable error every time: ends in the dead-letter store after max attempts."""

    def __init__(self, name: str = "always_failing") -> None:
        super().__init__(name)
        self.attempts = 0

    def error(self) -> Exception:
        return RuntimeError("downstream is down")

    async def __call__(self, data: Any, context: HandlerContext) -> dict[str, Any]:
        self.attempts += 1
        raise self.error()


class PoisonHandler(AlwaysFailingHandler):
    """Raises NonRetryableError: dead-lettered on the first attempt."""

    def __init__(self, name: str = "poison") -> None:
        super().__init__(name)

    def error(self) -> Exception:
        return NonRetryableError("this event can never be handled")
