"""The Jenkins pipeline under pipelines/jenkins/: groovy lint, how the library is loaded, how credentials flow."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
JENKINS_DIR = ROOT / "pipelines" / "jenkins"
LIBRARY_VARS = JENKINS_DIR / "vars"
GROOVY_FILES = sorted(LIBRARY_VARS.glob("*.groovy"))


def groovy_lint(folder: Path) -> dict:
    """npm-groovy-lint over every Jenkinsfile and .groovy file under `folder`; its JSON report."""
    executable = shutil.which("npm-groovy-lint")
    assert executable, "npm-groovy-lint missing: run .ci/setup-pipelines.sh"
    result = subprocess.run(
        # C1-only JIT: a short run spends most of its time starting the JVM, and this start is cheaper.
        [
            executable,
            "--noserver",
            "--javaoptions=-XX:TieredStopAtLevel=1",
            "--output",
            "json",
            "--failon",
            "warning",
            "--config",
            str(JENKINS_DIR / ".groovylintrc.json"),
            "--path",
            str(folder),
            "--files",
            "**/Jenkinsfile,**/*.groovy",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(result.stdout[result.stdout.index("{") :])
    report["returncode"] = result.returncode
    return report


def lint_problems(report: dict) -> list[str]:
    """Errors and warnings of a groovy-lint report, one line each."""
    return [
        f"{path}:{error['line']} {error['severity']} {error['rule']}: {error['msg']}"
        for path, file_report in report["files"].items()
        for error in file_report.get("errors", [])
        if error["severity"] in {"error", "warning"}
    ]


@pytest.mark.slow
def test_jenkinsfiles_and_library_pass_groovy_lint(tmp_path):
    """~25 s (one JVM start). Also proves the linter fails on broken Groovy, in the same run."""
    shutil.copytree(JENKINS_DIR, tmp_path / "jenkins")
    broken = tmp_path / "broken" / "Jenkinsfile"
    broken.parent.mkdir()
    broken.write_text("pipeline {\n    stages {\n        stage('x' {\n", encoding="utf-8")
    report = groovy_lint(tmp_path)
    problems = lint_problems(report)
    assert [p for p in problems if "/broken/" in p], "the linter must flag the broken file"
    assert [p for p in problems if "/broken/" not in p] == []
    linted = {Path(path).name for path in report["files"]}
    assert {"Jenkinsfile", "eventServicePipeline.groovy"} <= linted


def test_baked_jenkinsfile_loads_the_library_from_its_own_checkout():
    text = (JENKINS_DIR / "Jenkinsfile").read_text(encoding="utf-8")
    # legacySCM(scm): the same repository and revision as this Jenkinsfile; jenkins/ is where the bake puts vars/.
    assert re.search(r"retriever:\s*legacySCM\(libraryPath:\s*'jenkins/',\s*scm:\s*scm\)", text)
    assert re.findall(r"^\s*(\w+)\(", text, re.M) == ["library", "eventServicePipeline"], "one load, one call"


def test_example_jenkinsfile_is_the_library_and_one_call():
    lines = [
        line
        for line in (JENKINS_DIR / "examples" / "Jenkinsfile").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("//")
    ]
    assert lines[0] == "@Library('event-service-pipeline') _"
    assert len(lines) == 2 and lines[1].startswith("eventServicePipeline(")


def test_library_has_one_var_per_step_the_pipeline_uses():
    pipeline = (LIBRARY_VARS / "eventServicePipeline.groovy").read_text(encoding="utf-8")
    step_call = (r"\b(makeTarget|with\w+Credentials|withRegistryLogin|gitops\w+|pipelineSettings|serviceVersion"
                 r"|releaseWheel|templateCheck)\(")
    used = set(re.findall(step_call, pipeline))
    defined = {path.stem for path in GROOVY_FILES}
    assert used <= defined
    assert defined - used == {"eventServicePipeline"}, "every var is used"


def test_every_setting_the_library_reads_has_a_default():
    defaults = (LIBRARY_VARS / "pipelineSettings.groovy").read_text(encoding="utf-8")
    known = set(re.findall(r"^\s*(\w+):", defaults, re.M))
    for path in GROOVY_FILES:
        read = set(re.findall(r"\bsettings\.(\w+)", path.read_text(encoding="utf-8")))
        assert read <= known, f"{path.name} reads settings without a default: {read - known}"


def test_credentials_flow_only_through_with_credentials():
    for path in [*GROOVY_FILES, JENKINS_DIR / "Jenkinsfile"]:
        text = path.read_text(encoding="utf-8")
        # No `environment { X = credentials('id') }`: the binding must be scoped to the steps that need it.
        assert "credentials(" not in text.replace("withCredentials(", ""), path.name
        bound = re.findall(r"(?:Variable|variable):\s*'(\w+)'", text)
        if bound:
            assert "withCredentials(" in text, path.name
        # A secret inside a Groovy "..." string would be interpolated into the script text Jenkins stores.
        # Double quotes inside a single-quoted Groovy string belong to the shell, which expands them: fine.
        groovy_code = re.sub(r"'''.*?'''|'(?:[^'\\\n]|\\.)*'", "''", text, flags=re.S)
        for string in re.findall(r'"(?:[^"\\\n]|\\.)*"', groovy_code):
            for variable in bound:
                assert variable not in string, f"{path.name}: {variable} inside a Groovy double-quoted string"


def test_make_target_arguments_are_shell_quoted():
    text = (LIBRARY_VARS / "makeTarget.groovy").read_text(encoding="utf-8")
    assert "shellQuote(value)" in text


def shell_scripts_of(path: Path) -> list[str]:
    """The shell scripts a library file hands to `sh` as single-quoted Groovy strings (which Groovy leaves alone)."""
    text = path.read_text(encoding="utf-8")
    return re.findall(r"script:\s*'''(.*?)'''", text, re.S) + re.findall(r"script:\s*'([^'\n]*)'", text)


def test_library_shell_scripts_pass_shellcheck():
    """The Jenkins counterpart of actionlint's shellcheck on run: blocks."""
    scripts = [(path.name, script) for path in GROOVY_FILES for script in shell_scripts_of(path)]
    assert len(scripts) >= 5, "the pattern lost the library's sh scripts"
    for name, script in scripts:
        # Jenkins' sh runs `sh -xe`; the variables come from withEnv/withCredentials/Jenkins itself.
        result = subprocess.run(
            ["shellcheck", "--shell=sh", "--exclude=SC2154", "-"],
            input=script,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"{name}:\n{script}\n{result.stdout}"


def test_shellcheck_harness_flags_a_bad_script():
    result = subprocess.run(
        ["shellcheck", "--shell=sh", "-"],
        input="rm -rf $DIR/*\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
