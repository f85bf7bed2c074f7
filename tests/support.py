"""Plain helpers for the template's tests (the fixtures that use them are in conftest.py)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = REPO_ROOT / "template"
RUNTIME_DIR = REPO_ROOT / "runtime"
CACHE_DIR = REPO_ROOT / ".cache"

# the template's local Jinja extension must be importable when a bake names template/ directly
sys.path.insert(0, str(TEMPLATE_DIR))


def bake(output_dir: Path, **options: str) -> Path:
    """Bake template/ with these options (no prompts) and return the project directory."""
    return Path(cookiecutter(str(TEMPLATE_DIR), no_input=True, output_dir=str(output_dir), extra_context=options))


def runtime_source_digest() -> str:
    """A hash of what goes into the runtime's wheel: caches built from it (the wheel, the baked venv) are keyed by it."""
    digest = hashlib.sha256()
    packaged = [RUNTIME_DIR / name for name in ("pyproject.toml", "README.md", "LICENSE")]
    for path in sorted([*packaged, *(RUNTIME_DIR / "src").rglob("*")]):
        if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".pyc"):
            digest.update(str(path.relative_to(RUNTIME_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def runtime_version() -> str:
    """The runtime's version, from the one place it is written."""
    about = (RUNTIME_DIR / "src" / "event_runtime" / "__about__.py").read_text()
    return about.split('__version__ = "', 1)[1].split('"', 1)[0]


def build_runtime_wheel(destination: Path) -> Path:
    """The runtime's wheel, built from runtime/ into `destination` (what a release would publish)."""
    destination.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(destination), str(RUNTIME_DIR)],
        check=True,
    )
    return next(destination.glob("event_runtime-*.whl"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_in(project: Path, python: Path, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command in a bake with the baked venv first on PATH and the bake's src importable."""
    environment = {
        **os.environ,
        "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(project / "src"),
        "PYTHONDONTWRITEBYTECODE": "1",
        # one mypy cache per test worker, shared by its bakes: the runtime is the same in each, so only the first
        # bake pays for a cold cache
        "MYPY_CACHE_DIR": str(CACHE_DIR / f"mypy-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"),
        **env,
    }
    return subprocess.run(list(args), cwd=project, env=environment, capture_output=True, text=True, timeout=timeout)


def text_files(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            try:
                path.read_text()
            except UnicodeDecodeError:
                continue
            yield path


def options_id(options: dict[str, Any]) -> str:
    return ",".join(f"{key}={value}" for key, value in options.items()) or "defaults"
