"""cruft, which keeps a bake linked to the template: create with --directory template, check, and update a bake
that its team has edited from an older commit of the template to the current one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from support import REPO_ROOT, run_in

pytestmark = pytest.mark.slow

OPTIONS = {"project_name": "Cruft Events", "ci": "both"}
PROJECT = "cruft-events"
# The first commit with runtime/ as its own distribution: from there on, old and new bakes share the library layout.
FIRST_LIBRARY_LAYOUT_PATH = "runtime/pyproject.toml"
# What reaches a bake: the template, the shared parts its hook copies, and the runtime version it pins.
BAKE_SOURCES = ("template", "ansible", "loadtests", "pipelines", "runtime/src/event_runtime/__about__.py")
CONFLICT_MARKERS = ("<<<<<<< ", ">>>>>>> ")


def cruft(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = shutil.which("cruft")
    assert command, "cruft is a test requirement"
    return subprocess.run([command, *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False)


def git(cwd: Path, *args: str) -> str:
    identity = ["-c", "user.email=team@example.com", "-c", "user.name=Team"]
    result = subprocess.run(["git", *identity, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, f"git {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def committed_template(tmp_path: Path) -> Path:
    """The repository as committed (a clone): uncommitted edits in the working tree cannot leak into a bake."""
    clone = tmp_path / "template-repo"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, timeout=300)
    return clone


def cruft_create(template: Path, output_dir: Path, *checkout: str) -> Path:
    created = cruft("create", str(template), "--directory", "template", "--no-input", "--output-dir", str(output_dir),
                    "--extra-context", json.dumps(OPTIONS), *checkout)
    assert created.returncode == 0, created.stdout + created.stderr
    return output_dir / PROJECT


def replace_once(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert text.count(old) == 1, f"the team's edit expects {old!r} once"
        return text.replace(old, new)

    return edit


def append(addition: str) -> Callable[[str], str]:
    return lambda text: text + addition


# What a team changes in its bake: its own code, its README, its deployment's settings.
TEAM_EDITS: dict[str, Callable[[str], str]] = {
    "src/cruft_events/handlers/orders.py": replace_once(
        'SUPPORTED_CURRENCIES = frozenset({"EUR", "USD", "GBP"})\n',
        'SUPPORTED_CURRENCIES = frozenset({"EUR", "USD", "GBP"})\nSTOCK_HOLD_MINUTES = 30\n',
    ),
    "README.md": append("\n## On call\nThe orders team answers for this service: #orders-oncall.\n"),
    "ansible/inventories/staging/group_vars/all/main.yml": replace_once(
        "service_log_level: DEBUG\n", "service_log_level: WARNING\n"
    ),
}


def bake_files(project: Path) -> dict[str, Path]:
    """Every file of a bake by its relative path, without git's own files and cruft's record."""
    return {
        str(path.relative_to(project)): path
        for path in sorted(project.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(project).parts and path.name != ".cruft.json"
    }


def test_cruft_create_from_the_template_directory_then_check_passes(tmp_path: Path) -> None:
    project = cruft_create(REPO_ROOT, tmp_path)
    record = json.loads((project / ".cruft.json").read_text())
    assert record["directory"] == "template"
    assert (project / "src" / "cruft_events" / "app.py").is_file()
    checked = cruft("check", cwd=project)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_cruft_update_from_the_first_library_layout_keeps_the_teams_edits_and_matches_a_fresh_bake(
    tmp_path: Path, baked_python: Path
) -> None:
    template = committed_template(tmp_path)
    added = git(template, "log", "--diff-filter=A", "--format=%H", "--", FIRST_LIBRARY_LAYOUT_PATH).split()
    assert added, f"no commit adds {FIRST_LIBRARY_LAYOUT_PATH}: a shallow clone? (CI needs the full history)"
    old, head = added[-1], git(template, "rev-parse", "HEAD").strip()
    assert old != head, "HEAD is the first library-layout commit itself: there is no template update to test"
    changed = git(template, "diff", "--name-only", old, head, "--", *BAKE_SOURCES).split()
    assert changed, f"nothing that reaches a bake changed between {old[:7]} and {head[:7]}"

    # a bake of the older template, committed, then edited and committed again as its team would
    project = cruft_create(template, tmp_path / "old", "--checkout", old)
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", f"bake of the template at {old[:7]}")
    for name, edit in TEAM_EDITS.items():
        path = project / name
        path.write_text(edit(path.read_text()))
    git(project, "commit", "-qam", "the team's changes")
    outdated = cruft("check", cwd=project)
    assert outdated.returncode != 0, "cruft check should see the newer template:\n" + outdated.stdout

    updated = cruft("update", "-y", "--checkout", head, cwd=project)
    output = f"$ cruft update -y --checkout {head[:7]}\n{updated.stdout}{updated.stderr}"
    print(output)
    assert updated.returncode == 0, output
    assert "Good work!" in updated.stdout, output

    files = bake_files(project)
    rejected = [name for name in files if name.endswith(".rej")]
    conflicted = [
        name for name, path in files.items()
        if any(line.startswith(CONFLICT_MARKERS) for line in path.read_text(errors="replace").splitlines())
    ]
    unmerged = git(project, "ls-files", "--unmerged").splitlines()
    assert (rejected, conflicted, unmerged) == ([], [], []), output
    status = [line for line in git(project, "status", "--porcelain", "--untracked-files=all").splitlines()
              if not line.endswith(" .cruft.json")]
    assert status, f"the update changed no file although {changed} did:\n{output}"
    print(f"cruft update {old[:7]} -> {head[:7]}: {len(status)} files updated "
          f"({sum('A' in line[:2] or '?' in line[:2] for line in status)} added, "
          f"{sum('D' in line[:2] for line in status)} deleted), conflicts 0")

    # every file is what a fresh bake of HEAD holds, except the three the team edited: those are HEAD's with the
    # team's edit on top
    fresh = bake_files(cruft_create(template, tmp_path / "fresh"))
    assert sorted(files) == sorted(fresh), output
    for name, path in files.items():
        expected = fresh[name].read_text(errors="replace")
        if name in TEAM_EDITS:
            expected = TEAM_EDITS[name](expected)
        assert path.read_text(errors="replace") == expected, f"{name} differs from a fresh bake of {head[:7]}"
        assert os.access(path, os.X_OK) == os.access(fresh[name], os.X_OK), f"{name}: executable bit"
    assert json.loads((project / ".cruft.json").read_text())["commit"] == head

    checked = cruft("check", cwd=project)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run_in(project, baked_python, "python", "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert tested.returncode == 0, tested.stdout[-4000:] + tested.stderr[-2000:]
