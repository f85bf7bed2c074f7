"""cruft, which keeps a bake linked to the template: create with --directory template, then check."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from support import REPO_ROOT

pytestmark = pytest.mark.slow


def test_cruft_create_from_the_template_directory_then_check_passes(tmp_path: Path) -> None:
    cruft = shutil.which("cruft")
    assert cruft, "cruft is a test requirement"
    created = subprocess.run(
        [cruft, "create", str(REPO_ROOT), "--directory", "template", "--no-input", "--output-dir", str(tmp_path),
         "--extra-context", json.dumps({"project_name": "Cruft Events", "ci": "both"})],
        capture_output=True, text=True, timeout=300,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    project = tmp_path / "cruft-events"
    record = json.loads((project / ".cruft.json").read_text())
    assert record["directory"] == "template"
    assert (project / "src" / "cruft_events" / "app.py").is_file()
    checked = subprocess.run([cruft, "check"], cwd=project, capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
