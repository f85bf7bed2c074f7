"""Proof that a store's claim owner is dead: each live owner holds an exclusive flock on `<dir>/<owner>.lock`.

The kernel drops an flock when its process dies, kill -9 included, so a lock another process can take belongs to
an owner that is gone, and that owner's claims can be released at once rather than after their lease. A claim whose
owner has no lock file (a release before these files, or a file that could not be made) still waits for its lease:
nothing proves that owner dead.

A file is made as `<owner>.tmp`, locked, then renamed to `.lock`: a `.lock` file is always locked by its owner
while it lives, so a scan never takes a live owner's file in the moment between its creation and its lock. flock
works between processes of one host, the only ones that can share a SQLite file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ..logs import get_logger

log = get_logger(__name__)
SUFFIX = ".lock"


class OwnerLocks:
    def __init__(self, directory: Path, owner: str) -> None:
        self.directory = directory
        self.owner = owner
        self._descriptor: int | None = None

    def hold(self) -> None:
        """Take this owner's lock; without one (a read-only or full filesystem) claims fall back to their lease."""
        if self._descriptor is not None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self.directory / f"{self.owner}.tmp"
            descriptor = os.open(temporary, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.write(descriptor, f"{self.owner} pid {os.getpid()}\n".encode())
                os.rename(temporary, self.directory / f"{self.owner}{SUFFIX}")
            except OSError:
                os.close(descriptor)
                with contextlib.suppress(OSError):
                    temporary.unlink()
                raise
        except OSError as error:
            log.warning("owner_lock_unavailable", directory=str(self.directory), error=str(error))
            return
        self._descriptor = descriptor

    def drop(self, *, remove: bool = True) -> None:
        """Give the lock up at a close; `remove` the file once this owner's claims were released (otherwise the
        unlocked file tells the next process to release them)."""
        if self._descriptor is None:
            return
        if remove:
            with contextlib.suppress(OSError):
                (self.directory / f"{self.owner}{SUFFIX}").unlink()
        os.close(self._descriptor)
        self._descriptor = None

    def dead_owners(self) -> Iterator[tuple[str, Callable[[], None]]]:
        """(owner, done) per owner whose lock this process could take: its claims may be released, then `done()`
        removes its file. Held meanwhile, so two processes never release one owner at once (harmless, but noisy)."""
        try:
            entries = list(self.directory.iterdir())
        except OSError:
            return
        for path in entries:  # an owner that died between making its file and naming it: it never claimed
            if path.name.endswith(".tmp") and path.name != f"{self.owner}.tmp":
                _remove_if_free(path)
        names = [path for path in entries if path.name.endswith(SUFFIX)]
        for path in names:
            owner = path.name.removesuffix(SUFFIX)
            if owner == self.owner:
                continue
            try:
                descriptor = os.open(path, os.O_RDWR)
            except OSError:  # removed meanwhile by its owner's close, or by another process's scan
                continue
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held: the owner lives
                os.close(descriptor)
                continue
            yield owner, _remover(path, descriptor)


def _remover(path: Path, descriptor: int) -> Callable[[], None]:
    def done() -> None:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(descriptor)

    return done


def _remove_if_free(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path.unlink()
    except OSError:  # held (its owner is about to rename it) or gone
        pass
    finally:
        os.close(descriptor)
