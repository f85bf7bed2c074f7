"""Keep free space for the events already accepted: below SERVICE_MIN_FREE_BYTES on the store's filesystem, new
events are refused (503 `disk_full`, nothing stored) while completions, which need a little space too, go on.

A full disk that keeps taking events never recovers under load: each freed page is filled at once by a new event,
and the accepted ones can no longer be completed. statvfs is cheap but not free, so it is read at most every
CHECK_EVERY_SECONDS; the refusal lifts by itself once space is back.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .logs import get_logger

log = get_logger(__name__)
CHECK_EVERY_SECONDS = 0.25


class DiskReserve:
    def __init__(self, path: Path | None, min_free_bytes: int) -> None:
        """`path`: the store file (its directory is looked at); None or a reserve of 0: never low."""
        self._directory = None if path is None or min_free_bytes <= 0 else path.parent
        self.min_free_bytes = min_free_bytes
        self.free_bytes: int | None = None
        self._checked_at = float("-inf")
        self._low = False

    @property
    def low(self) -> bool:
        if self._directory is None:
            return False
        now = time.monotonic()
        if now - self._checked_at >= CHECK_EVERY_SECONDS:
            self._checked_at = now
            try:
                status = os.statvfs(self._directory)
            except OSError:  # the directory went away: the store's own checks answer for that
                return self._low
            self.free_bytes = status.f_bavail * status.f_frsize
            low = self.free_bytes < self.min_free_bytes
            if low != self._low:
                log.warning(
                    "disk_reserve_reached" if low else "disk_reserve_recovered",
                    free_bytes=self.free_bytes,
                    min_free_bytes=self.min_free_bytes,
                    directory=str(self._directory),
                )
            self._low = low
        return self._low
