"""The code blocks of a Markdown file and the marker before each (docs/testing.md, "Every example runs").

A marker is an HTML comment on the line before a fence: `<!-- runnable -->`, `<!-- runnable: MODE ARGS -->` or
`<!-- not-runnable: REASON -->`. Fences may be indented (inside a list item); the block's text is dedented by the
fence's indent. Only the languages a user pastes into a shell or a Python file are checked; `text`, `json`, `yaml`
and other fences are shown, never run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CHECKED_LANGUAGES = frozenset({"sh", "bash", "shell", "console", "python", "py"})
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
RUN_MODES = frozenset({"", "service", "serves", "repo", "module"})

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>runnable|not-runnable)\s*(?::\s*(?P<arg>.*?))?\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    source: str  # the file, as the report names it
    line: int  # 1-based line of the opening fence
    language: str
    kind: str | None  # "runnable", "not-runnable" or None (unmarked)
    arg: str  # the marker's text after the colon
    code: str

    @property
    def checked(self) -> bool:
        return self.language in CHECKED_LANGUAGES

    @property
    def mode(self) -> str:
        """For a runnable block: "", "service", "serves", "repo" or "module"."""
        return self.arg.split(None, 1)[0] if self.arg else ""

    @property
    def options(self) -> str:
        """The marker's text after the mode (a module's path, a service's env=...)."""
        parts = self.arg.split(None, 1)
        return parts[1] if len(parts) > 1 else ""

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def blocks_in(text: str, source: str) -> list[Block]:
    """Every fenced block of `text`, in order, with the marker on the line before it (if any)."""
    lines = text.splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].strip().split(" ", 1)[0].lower()
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            closing = FENCE.match(lines[end])
            if closing and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence) \
                    and not closing["info"].strip():
                break
            body.append(lines[end][len(indent):] if lines[end].startswith(indent) else lines[end].lstrip())
            end += 1
        previous = lines[index - 1] if index > 0 else ""
        marker = MARKER.match(previous)
        found.append(Block(
            source=source,
            line=index + 1,
            language=language,
            kind=marker["kind"] if marker else None,
            arg=(marker["arg"] or "").strip() if marker else "",
            code="\n".join(body) + "\n",
        ))
        index = end + 1
    return found


def blocks_of(path: Path, source: str | None = None) -> list[Block]:
    return blocks_in(path.read_text(), source or str(path))


def problems_with_markers(blocks: list[Block]) -> list[str]:
    """One line per checked block whose marker is missing or malformed."""
    problems: list[str] = []
    for block in blocks:
        if not block.checked:
            continue
        if block.kind is None:
            problems.append(f"{block.where}: a {block.language} block without <!-- runnable... --> or "
                            "<!-- not-runnable: REASON -->")
        elif block.kind == "not-runnable" and len(block.arg) < 10:
            problems.append(f"{block.where}: not-runnable needs its reason")
        elif block.kind == "runnable" and block.mode not in RUN_MODES:
            problems.append(f"{block.where}: unknown runnable mode {block.mode!r} (one of {sorted(RUN_MODES)})")
        elif block.kind == "runnable" and (block.mode == "module") != (block.language in {"python", "py"}):
            problems.append(f"{block.where}: `runnable: module PATH` is for Python blocks, and Python blocks need it")
        elif block.mode == "module" and not block.options:
            problems.append(f"{block.where}: `runnable: module` needs the PATH to write the block to")
    return problems
