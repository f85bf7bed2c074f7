"""The commands of blocks that cannot run here (real hosts, a template update): each must still name a real make
target, a real subcommand and real options, so a runbook never tells an operator to type something that fails."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

from .blocks import Block

# make's database lists these as targets, but nobody calls them
NOT_TARGETS = re.compile(r"^(\.|/|Makefile$|.*\.mk$)")


def make_targets(project: Path) -> set[str]:
    """Every explicit target of a bake's Makefile and what it includes, from make's own database (`make -qp`)."""
    database = subprocess.run(["make", "-qp"], cwd=project, capture_output=True, text=True, timeout=60).stdout
    files = database.split("\n# Files\n", 1)[1]
    targets = set()
    for block in files.split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith("#")]
        if not lines or "# Not a target:" in block:
            continue
        match = re.match(r"^([^\s:=]+):(?!=)", lines[0])
        if match and not NOT_TARGETS.match(match.group(1)) and "/" not in match.group(1):
            targets.add(match.group(1))
    return targets


def command_lines(block: Block) -> Iterator[list[str]]:
    """Each command of a shell block as words: continuations joined, comments and `&&`/`;` chains split."""
    joined = re.sub(r"\\\n\s*", " ", block.code)
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        command: list[str] = []
        for word in [*words, ";"]:
            if word in {";", "&&", "||", "|"}:
                if command:
                    yield _without_prefix(command)
                command = []
            else:
                command.append(word)


def _without_prefix(words: list[str]) -> list[str]:
    """Drop `sudo -u USER` and leading VAR=value assignments."""
    while words:
        if words[0] == "sudo":
            words = words[3:] if words[1:2] == ["-u"] else words[1:]
        elif re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            words = words[1:]
        else:
            break
    return words
