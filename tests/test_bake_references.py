"""Nothing in a bake points at a document the bake does not contain."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support import bake, options_id, text_files

# a Markdown file named in prose, a comment or a link: `docs/x.md`, `loadtests/README.md`, `(ansible/README.md)`
DOCUMENT = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)*[\w-]+\.md)\b")


@pytest.mark.parametrize("options", [{}, {"event_bus": "redis", "ci": "both"}], ids=options_id)
def test_every_document_a_bake_names_is_in_the_bake(tmp_path: Path, options: dict[str, str]) -> None:
    project = bake(tmp_path, **options)
    missing = []
    for path in text_files(project):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for name in DOCUMENT.findall(line):
                if not ((project / name).exists() or (path.parent / name).exists()):
                    missing.append(f"{path.relative_to(project)}:{number}: {name}")
    assert missing == []
