"""This repository's own workflows (.github/workflows/, not pipelines/ which bakes copy): the runtime's release
workflow passes the linters the baked workflows pass, builds once, checks what it built and publishes only that,
with the one job that can publish the only one that can mint an OIDC token."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from test_pipelines_github import PINS_NOTE, assert_workflows_clean

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / ".github" / "workflows" / "release-runtime.yml"
PINS = ROOT / "tests" / "requirements" / "template.txt"


def release() -> dict:
    return yaml.safe_load(RELEASE.read_text(encoding="utf-8"))


def steps(job: str) -> list[dict]:
    return release()["jobs"][job]["steps"]


def all_steps() -> list[dict]:
    return [step for job in release()["jobs"].values() for step in job.get("steps", [])]


def test_the_repository_s_workflows_pass_actionlint_zizmor_and_the_schema() -> None:
    # lint_workflows (through assert_workflows_clean) takes a project holding .github/workflows: this repository
    assert_workflows_clean(ROOT)


def test_a_runtime_tag_releases_and_a_manual_run_is_a_dry_run() -> None:
    document = release()
    triggers = document.get("on", document.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["push"] == {"tags": ["runtime-v*"]}
    assert "workflow_dispatch" in triggers
    assert release()["jobs"]["publish"]["if"] == "startsWith(github.ref, 'refs/tags/runtime-v')"


def test_publishing_needs_the_build_and_its_checks() -> None:
    jobs = release()["jobs"]
    assert set(jobs) == {"build", "publish"}
    needs = jobs["publish"]["needs"]
    assert "build" in ([needs] if isinstance(needs, str) else needs)
    build = [step.get("run", "") for step in steps("build")]
    # the tag is checked before anything is built, the suite runs on the built wheel before it is uploaded
    tag_check = next(i for i, line in enumerate(build) if "__about__.py" in line)
    built = next(i for i, line in enumerate(build) if "python -m build" in line)
    suite = next(i for i, line in enumerate(build) if "tox -e runtime --installpkg" in line)
    upload = next(
        i for i, step in enumerate(steps("build")) if step.get("uses", "").startswith("actions/upload-artifact@")
    )
    assert tag_check < built < suite < upload
    assert '"$GITHUB_REF_NAME" != "runtime-v$version"' in build[tag_check]


def test_the_publish_job_uploads_exactly_the_build_s_artifact() -> None:
    uploaded = next(s for s in steps("build") if s.get("uses", "").startswith("actions/upload-artifact@"))["with"]
    downloaded = next(s for s in steps("publish") if s.get("uses", "").startswith("actions/download-artifact@"))["with"]
    assert downloaded["name"] == uploaded["name"] and downloaded["path"] == uploaded["path"] == "dist/"
    publish_runs = [step.get("run", "") for step in steps("publish")]
    assert not [line for line in publish_runs if "python -m build" in line or "tox" in line], "publish builds nothing"
    assert publish_runs[-1] == "python -m twine upload --non-interactive dist/*"


def test_only_the_publish_job_can_mint_an_id_token() -> None:
    document = release()
    assert document["permissions"] == {}
    for name, job in document["jobs"].items():
        permissions = job["permissions"]
        assert set(permissions.values()) <= {"read", "write"}, name
        writes = {scope for scope, level in permissions.items() if level == "write"}
        assert writes == ({"id-token"} if name == "publish" else set()), f"{name} writes {writes}"
    assert document["jobs"]["publish"]["environment"] == "pypi", "PyPI's trusted publisher names the environment"
    # trusted publishing: no stored token anywhere
    assert "secrets." not in RELEASE.read_text(encoding="utf-8")


def test_every_action_is_pinned_to_a_full_sha() -> None:
    uses = [step["uses"] for step in all_steps() if "uses" in step]
    assert uses
    for ref in uses:
        assert re.fullmatch(r"[\w-]+/[\w.-]+@[0-9a-f]{40}", ref), f"{ref} not pinned to a full commit SHA"


@pytest.mark.skipif(not PINS_NOTE.exists(), reason=f"{PINS_NOTE} not beside the repository")
def test_every_action_is_at_a_verified_commit() -> None:
    table_row = re.compile(r"^\|\s*([\w-]+/[\w.-]+)\s*\|\s*v[\d.]+\s*\|\s*([0-9a-f]{40})\s*\|", re.MULTILINE)
    verified = dict(table_row.findall(PINS_NOTE.read_text(encoding="utf-8")))
    for step in all_steps():
        if "uses" in step:
            action, _, sha = step["uses"].partition("@")
            assert verified.get(action) == sha, f"{action}@{sha} is not a commit listed in {PINS_NOTE.name}"


def test_shell_lines_hold_no_expressions_and_checkouts_keep_no_token() -> None:
    for step in all_steps():
        assert "${{" not in step.get("run", ""), f"{step}: expressions go through env:, not run:"
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


def test_the_release_tools_are_installed_at_the_pins_the_tests_use() -> None:
    pinned = dict(re.findall(r"^([\w.-]+)==(\S+)$", PINS.read_text(encoding="utf-8"), re.MULTILINE))
    installs = [step["run"] for step in all_steps() if "pip install" in step.get("run", "")]
    assert installs
    for line in installs:
        # a constraints file pins what it names and lets anything else through unpinned: each tool must be in it
        prefix = "python -m pip install --constraint tests/requirements/template.txt "
        assert line.startswith(prefix), line
        tools = line.removeprefix(prefix).split()
        assert tools and all(tool in pinned for tool in tools), f"{tools} not all pinned in {PINS.name}"
