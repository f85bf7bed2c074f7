"""The hooks' logic on its own: option checks and the shared-parts table."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import REPO_ROOT, TEMPLATE_DIR

import sys

sys.path.insert(0, str(TEMPLATE_DIR / "hooks"))

from bake_options import problems_with  # noqa: E402
from shared_parts import SHARED_PARTS, copy_part, parts_for  # noqa: E402

VALID = {
    "project_name": "Event Service", "project_slug": "event-service", "package_name": "event_service",
    "author_email": "a@example.com", "container_registry": "ghcr.io/example", "python_version": "3.11",
    "event_bus": "sqlite", "ci": "github", "license": "MIT",
}


def test_the_defaults_are_valid() -> None:
    assert problems_with(VALID) == []


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("project_slug", "", "project_slug: must not be empty"),
        ("project_slug", "Event-Service", "project_slug: 'Event-Service' must be lower case"),
        ("project_slug", "event--service", "project_slug: 'event--service' must be lower case"),
        ("project_slug", "9lives", "project_slug: '9lives'"),
        ("package_name", "", "package_name: must not be empty"),
        ("package_name", "class", "package_name: 'class' is a Python keyword"),
        ("package_name", "match", "package_name: 'match' is a Python keyword"),
        ("package_name", "Event_Service", "package_name: 'Event_Service' must be a lower case Python identifier"),
        ("package_name", "event-service", "package_name: 'event-service' must be a lower case Python identifier"),
        ("author_email", "nobody", "author_email: 'nobody' is not an e-mail address"),
        ("container_registry", "https://ghcr.io/x", "container_registry: 'https://ghcr.io/x'"),
        ("container_registry", "GHCR.io/x", "container_registry: 'GHCR.io/x'"),
        ("ci", "gitlab", "ci: 'gitlab' is not one of github, jenkins, both"),
        ("python_version", "3.9", "python_version: '3.9' is not one of"),
        ("copyright_year", "26", "copyright_year: '26' must be a year of four digits"),
        ("copyright_year", "2026; rm -rf", "copyright_year: '2026; rm -rf' must be a year"),
    ],
)
def test_each_bad_option_gets_one_line_naming_it(field: str, value: str, expected: str) -> None:
    problems = problems_with({**VALID, field: value})
    assert len(problems) == 1
    assert problems[0].startswith(expected)


@pytest.mark.parametrize(
    ("ci", "destinations"),
    [
        ("github", {"ansible", "loadtests", "observability", ".github/workflows"}),
        ("jenkins", {"ansible", "loadtests", "observability", "Jenkinsfile", "jenkins"}),
        ("both", {"ansible", "loadtests", "observability", ".github/workflows", "Jenkinsfile", "jenkins"}),
    ],
)
def test_the_ci_option_selects_the_pipeline_parts(ci: str, destinations: set[str]) -> None:
    assert {part.destination for part in parts_for({"ci": ci})} == destinations


def test_every_shared_part_names_a_top_level_source() -> None:
    for part in SHARED_PARTS:
        assert part.source.split("/")[0] in {"ansible", "loadtests", "observability", "pipelines"}
        assert (REPO_ROOT / part.source.split("/")[0]).parent == REPO_ROOT


def test_copying_a_part_skips_what_it_must_and_never_overwrites_rendered_files(tmp_path: Path) -> None:
    source = tmp_path / "repo" / "loadtests"
    (source / "bench").mkdir(parents=True)
    (source / "__pycache__").mkdir()
    (source / "locustfile.py").write_text("shared\n")
    (source / "event-mix.json").write_text("shared\n")
    (source / "bench" / "run.sh").write_text("bench\n")
    (source / "__pycache__" / "x.pyc").write_text("cache\n")
    project = tmp_path / "project"
    (project / "loadtests").mkdir(parents=True)
    (project / "loadtests" / "event-mix.json").write_text("rendered\n")
    part = next(part for part in SHARED_PARTS if part.source == "loadtests")

    written = copy_part(tmp_path / "repo", project, part)

    assert written == [project / "loadtests" / "locustfile.py"]
    assert (project / "loadtests" / "event-mix.json").read_text() == "rendered\n"
    assert not (project / "loadtests" / "bench").exists()
    assert not (project / "loadtests" / "__pycache__").exists()
