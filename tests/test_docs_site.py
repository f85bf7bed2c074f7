"""The documentation site: `mkdocs build --strict` as the README says to run it, and its nav against docs/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from doc_examples.blocks import blocks_of
from support import REPO_ROOT

# what the site must cover (issue 21): each a page of the nav
REQUIRED_PAGES = (
    "getting-started.md", "options.md", "architecture.md", "handlers.md", "event-bus.md", "pipelines.md",
    "deployment.md", "loadtests.md", "performance.md", "reliability.md", "runbooks.md", "upgrading.md",
)
# hosts a page would load something from at view time: the site must work offline
ONLINE_ASSETS = ("fonts.googleapis.com", "fonts.gstatic.com", "unpkg.com", "cdn.jsdelivr.net")


def nav_pages(entries: list[object]) -> list[str]:
    pages: list[str] = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages.extend(nav_pages(value) if isinstance(value, list) else [str(value)])
    return pages


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page() -> None:
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())
    listed = nav_pages(config["nav"])
    present = sorted(path.name for path in (REPO_ROOT / "docs").glob("*.md"))
    assert sorted(listed) == present
    assert len(set(listed)) == len(listed)
    assert set(REQUIRED_PAGES) <= set(listed)
    # nothing that fetches at build time or view time
    assert [plugin if isinstance(plugin, str) else next(iter(plugin)) for plugin in config["plugins"]] == ["search"]
    assert config["theme"]["font"] is False


@pytest.mark.slow
def test_the_site_builds_with_mkdocs_strict_as_the_readme_says(tmp_path: Path) -> None:
    [block] = [block for block in blocks_of(REPO_ROOT / "README.md") if block.mode == "repo"]
    assert "mkdocs build --strict" in block.code
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # this env's pip and mkdocs
    env = {**os.environ, "TMPDIR": str(tmp_path), "PATH": path, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    site = tmp_path / "event-service-site"
    for page in (REPO_ROOT / "docs").glob("*.md"):
        built = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert built.is_file(), built
    html = "".join(path.read_text() for path in site.rglob("*.html"))
    assert not [host for host in ONLINE_ASSETS if host in html]
    handlers = (site / "handlers" / "index.html").read_text()
    # the baked README's sections, rendered for the default bake: no Jinja left, the example's names there
    assert "check_fraud" in handlers and "BusHarness" in handlers and "cookiecutter." not in handlers
    assert "example-org/cookiecutter-event-service" in (site / "getting-started" / "index.html").read_text()
