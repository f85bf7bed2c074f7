"""Jinja extension that tells the template where the template repository lives and which runtime it pins.

The hooks run from a temporary file, and `_repo_dir` is relative or absent depending on how cookiecutter or cruft
was called, so the only reliable anchor is this file's own location (see docs/template.md). The runtime's version
is read from the one place it is written, runtime/src/event_runtime/__about__.py, so a bake always pins the
runtime that this commit of the template ships.
"""

import re
import sys
from collections.abc import Mapping
from pathlib import Path

import click
from jinja2.ext import Extension

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNTIME_ABOUT = REPO_ROOT / "runtime" / "src" / "event_runtime" / "__about__.py"


def runtime_version() -> str:
    match = re.search(r'^__version__ = "([^"]+)"$', RUNTIME_ABOUT.read_text(), re.M)
    if match is None:
        raise RuntimeError(f"no __version__ line in {RUNTIME_ABOUT}")
    return match.group(1)


def checked_options(options: Mapping[str, object]) -> str:
    """Stop the bake, before anything is written, with one line per bad option and no traceback.

    cookiecutter.json renders `__options_checked` through this filter once every option is known. A
    ClickException is what cookiecutter's and cruft's command lines print as `Error: ...` and exit 1 on; through the
    Python API it is an ordinary exception. The pre-gen hook runs the same checks again (a replayed context).

    `cruft update` renders the bake's old commit and then the new one in one process, so Python keeps the first
    commit's copy of this module: a filter added here may be missing in that run. cookiecutter.json therefore
    calls it only `if 'checked_options' is filter`; the options cruft replays were checked when the bake was made,
    and the pre-gen hook checks them again."""
    sys.path.insert(0, str(REPO_ROOT / "template" / "hooks"))
    from bake_options import problems_with

    problems = problems_with(options)
    if problems:
        raise click.ClickException("\n".join(problems))
    return "ok"


class RepoRootExtension(Extension):
    def __init__(self, environment):  # type: ignore[no-untyped-def]
        super().__init__(environment)
        environment.globals["repo_root"] = str(REPO_ROOT)
        environment.globals["runtime_version"] = runtime_version()
        environment.filters["checked_options"] = checked_options
