"""The pipelines inside real bakes: copied verbatim, lint-clean, and every make target they call exists.

Cost (2 cores, measured): ~0.5 s per bake, the workflow linters ~2 s per bake; ~10 s for the module.
"""

from __future__ import annotations

import filecmp
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from test_pipelines_github import assert_workflows_clean
from test_pipelines_jenkins_structure import KNOWN_STEPS, check_pipeline, find_pipeline, parse_groovy
from test_pipelines_parity import MakeCall, all_invoked_targets

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = ROOT / "pipelines"

# Which file of a bake defines a target: the Makefile itself, or a fragment another part brings.
FRAGMENT_OF_TARGET = {
    "deploy": "ansible/*.mk",
    "rollback": "ansible/*.mk",
    "verify": "ansible/*.mk",
    "drift": "ansible/*.mk",
    "promote": "ansible/*.mk",
    "loadtest": "loadtests/*.mk",
}
# A value for each variable the pipelines pass, so `make -n` sees the same command line as in a pipeline.
SAMPLE_VALUES = {
    "ENV": "staging",
    "VERSION": "0123456789abcdef0123456789abcdef01234567",
    "HOST": "http://127.0.0.1:8000",
}


@pytest.fixture
def bake(request):
    """The lead's bake_project fixture from tests/conftest.py; these tests wait for it rather than copy it."""
    try:
        return request.getfixturevalue("bake_project")
    except pytest.FixtureLookupError:
        pytest.skip("the bake_project fixture (tests/conftest.py from main) is not here yet")


def _files_under(folder: Path) -> set[Path]:
    return {path.relative_to(folder) for path in folder.rglob("*") if path.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize("ci", ["github", "jenkins", "both"])
def test_bake_gets_the_pipelines_of_its_ci_option_verbatim(bake, ci):
    project = bake(ci=ci)
    workflows = project / ".github" / "workflows"
    if ci in {"github", "both"}:
        assert _files_under(workflows) == _files_under(PIPELINES / "github" / "workflows")
        for name in _files_under(workflows):
            assert filecmp.cmp(workflows / name, PIPELINES / "github" / "workflows" / name, shallow=False)
    else:
        assert not workflows.exists()
    if ci in {"jenkins", "both"}:
        assert filecmp.cmp(project / "Jenkinsfile", PIPELINES / "jenkins" / "Jenkinsfile", shallow=False)
        library = _files_under(PIPELINES / "jenkins") - {Path("Jenkinsfile")}
        library = {path for path in library if path.parts[0] not in {"examples", "README.md"}}
        assert _files_under(project / "jenkins") == library
        # The Jenkinsfile loads the library with libraryPath 'jenkins/': that is where vars/ must be.
        assert (project / "jenkins" / "vars" / "eventServicePipeline.groovy").is_file()
    else:
        assert not (project / "Jenkinsfile").exists() and not (project / "jenkins").exists()


@pytest.mark.slow
@pytest.mark.parametrize("ci", ["github", "both"])
def test_baked_workflows_pass_the_linters(bake, ci):
    project = bake(ci=ci)
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    assert_workflows_clean(project)


@pytest.mark.slow
@pytest.mark.parametrize("ci", ["jenkins", "both"])
def test_baked_jenkins_pipeline_passes_the_structure_check(bake, ci):
    """Groovy lint runs once, over pipelines/jenkins/ (test_pipelines_jenkins.py): a bake's Jenkins files are
    byte-for-byte those (test above), and one more JVM start per bake costs 25-100 s on this machine."""
    project = bake(ci=ci)
    known_steps = KNOWN_STEPS | {path.stem for path in (project / "jenkins" / "vars").glob("*.groovy")}
    source = (project / "jenkins" / "vars" / "eventServicePipeline.groovy").read_text(encoding="utf-8")
    assert check_pipeline(find_pipeline(parse_groovy(source)), known_steps) == []


def _make_dry_run(project: Path, call: MakeCall) -> subprocess.CompletedProcess:
    variables = [
        f"{name}={call.env or SAMPLE_VALUES[name]}" if name == "ENV" else f"{name}={SAMPLE_VALUES[name]}"
        for name in sorted(call.variables)
    ]
    return subprocess.run(
        ["make", "-n", call.target, *variables],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=os.environ | {"MAKEFLAGS": ""},
    )


def _invoked(fragment: str | None) -> list[MakeCall]:
    return sorted(
        {c for c in all_invoked_targets() if FRAGMENT_OF_TARGET.get(c.target) == fragment},
        key=lambda c: (c.target, c.env or ""),
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "fragment", [None, "ansible/*.mk", "loadtests/*.mk"], ids=["Makefile", "ansible-fragment", "loadtests-fragment"]
)
def test_every_target_the_pipelines_invoke_exists_in_a_bake(bake, fragment):
    project = bake(ci="both")
    if fragment and not list(project.glob(fragment)):
        pytest.skip(f"{fragment} is not in the bake yet (its issue has not landed); its targets can't be checked")
    calls = _invoked(fragment)
    assert calls
    failures = {repr(c): _make_dry_run(project, c).stderr for c in calls}
    assert {name: err for name, err in failures.items() if err and "No rule to make target" in err} == {}
    for call in calls:
        assert _make_dry_run(project, call).returncode == 0, repr(call)


@pytest.mark.slow
def test_promotion_in_a_bake_is_a_change_of_the_environment_file(bake):
    """GitOps: `make promote` rewrites deploy/environments/<env>.yml, which the pipelines then commit."""
    project = bake(ci="both")
    if not list(project.glob("ansible/*.mk")):
        pytest.skip("ansible/*.mk is not in the bake yet (the Ansible issue has not landed)")
    version = SAMPLE_VALUES["VERSION"]
    for environment in ("staging", "production"):
        env_file = project / "deploy" / "environments" / f"{environment}.yml"
        # the pipelines record the run holding the wheel here (artifact_run): the line must be there to rewrite
        assert set(yaml.safe_load(env_file.read_text(encoding="utf-8"))) == {"service_version", "artifact_run"}
        subprocess.run(
            ["make", "promote", f"ENV={environment}", f"VERSION={version}"],
            cwd=project,
            check=True,
            capture_output=True,
            timeout=60,
        )
        assert str(yaml.safe_load(env_file.read_text(encoding="utf-8"))["service_version"]) == version
