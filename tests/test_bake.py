"""Real cookiecutter bakes of every supported option set: they succeed, render fully and carry the right files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from cookiecutter.exceptions import FailedHookException
from support import REPO_ROOT, TEMPLATE_DIR, bake, options_id, text_files

# each option changed at least once from its default
OPTION_SETS: list[dict[str, str]] = [
    {},
    {"ci": "jenkins"},
    {"event_bus": "redis"},
    {"ci": "both"},
    {"python_version": "3.12", "license": "Apache-2.0"},
    {"python_version": "3.13", "license": "Proprietary"},
    {"project_name": "Acme Billing Events", "package_name": "acme_billing", "author_name": "Acme Ops",
     "author_email": "ops@acme.test", "description": "Billing events for \"Acme\" & co",
     "container_registry": "registry.acme.test:5000/platform"},
]
COOKIECUTTER_LEFTOVER = re.compile(r"\{\{-?\s*cookiecutter\.|\{%-?[^%]*cookiecutter\.")
JINJA_LEFTOVER = re.compile(r"\{\{|\{%")
PROJECT_TEMPLATE = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"


@pytest.mark.parametrize("options", OPTION_SETS, ids=options_id)
def test_a_bake_renders_every_file_completely(tmp_path: Path, options: dict[str, str]) -> None:
    project = bake(tmp_path, **options)
    # files the template renders must hold no Jinja at all; files copied from ansible/, loadtests/ and pipelines/
    # keep their own template syntax (Ansible's Jinja, GitHub's ${{ }}) but must not expect cookiecutter
    rendered = {path.relative_to(PROJECT_TEMPLATE).parts[0] for path in PROJECT_TEMPLATE.iterdir()}
    leftovers = [
        f"{path.relative_to(project)}:{number}"
        for path in text_files(project)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if COOKIECUTTER_LEFTOVER.search(line)
        or (path.relative_to(project).parts[0] in rendered and JINJA_LEFTOVER.search(line.replace("${{", "")))
    ]
    assert leftovers == []


def test_the_default_bake_is_the_event_service(tmp_path: Path) -> None:
    project = bake(tmp_path)
    assert project.name == "event-service"
    assert (project / "src" / "event_service" / "handlers" / "orders.py").is_file()
    pyproject = (project / "pyproject.toml").read_text()
    assert 'name = "event-service"' in pyproject
    assert 'event-service = "event_service.app:main"' in pyproject


def test_custom_names_reach_package_script_and_image(tmp_path: Path) -> None:
    project = bake(tmp_path, project_name="Acme Billing Events", package_name="acme_billing",
                   container_registry="registry.acme.test:5000/platform")
    assert project.name == "acme-billing-events"
    assert 'name="acme-billing-events"' in (project / "src" / "acme_billing" / "app.py").read_text()
    assert not (project / "src" / "event_service").exists()
    assert "REGISTRY := registry.acme.test:5000/platform" in (project / "Makefile").read_text()


@pytest.mark.parametrize(
    ("license_choice", "phrase"),
    [("MIT", "MIT License"), ("Apache-2.0", "Apache License, Version 2.0"), ("Proprietary", "All rights reserved")],
)
def test_the_license_file_follows_the_choice(tmp_path: Path, license_choice: str, phrase: str) -> None:
    assert phrase in (bake(tmp_path, license=license_choice) / "LICENSE").read_text()


@pytest.mark.parametrize(
    ("ci", "present", "absent"),
    [
        ("github", [".github/workflows", ".github/dependabot.yml"], ["Jenkinsfile", "jenkins"]),
        # the repository may still live on GitHub: Dependabot, but no workflows
        ("jenkins", ["Jenkinsfile", "jenkins", ".github/dependabot.yml"], [".github/workflows"]),
        ("both", [".github/workflows", ".github/dependabot.yml", "Jenkinsfile", "jenkins"], []),
    ],
)
def test_only_the_chosen_pipelines_are_baked(tmp_path: Path, ci: str, present: list[str], absent: list[str]) -> None:
    if not (REPO_ROOT / "pipelines").is_dir():
        pytest.skip("pipelines/ has not landed yet")
    project = bake(tmp_path, ci=ci)
    assert [name for name in present if not (project / name).exists()] == []
    assert [name for name in absent if (project / name).exists()] == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"project_slug": "Bad Slug"}, "project_slug: 'Bad Slug' must be lower case"),
        ({"package_name": "import"}, "package_name: 'import' is a Python keyword"),
        ({"package_name": "Upper"}, "package_name: 'Upper' must be a lower case Python identifier"),
        ({"project_name": " ", "project_slug": "x", "package_name": "x"}, "project_name: must not be empty"),
        ({"author_email": "not-an-email"}, "author_email: 'not-an-email' is not an e-mail address"),
        ({"event_bus": "kafka"}, "event_bus: 'kafka' is not one of sqlite, redis"),
        ({"ci": "gitlab"}, "ci: 'gitlab' is not one of github, jenkins, both"),
        ({"python_version": "3.9"}, "python_version: '3.9' is not one of 3.11, 3.12, 3.13"),
        ({"license": "GPL"}, "license: 'GPL' is not one of MIT, Apache-2.0, Proprietary"),
        ({"project_name": ""}, "project_name: must not be empty"),
    ],
)
def test_bad_options_stop_the_bake_with_a_line_naming_the_field(
    tmp_path: Path, options: dict[str, str], message: str
) -> None:
    command = [sys.executable, "-m", "cookiecutter", str(TEMPLATE_DIR), "--no-input", "-o", str(tmp_path)]
    command += [f"{key}={value}" for key, value in options.items()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    # one line per bad field (a slug that is bad makes the package derived from it bad too), each naming it
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"Error: {message}"), result.stderr
    assert all(re.match(r"^(Error: )?[a-z_]+: ", line) for line in lines), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left behind


def test_a_bad_option_through_the_python_api_raises_an_error_naming_it_before_anything_is_written(
    tmp_path: Path,
) -> None:
    with pytest.raises(click.ClickException, match="package_name: 'def' is a Python keyword"):
        bake(tmp_path, package_name="def")
    assert list(tmp_path.iterdir()) == []


def test_the_pre_gen_hook_still_refuses_bad_options_in_a_context_that_skipped_the_check(tmp_path: Path) -> None:
    with pytest.raises(FailedHookException):
        bake(tmp_path, package_name="def", __options_checked="ok")


def test_the_root_entry_and_the_directory_form_bake_the_same_project(tmp_path: Path) -> None:
    root = subprocess.run(
        [sys.executable, "-m", "cookiecutter", str(REPO_ROOT), "--no-input", "-o", str(tmp_path / "root")],
        capture_output=True, text=True, timeout=60,
    )
    directory = subprocess.run(
        [sys.executable, "-m", "cookiecutter", str(REPO_ROOT), "--directory", "template", "--no-input",
         "-o", str(tmp_path / "dir"), "ci=both"],
        capture_output=True, text=True, timeout=60,
    )
    assert root.returncode == 0, root.stderr
    assert directory.returncode == 0, directory.stderr
    assert (tmp_path / "root" / "event-service" / "pyproject.toml").is_file()
    assert (tmp_path / "dir" / "event-service" / "pyproject.toml").is_file()


def test_the_root_cookiecutter_json_points_at_template() -> None:
    entries = json.loads((REPO_ROOT / "cookiecutter.json").read_text())["templates"]
    assert [entry["path"] for entry in entries.values()] == ["./template"]


def test_the_release_version_is_the_package_version_plus_the_commit(tmp_path: Path) -> None:
    project = bake(tmp_path)
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "bake"]):
        subprocess.run(git + command, cwd=project, check=True, capture_output=True)
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=project, capture_output=True,
                            text=True, check=True).stdout.strip()
    printed = subprocess.run(["make", "--no-print-directory", "print-VERSION", "print-IMAGE_TAG"], cwd=project,
                             capture_output=True, text=True, check=True).stdout.split()
    assert printed == [f"0.1.0+g{commit}", f"0.1.0-g{commit}"]
