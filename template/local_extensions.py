"""Jinja extension that tells the hooks where the template repository lives.

The hooks run from a temporary file, and `_repo_dir` is relative or absent depending on how cookiecutter or cruft
was called, so the only reliable anchor is this file's own location (see docs/template.md).
"""

from pathlib import Path

from jinja2.ext import Extension


class RepoRootExtension(Extension):
    def __init__(self, environment):  # type: ignore[no-untyped-def]
        super().__init__(environment)
        environment.globals["repo_root"] = str(Path(__file__).resolve().parent.parent)
