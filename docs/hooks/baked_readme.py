"""mkdocs hook: show sections of the baked README on the site, as a bake with the default options renders them.

The baked README (template/{{cookiecutter.project_slug}}/README.md) is the one source of the handler example and
the testing kit: it travels with every bake, and tests/test_doc_examples.py runs its examples in a bake. Its
Jinja cannot be shown as it is written, so this hook bakes the template once per build (cookiecutter's own API, in
a temporary folder, no prompts) and replaces each `<!-- baked-readme: NAME -->` line of a page with the part of
the baked README between `<!-- section: NAME -->` and `<!-- /section: NAME -->`. A name with no such section
fails the build, so a page can never show an example the README no longer has.
"""

from __future__ import annotations

import re
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = REPO_ROOT / "template"
PLACEHOLDER = re.compile(r"^<!-- baked-readme: ([a-z0-9-]+) -->$", re.M)
SECTION = r"<!-- section: {name} -->\n(.*?)<!-- /section: {name} -->"


class MissingSection(LookupError):
    """A page names a section the baked README does not have."""


@cache
def baked_readme() -> str:
    """The README of a bake of template/ with every option at its default."""
    from cookiecutter.main import cookiecutter

    sys.path.insert(0, str(TEMPLATE_DIR))  # the template's local Jinja extension
    with tempfile.TemporaryDirectory(prefix="docs-bake-") as output:
        project = Path(cookiecutter(str(TEMPLATE_DIR), no_input=True, output_dir=output))
        return (project / "README.md").read_text()


def section(readme: str, name: str) -> str:
    match = re.search(SECTION.format(name=re.escape(name)), readme, re.S)
    if match is None:
        raise MissingSection(f"the baked README has no section {name!r} (<!-- section: {name} -->)")
    return match.group(1)


def on_page_markdown(markdown: str, **_: Any) -> str:
    if not PLACEHOLDER.search(markdown):
        return markdown
    readme = baked_readme()
    return PLACEHOLDER.sub(lambda match: section(readme, match.group(1)), markdown)


def on_pre_build(**_: Any) -> None:
    # `mkdocs serve` rebuilds in one process: bake again each build, so an edit of the README shows
    baked_readme.cache_clear()
