"""What the post-gen hook brings into a bake from the repository's top level, and what it prunes.

`ansible/`, `loadtests/`, `observability/` and `pipelines/` at the top of the repository are the single source: a
bake gets copies, so there is never a second hand-kept version inside template/. Copied, not rendered: the
dashboard's and the alert rules' own `{{ }}` templates reach the bake as written.
"""

from __future__ import annotations

import shutil
from fnmatch import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Never copied anywhere: caches and the parts of a top-level folder that serve the template repository itself.
ALWAYS_SKIPPED = ("__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", ".mypy_cache", "reports")


@dataclass(frozen=True)
class SharedPart:
    source: str
    destination: str
    ci_choices: tuple[str, ...] = ("github", "jenkins", "both")
    skip: tuple[str, ...] = field(default_factory=tuple)


SHARED_PARTS = (
    SharedPart("ansible", "ansible"),
    SharedPart("loadtests", "loadtests", skip=("bench",)),
    SharedPart("observability", "observability"),
    SharedPart("pipelines/github/workflows", ".github/workflows", ci_choices=("github", "both")),
    SharedPart("pipelines/jenkins/Jenkinsfile", "Jenkinsfile", ci_choices=("jenkins", "both")),
    SharedPart(
        "pipelines/jenkins",
        "jenkins",
        ci_choices=("jenkins", "both"),
        skip=("Jenkinsfile", "README.md", "examples", "node_modules"),
    ),
)


def parts_for(options: Mapping[str, object]) -> list[SharedPart]:
    """The shared parts a bake with these options receives."""
    return [part for part in SHARED_PARTS if options.get("ci") in part.ci_choices]


def copy_part(repo_root: Path, project_dir: Path, part: SharedPart) -> list[Path]:
    """Copy one part; files the template already rendered win. Returns the files written."""
    source = repo_root / part.source
    if not source.exists():
        return []
    destination = project_dir / part.destination
    written: list[Path] = []
    if source.is_file():
        if not destination.exists():
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
            written.append(destination)
        return written
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if relative.parts[0] in part.skip or _ignored(relative):
            continue
        target = destination / relative
        if path.is_dir() or target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        written.append(target)
    return written


def _ignored(relative: Path) -> bool:
    return any(fnmatch(name, pattern) for name in relative.parts for pattern in ALWAYS_SKIPPED)


def bring_shared_parts(repo_root: Path, project_dir: Path, options: Mapping[str, object]) -> list[Path]:
    """Copy every shared part the options select into the bake."""
    written: list[Path] = []
    for part in parts_for(options):
        written.extend(copy_part(repo_root, project_dir, part))
    return written
