"""The probe handler: added to a bake the way an author adds one, it appends each handled event's id to a file."""

from __future__ import annotations

import collections
from pathlib import Path

PLACED = "com.example.order.placed"

PROBE_MODULE = '''"""Fault-test probe: one line per handled event, appended to $PROBE_LOG with a single write."""

import asyncio
import os

from event_runtime import HandlerContext, HandlerRegistry

from ..events import ORDER_PLACED, OrderPlaced

handlers = HandlerRegistry()


@handlers.on(ORDER_PLACED, OrderPlaced)
async def probe(order: OrderPlaced, context: HandlerContext) -> None:
    delay = float(os.environ.get("PROBE_DELAY", "0"))
    if order.customer_id.startswith("slow:"):  # this event alone takes that long
        delay = float(order.customer_id.removeprefix("slow:"))
    if delay:
        await asyncio.sleep(delay)
    flag = os.environ.get("PROBE_POISON_FLAG")
    if flag and order.customer_id == "poison" and os.path.exists(flag):
        raise RuntimeError("the downstream rejects this event until it is fixed")
    line = f"{context.event.id}\\t{os.getpid()}\\t{context.attempt}\\n".encode()
    # one write per line on an O_APPEND descriptor: lines from several processes never interleave
    descriptor = os.open(os.environ["PROBE_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)
'''


def add_probe(project: Path) -> Path:
    """Write handlers/probe.py into the bake and register it next to the example handlers; returns handlers/."""
    handlers = next(path for path in (project / "src").iterdir() if (path / "app.py").is_file()) / "handlers"
    (handlers / "probe.py").write_text(PROBE_MODULE)
    init = handlers / "__init__.py"
    text = init.read_text()
    assert "include(orders.handlers)" in text, "the bake's handler registry changed shape"
    init.write_text(
        text.replace("from . import orders", "from . import orders, probe").replace(
            "include(orders.handlers)", "include(orders.handlers, probe.handlers)"
        )
    )
    return handlers


def probe_env(log: Path, *, delay: float = 0.0, poison_flag: Path | None = None) -> dict[str, str]:
    env = {"PROBE_LOG": str(log), "PROBE_DELAY": str(delay)}
    if poison_flag is not None:
        env["PROBE_POISON_FLAG"] = str(poison_flag)
    return env


def handled(log: Path) -> collections.Counter[str]:
    """Handlings per event id; a torn last line (no newline) is not counted."""
    counts: collections.Counter[str] = collections.Counter()
    if not log.exists():
        return counts
    for line in log.read_bytes().split(b"\n")[:-1]:
        if line:
            counts[line.split(b"\t", 1)[0].decode()] += 1
    return counts
