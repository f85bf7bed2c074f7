"""Each supported bake passes its own linters, type check and test suite, as its pipeline would run them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import bake, options_id, run_in, runtime_version
from test_bake import OPTION_SETS

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("options", OPTION_SETS, ids=options_id)
def test_a_bake_passes_ruff_mypy_and_its_own_tests(tmp_path: Path, baked_python: Path, options: dict[str, str]) -> None:
    project = bake(tmp_path, **options)
    for command in (
        ("ruff", "check", "."),
        ("ruff", "format", "--check", "."),
        ("mypy",),
        ("python", "-m", "pytest", "-q", "-p", "no:cacheprovider"),
    ):
        result = run_in(project, baked_python, *command)
        assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    assert " passed" in result.stdout and " failed" not in result.stdout


def test_the_make_targets_run_green_through_tox_in_a_fresh_bake(tmp_path: Path, baked_python: Path) -> None:
    project = bake(tmp_path)
    tox = shutil.which("tox")
    assert tox, "tox is a test requirement"
    result = run_in(project, baked_python, "make", "lint", "type", "test", "build", f"TOX={tox}", timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert list((project / "dist").glob("event_service-0.1.0-py3-none-any.whl"))
    assert (project / "reports" / "junit.xml").is_file()
    assert (project / "reports" / "coverage.xml").is_file()

    # the image's install step, run without Docker: the wheel into a fresh venv, its command answers
    assert "install-service.sh /wheelhouse /opt/venv ${VERSION}" in (project / "Dockerfile").read_text()
    installed = run_in(project, baked_python, "sh", "scripts/install-service.sh", "dist", str(tmp_path / "service"),
                       timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert installed.stdout.strip() == f"event-service 0.1.0 (event-runtime {runtime_version()})"
