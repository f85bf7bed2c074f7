"""Fixtures shared by the template's tests: baking, the runtime's wheel, a venv with the baked projects'
dependencies, free ports.

Nothing is published from this repository, so the bakes' pin of `event-runtime` is served from a folder holding
the wheel built from runtime/: PIP_FIND_LINKS, set for this test session and every process it starts (pip, tox,
Ansible's controller-side `pip download`), as a user without the index would.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

import pytest
from support import CACHE_DIR, TEMPLATE_DIR, bake, build_runtime_wheel, runtime_source_digest
from support import free_port as pick_free_port

# bakes that together pull in every dependency a baked project can have
DEPENDENCY_BAKES: tuple[dict[str, str], ...] = ({}, {"event_bus": "redis"})


@pytest.fixture
def bake_project(tmp_path: Path) -> Callable[..., Path]:
    """bake_project(**options) -> the baked project directory, in this test's tmp_path."""
    counter = iter(range(1000))

    def make(**options: str) -> Path:
        return bake(tmp_path / f"bake-{next(counter)}", **options)

    return make


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return pick_free_port()


@pytest.fixture(scope="session")
def runtime_wheels() -> Path:
    """A folder with the runtime's wheel, on PIP_FIND_LINKS for the rest of the session."""
    folder = CACHE_DIR / f"runtime-wheels-{runtime_source_digest()}"
    CACHE_DIR.mkdir(exist_ok=True)
    with (CACHE_DIR / "runtime-wheels.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not list(folder.glob("event_runtime-*.whl")):
            build_runtime_wheel(folder)
    others = os.environ.get("PIP_FIND_LINKS", "")
    if str(folder) not in others.split():
        os.environ["PIP_FIND_LINKS"] = f"{folder} {others}".strip()
    return folder


@pytest.fixture(autouse=True)
def _runtime_on_find_links(request: pytest.FixtureRequest) -> None:
    """Slow tests bake and install services, so each gets the runtime's wheel on PIP_FIND_LINKS."""
    if request.node.get_closest_marker("slow"):
        request.getfixturevalue("runtime_wheels")


def _dependency_fingerprint() -> str:
    digest = hashlib.sha256()
    digest.update(runtime_source_digest().encode())
    digest.update((TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / "pyproject.toml").read_bytes())
    digest.update(repr(DEPENDENCY_BAKES).encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def baked_python(tmp_path_factory: pytest.TempPathFactory, runtime_wheels: Path) -> Path:
    """A venv python with every dependency of the baked projects (the runtime with both extras and the dev tools
    pinned in their pyproject), not the projects.

    Built once and cached in .cache/ by the hash of the template's pyproject; run a bake's code with
    PYTHONPATH=<bake>/src (support.run_in does).
    """
    env_dir = CACHE_DIR / f"baked-venv-{_dependency_fingerprint()}"
    CACHE_DIR.mkdir(exist_ok=True)
    # pytest-xdist workers share the cache: one builds it, the others wait on the lock
    with (CACHE_DIR / "baked-venv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_baked_venv(env_dir, tmp_path_factory)


def _build_baked_venv(env_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    python = env_dir / "bin" / "python"
    if (env_dir / ".complete").exists():
        return python
    shutil.rmtree(env_dir, ignore_errors=True)
    venv.EnvBuilder(with_pip=True).create(env_dir)
    for options in DEPENDENCY_BAKES:
        project = bake(tmp_path_factory.mktemp("dependency-bake"), **options)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"{project}[dev]"], check=True)
        subprocess.run([str(python), "-m", "pip", "uninstall", "--quiet", "--yes", project.name], check=True)
    (env_dir / ".complete").write_text("ok\n")
    return python
