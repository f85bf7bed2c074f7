"""What one Locust process shares between its users and the gate: the ledger and the event mix."""

from __future__ import annotations

from .event_mix import EventMix, load_event_mix
from .ledger import EventLedger

ledger = EventLedger()
_mixes: dict[tuple[str, int], EventMix] = {}


def event_mix(options) -> EventMix:
    """The mix named by the options, read once per process."""
    key = (options.event_mix, options.ordering_keys)
    if key not in _mixes:
        _mixes[key] = load_event_mix(options.event_mix, options.ordering_keys)
    return _mixes[key]
