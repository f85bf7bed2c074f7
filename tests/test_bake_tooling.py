"""The author's tools in a bake: `make help` lists every target, pre-commit runs offline, .editorconfig holds."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from configparser import ConfigParser
from pathlib import Path

import pytest
import yaml
from doc_examples.commands import make_targets
from support import bake, run_in


def makefile_sources(project: Path) -> str:
    parts = [project / "Makefile", *sorted(project.glob("*/*.mk"))]
    return "\n".join(path.read_text() for path in parts)


@pytest.mark.parametrize("ci", ["github", "jenkins"])
def test_make_help_lists_every_target_a_user_calls(tmp_path: Path, ci: str) -> None:
    project = bake(tmp_path, ci=ci)
    shown = subprocess.run(["make", "help"], cwd=project, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    listed = {line.split()[0] for line in shown.stdout.splitlines() if line.strip()}
    targets = make_targets(project)
    assert {"help", "install", "test", "run", "deploy", "rollback", "loadtest", "check-alerts"} <= targets
    sources = makefile_sources(project)
    # a target without a `##` line is a step of another one: it must be named as a prerequisite somewhere
    helpers = {
        target for target in targets - listed
        if re.search(rf"^[^#\n]*:[^=\n]*\b{re.escape(target)}\b", sources.replace(f"\n{target}:", "\n"), re.M)
    }
    assert targets - listed - helpers == set(), "targets missing from make help"
    assert listed - targets == set(), "make help lists targets that do not exist"
    # each listed line reads as a column: the descriptions start where the longest name still fits
    assert len({line.index(line.split()[1], len(line.split()[0]) + 2) for line in shown.stdout.splitlines()}) == 1


def editorconfig_sections(project: Path) -> list[tuple[str, dict[str, str]]]:
    parser = ConfigParser()
    parser.read_string("[root]\n" + (project / ".editorconfig").read_text())
    return [(name, dict(parser[name])) for name in parser.sections() if name != "root"]


def expand(pattern: str) -> list[str]:
    match = re.search(r"\{([^}]*)\}", pattern)
    if not match:
        return [pattern]
    return [pattern[: match.start()] + choice + pattern[match.end():] for choice in match.group(1).split(",")]


def rules_for(path: str, sections: list[tuple[str, dict[str, str]]]) -> dict[str, str]:
    rules: dict[str, str] = {}
    for pattern, values in sections:
        if any(fnmatch.fnmatch(Path(path).name, glob) for glob in expand(pattern)):
            rules.update(values)
    return rules


def test_every_text_file_of_a_bake_keeps_its_editorconfig(tmp_path: Path) -> None:
    project = bake(tmp_path, ci="both")
    sections = editorconfig_sections(project)
    problems = []
    for path in sorted(project.rglob("*")):
        if not path.is_file() or path.suffix in {".db", ".png"}:
            continue
        relative = str(path.relative_to(project))
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            problems.append(f"{relative}: not UTF-8")
            continue
        rules = rules_for(relative, sections)
        if text and not text.endswith("\n"):
            problems.append(f"{relative}: no final newline")
        if "\r\n" in text:
            problems.append(f"{relative}: CRLF line ends")
        for number, line in enumerate(text.splitlines(), 1):
            if rules.get("trim_trailing_whitespace") == "true" and line != line.rstrip():
                problems.append(f"{relative}:{number}: trailing whitespace")
            if rules.get("indent_style") == "space" and line.startswith("\t"):
                problems.append(f"{relative}:{number}: tab indent")
    assert not problems, "\n".join(problems[:40])


@pytest.mark.slow
def test_pre_commit_runs_every_hook_offline_in_a_fresh_bake(tmp_path: Path, baked_python: Path) -> None:
    # ci=github: the workflows' actionlint runs for real (the tests' PATH has it); npm-groovy-lint, the Jenkins
    # bakes' hook, takes a JVM start of 20-60 s, so it is checked as configuration below, not run
    project = bake(tmp_path, ci="github")
    # what `make install` makes, with the tests' baked venv standing in for it (the bake's own code from src/)
    (project / ".venv").symlink_to(baked_python.parent.parent)
    for command in (("git", "init", "-q"), ("git", "add", "-A")):
        subprocess.run(command, cwd=project, check=True, timeout=60)
    home = tmp_path / "pre-commit-home"
    result = run_in(project, baked_python, "pre-commit", "run", "--all-files", "--show-diff-on-failure",
                    timeout=300, PRE_COMMIT_HOME=str(home), GIT_CONFIG_GLOBAL=os.devnull)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    ran = dict(re.findall(r"^(.+?)\.{3,}(Passed|Skipped|Failed)$", result.stdout, re.M))
    assert {name: ran.get(name) for name in ("ruff check", "ruff format", "mypy --strict")} == dict.fromkeys(
        ("ruff check", "ruff format", "mypy --strict"), "Passed"), result.stdout
    assert ran.get("actionlint (the workflows)") == "Passed", result.stdout


@pytest.mark.parametrize(("ci", "linters"), [("github", {"actionlint"}), ("jenkins", {"npm-groovy-lint"}),
                                             ("both", {"actionlint", "npm-groovy-lint"})])
def test_the_pre_commit_hooks_follow_the_pipelines_of_the_bake(tmp_path: Path, ci: str, linters: set[str]) -> None:
    config = yaml.safe_load((bake(tmp_path, ci=ci) / ".pre-commit-config.yaml").read_text())
    [local] = config["repos"]
    assert local["repo"] == "local"
    hooks = {hook["id"]: hook for hook in local["hooks"]}
    assert set(hooks) == {"ruff", "ruff-format", "mypy"} | linters
    assert {hook["language"] for hook in hooks.values()} == {"system"}  # nothing to download: works offline
