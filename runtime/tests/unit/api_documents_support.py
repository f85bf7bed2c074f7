"""What the API document tests share: a registry with declared follow-ups, settings, and $ref resolution."""

from __future__ import annotations

from typing import Any

import msgspec

from event_runtime import HandlerContext, HandlerRegistry
from event_runtime.settings import Settings
from event_runtime.testing.bus import TEST_SETTINGS

from ..sample_service import ORDER_CANCELLED, registry

STOCK_RESERVED = "com.example.stock.reserved"
NOBODY = "com.example.nobody.listens"


class StockReserved(msgspec.Struct, frozen=True):
    order_id: str
    skus: list[str]


def settings(**overrides: Any) -> Settings:
    return Settings(**{**TEST_SETTINGS, "event_source": "/shop", **overrides})


def registry_with_follow_ups(*, unhandled: bool = False) -> HandlerRegistry:
    """The sample service's handlers, and one for STOCK_RESERVED that declares it publishes ORDER_CANCELLED (and,
    with `unhandled`, a type nobody subscribes to)."""
    combined = HandlerRegistry().include(registry)
    publishes = [ORDER_CANCELLED, *([NOBODY] if unhandled else [])]

    @combined.on(STOCK_RESERVED, StockReserved, publishes=publishes)
    async def cancel_when_out_of_stock(data: StockReserved, context: HandlerContext) -> None:
        """Cancel the order when a SKU is out of stock."""

    return combined


def refs(node: Any) -> list[str]:
    """Every $ref in a document."""
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


def resolve(document: dict[str, Any], ref: str) -> Any:
    """The node a local $ref (`#/a/b`, JSON Pointer escapes) points at; KeyError when there is none."""
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node
