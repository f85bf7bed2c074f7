"""The explicit handler registry: which functions handle which event types, with which data schema.

Dispatch only ever goes through a registry built by the service author; an event type nobody registered is
rejected at ingress with 422 (and a handler publishing one fails for good), never looked up by name anywhere else.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import msgspec

from .cloudevents import CloudEvent

SchemaT = TypeVar("SchemaT")


class NonRetryableError(Exception):
    """Raise from a handler when trying again cannot help (bad data, a business rule): the event goes straight
    to the dead-letter store."""


class Publisher(Protocol):
    async def __call__(self, type: str, data: Any, *, subject: str | None = None) -> str:
        """Store a follow-up event of `type` (subject: the cause's unless given); returns its id.

        The n-th publish of a handler call has the same id on every attempt, so a retry's publishes are dropped as
        duplicates of the failed attempt's: publish the same follow-ups in the same order each time. A type nobody
        handles, or data failing its schema, raises NonRetryableError.
        """
        ...


@dataclass
class HandlerContext:
    """What a handler gets beside its data: the whole event, the attempt number and a way to publish."""

    event: CloudEvent
    handler: str
    attempt: int
    publish: Publisher


Handler = Callable[[Any, HandlerContext], Awaitable[Any] | Any]


@dataclass(frozen=True)
class Subscription:
    """One handler's subscription to one event type."""

    event_type: str
    handler_name: str
    function: Handler
    schema: type[Any]
    max_attempts: int | None = None
    is_async: bool = field(default=False)
    # the follow-up types the handler may publish, as its author declares them: documentation (the AsyncAPI
    # document's send operations), not a check at publish time
    publishes: tuple[str, ...] = ()

    def decode(self, data: Any) -> Any:
        """Turn the event's JSON data into the declared schema (raises msgspec.ValidationError)."""
        return msgspec.convert(data, type=self.schema)


class DuplicateHandlerError(ValueError):
    """Two handlers with the same name: retries and dead letters are tracked per name, so names must be unique."""


class HandlerRegistry:
    """Event type -> subscriptions. Build one per module with `on`, merge them with `include`."""

    def __init__(self) -> None:
        self._by_type: dict[str, list[Subscription]] = {}
        self._by_name: dict[str, Subscription] = {}
        self._names_by_type: dict[str, tuple[str, ...]] = {}

    def on(
        self,
        event_type: str,
        schema: type[SchemaT],
        *,
        name: str | None = None,
        max_attempts: int | None = None,
        publishes: Iterable[str] = (),
    ) -> Callable[[Callable[[SchemaT, HandlerContext], Any]], Callable[[SchemaT, HandlerContext], Any]]:
        """Decorator: register a sync or async function `(data, context)` for `event_type`; `publishes` names the
        follow-up types it may publish (shown in the AsyncAPI document, `<slug> asyncapi`)."""
        if isinstance(publishes, str):  # a string is an iterable of one-letter "types"
            raise TypeError("publishes: give a list of event types, not one string")
        declared = tuple(publishes)

        def register(
            function: Callable[[SchemaT, HandlerContext], Any],
        ) -> Callable[[SchemaT, HandlerContext], Any]:
            self.add(
                Subscription(
                    event_type=event_type,
                    handler_name=name or function.__name__,
                    function=function,
                    schema=schema,
                    max_attempts=max_attempts,
                    is_async=_is_async(function),
                    publishes=declared,
                )
            )
            return function

        return register

    def add(self, subscription: Subscription) -> None:
        if subscription.handler_name in self._by_name:
            raise DuplicateHandlerError(f"a handler named {subscription.handler_name!r} is already registered")
        schemas = {existing.schema for existing in self._by_type.get(subscription.event_type, [])}
        if schemas and subscription.schema not in schemas:
            raise ValueError(f"handlers of {subscription.event_type!r} must share one data schema")
        self._by_type.setdefault(subscription.event_type, []).append(subscription)
        self._by_name[subscription.handler_name] = subscription
        self._names_by_type[subscription.event_type] = tuple(
            s.handler_name for s in self._by_type[subscription.event_type]
        )

    def include(self, *others: HandlerRegistry) -> HandlerRegistry:
        """Add every subscription of the other registries to this one; returns self."""
        for other in others:
            for subscription in other.subscriptions():
                self.add(subscription)
        return self

    def subscriptions(self) -> Iterable[Subscription]:
        return list(self._by_name.values())

    def for_type(self, event_type: str) -> list[Subscription]:
        return self._by_type.get(event_type, [])

    def handler_names_for(self, event_type: str) -> tuple[str, ...]:
        """The names of the handlers that must each see an event of this type (built once, read per event)."""
        return self._names_by_type.get(event_type, ())

    def by_name(self, handler_name: str) -> Subscription | None:
        return self._by_name.get(handler_name)

    def schema_for(self, event_type: str) -> type[Any] | None:
        subscriptions = self._by_type.get(event_type)
        return subscriptions[0].schema if subscriptions else None

    def follow_ups(self) -> dict[str, tuple[str, ...]]:
        """Handler name -> the follow-up types it declares (`publishes=`), for the handlers that declare any."""
        return {name: s.publishes for name, s in sorted(self._by_name.items()) if s.publishes}

    def unhandled_follow_ups(self) -> list[tuple[str, str]]:
        """(handler, type) for each declared follow-up type no handler subscribes to: publishing it would fail."""
        return [(name, t) for name, types in self.follow_ups().items() for t in types if t not in self._by_type]

    @property
    def event_types(self) -> list[str]:
        return sorted(self._by_type)

    @property
    def handler_names(self) -> list[str]:
        return sorted(self._by_name)


def _is_async(function: Callable[..., Any]) -> bool:
    """Async functions and objects whose __call__ is async (the testing kit's fake handlers) are awaited."""
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - a method, not a callability check
    )
