"""Whether the store takes writes, as the service's own writes say: readiness fails from a failed write until a
write of the same kind lands, or until REMEMBER_SECONDS pass without another failure.

A read-only check cannot see a full disk or a store refusing writes, so every write the service makes (an append,
a completion, a retry, a dead letter) reports here, next to the probe write of readiness (the bus's ping). Kinds
are kept apart: on a nearly full disk a small write may land while an append does not. The memory is bounded in
time because a service that is not ready gets no traffic, so its appends could never land to clear it: after
REMEMBER_SECONDS the ping's write alone decides, and the next failed append fails readiness again.

Failures are logged with their traceback, at most one record per LOG_EVERY_SECONDS (the others are counted in
the next one): a full disk under load would otherwise write a traceback per request.
"""

from __future__ import annotations

import time

from .logs import get_logger

log = get_logger(__name__)
LOG_EVERY_SECONDS = 1.0
REMEMBER_SECONDS = 10.0


class StoreHealth:
    def __init__(self) -> None:
        self._failures: dict[str, tuple[float, str]] = {}  # kind of write -> (when, error) of its last failure
        self._last_logged = float("-inf")
        self._unlogged = 0

    @property
    def problem(self) -> str | None:
        """The latest failed write's error, if no write of its kind landed since and it is recent."""
        now = time.monotonic()
        recent = [(at, error) for at, error in self._failures.values() if now - at < REMEMBER_SECONDS]
        return max(recent)[1] if recent else None

    def failed(self, operation: str, error: BaseException) -> None:
        """Call from inside the `except` block, so the traceback is logged."""
        now = time.monotonic()
        if not self._failures:
            log.warning("store_writes_failing", operation=operation)
        self._failures[operation] = (now, f"{operation} failed: {type(error).__name__}: {error}")
        if now - self._last_logged >= LOG_EVERY_SECONDS:
            log.exception("store_write_failed", operation=operation, also_failed_since_last_record=self._unlogged)
            self._last_logged, self._unlogged = now, 0
        else:
            self._unlogged += 1

    def succeeded(self, operation: str) -> None:
        if self._failures and self._failures.pop(operation, None) is not None and not self._failures:
            log.info("store_writes_recovered")
