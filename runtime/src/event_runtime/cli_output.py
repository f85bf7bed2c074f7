"""What the CLI prints for a person: aligned tables, and progress on stderr for long operations.

Machine-readable output is the `--json` of each command; these are for reading, so a cell never holds a line break
(it would break the columns) and nothing is cut short (the last column, an error, is often the point).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO


def cell(value: Any) -> str:
    """A value as one line: strings as they are, everything else as compact JSON."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A header row and one row per mapping, columns padded to their widest cell; the last column is not padded."""
    cells = [list(columns), *([cell(row.get(column, "")) for column in columns] for row in rows)]
    widths = [max(len(line[index]) for line in cells) for index in range(len(columns))]
    lines = []
    for line in cells:
        padded = [text.ljust(width) for text, width in zip(line[:-1], widths, strict=False)]
        lines.append("  ".join([*padded, line[-1]]).rstrip())
    return "\n".join(lines)


def fields(mapping: Mapping[str, Any]) -> str:
    """`name  value` lines, names padded: one record (an answer's fields) as a two-column table."""
    if not mapping:
        return ""
    width = max(len(name) for name in mapping)
    return "\n".join(f"{name.ljust(width)}  {cell(value)}".rstrip() for name, value in mapping.items())


class Progress:
    """`label done/total (percent)` on `stream`: rewritten in place on a terminal, one line per update elsewhere;
    silent unless `enabled`. On a terminal updates are at most ten a second; the last one is always shown."""

    def __init__(self, label: str, total: int, *, enabled: bool, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.enabled = enabled
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._shown_at = 0.0

    def advance(self, count: int) -> None:
        self.done += count
        if not self.enabled:
            return
        now = time.monotonic()
        if self._tty and now - self._shown_at < 0.1 and self.done < self.total:
            return
        self._shown_at = now
        percent = 100 * self.done // self.total if self.total else 100
        line = f"{self.label} {self.done}/{self.total} ({percent}%)"
        self._stream.write(f"\r{line}\x1b[K" if self._tty else f"{line}\n")
        self._stream.flush()

    def finish(self) -> None:
        """End the line a terminal's progress was rewritten on."""
        if self.enabled and self._tty:
            self._stream.write("\n")
            self._stream.flush()
