"""The runtime's release path, as a user will meet it once event-runtime is published: `python -m build` makes the
sdist and the wheel the release workflow (.github/workflows/release-runtime.yml) uploads, a real index (pypiserver
on 127.0.0.1) serves them, and a default bake installs from that index into a new venv, with no PIP_FIND_LINKS.
"""

from __future__ import annotations

import configparser
import email
import json
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import RUNTIME_DIR, bake, free_port, runtime_version

pytestmark = pytest.mark.slow

# what the wheel is built from, beside the package's modules
SDIST_HOLDS = ("pyproject.toml", "README.md", "LICENSE", "src/event_runtime/__about__.py", "src/event_runtime/py.typed")


@dataclass(frozen=True)
class ReleaseFiles:
    """What a release uploads: the sdist and the wheel, both named by the version in __about__.py."""

    version: str
    sdist: Path
    wheel: Path


@dataclass(frozen=True)
class LocalIndex:
    """A PyPI-compatible index serving the release files; `log` records every request it answered."""

    url: str
    log: Path


def run(*command: str | Path, timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command; a failure shows its output."""
    result = subprocess.run(
        [str(part) for part in command], check=False, capture_output=True, text=True, timeout=timeout, **kwargs
    )
    assert result.returncode == 0, f"{' '.join(map(str, command))}:\n{result.stdout}{result.stderr}"
    return result


def wheel_problems(wheel: Path, version: str) -> list[str]:
    """What a service would miss in this wheel: its name and version, the bus extras it pins, the testing kit's
    pytest plugin (loaded by entry point) and the type marker mypy --strict needs. Empty when it is complete."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = f"event_runtime-{version}.dist-info"
        metadata = email.message_from_bytes(archive.read(f"{dist_info}/METADATA"))
        entry_points = configparser.ConfigParser()
        if f"{dist_info}/entry_points.txt" in names:
            entry_points.read_string(archive.read(f"{dist_info}/entry_points.txt").decode())
    problems = []
    if metadata["Name"] != "event-runtime":
        problems.append(f"name {metadata['Name']}")
    if metadata["Version"] != version:
        problems.append(f"version {metadata['Version']}, __about__.py says {version}")
    extras = set(metadata.get_all("Provides-Extra") or [])
    problems += [f"no {extra} extra" for extra in ("redis", "sqlite") if extra not in extras]
    requirements = metadata.get_all("Requires-Dist") or []
    if not any(r.startswith("redis==") and "extra == 'redis'" in r for r in requirements):
        problems.append("the redis extra does not pin redis")
    plugin = entry_points.get("pytest11", "event_runtime", fallback=None)
    if plugin != "event_runtime.testing.plugin":
        problems.append(f"pytest11 entry point event_runtime is {plugin}")
    if "event_runtime/testing/plugin.py" not in names:
        problems.append("no event_runtime/testing/plugin.py")
    if "event_runtime/py.typed" not in names:
        problems.append("no event_runtime/py.typed")
    return problems


@pytest.fixture(scope="module")
def release_files(tmp_path_factory: pytest.TempPathFactory) -> ReleaseFiles:
    """The sdist and the wheel, built as the release workflow builds them (the wheel from the sdist)."""
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", dist, RUNTIME_DIR)
    version = runtime_version()
    files = ReleaseFiles(
        version, dist / f"event_runtime-{version}.tar.gz", dist / f"event_runtime-{version}-py3-none-any.whl"
    )
    assert sorted(dist.iterdir()) == sorted([files.sdist, files.wheel])
    return files


@pytest.fixture
def local_index(release_files: ReleaseFiles, tmp_path: Path) -> Iterator[LocalIndex]:
    """pypiserver on a free port of 127.0.0.1 serving only the release files (no fallback to another index),
    logging every request; stopped by its PID when the test ends."""
    port = free_port()
    index = LocalIndex(f"http://127.0.0.1:{port}", tmp_path / "pypiserver.log")
    with index.log.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "pypiserver", "run", "-v", "--host", "127.0.0.1", "--port", str(port),
             "--disable-fallback", "--hash-algo", "sha256", str(release_files.sdist.parent)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, f"pypiserver exited:\n{index.log.read_text()}"
            assert time.monotonic() < deadline, f"pypiserver not up in 30 s:\n{index.log.read_text()}"
            try:
                with urllib.request.urlopen(f"{index.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        yield index
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def test_the_wheel_is_named_and_versioned_with_its_extras_plugin_and_types(release_files: ReleaseFiles) -> None:
    assert wheel_problems(release_files.wheel, release_files.version) == []


def test_the_metadata_check_rejects_a_wheel_without_its_plugin_or_type_marker(
    release_files: ReleaseFiles, tmp_path: Path
) -> None:
    stripped = tmp_path / release_files.wheel.name
    with zipfile.ZipFile(release_files.wheel) as source, zipfile.ZipFile(stripped, "w") as copy:
        for item in source.infolist():
            if not item.filename.endswith(("entry_points.txt", "py.typed")):
                copy.writestr(item, source.read(item))
    assert wheel_problems(stripped, release_files.version) == [
        "pytest11 entry point event_runtime is None",
        "no event_runtime/py.typed",
    ]


def test_the_sdist_holds_what_the_wheel_is_built_from(release_files: ReleaseFiles) -> None:
    top = f"event_runtime-{release_files.version}"
    with tarfile.open(release_files.sdist) as archive:
        names = set(archive.getnames())
        member = archive.extractfile(f"{top}/PKG-INFO")
        assert member is not None
        pkg_info = email.message_from_bytes(member.read())
    assert (pkg_info["Name"], pkg_info["Version"]) == ("event-runtime", release_files.version)
    assert {f"{top}/{path}" for path in SDIST_HOLDS} <= names


def test_the_metadata_renders_on_the_index(release_files: ReleaseFiles) -> None:
    # what PyPI checks on upload (the README as the long description, the metadata fields); the workflow runs it too
    result = run(sys.executable, "-m", "twine", "check", "--strict", release_files.sdist, release_files.wheel)
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_a_default_bake_installs_the_runtime_from_the_index_and_its_command_runs(
    local_index: LocalIndex, release_files: ReleaseFiles, tmp_path: Path
) -> None:
    project = bake(tmp_path / "bake")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    # A new user's environment (as test_quickstart.py's): an empty HOME, so no pip configuration of this machine's
    # user, and no PIP_FIND_LINKS, the way the other tests serve the runtime (conftest.py). The local index is an
    # extra index beside pip's default one: once published, event-runtime is on the index pip already uses, and the
    # runtime's dependencies come from there as they will then. --extra-index-url, not --index-url, so nothing but
    # the release files has to be on the local index; pip merges the indexes, and the report below proves which one
    # the runtime came from (a same-named project on the default index would make this test fail, not pass).
    home = tmp_path / "home"
    home.mkdir()
    environment = {"HOME": str(home), "PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    report = tmp_path / "pip-report.json"
    run(
        env_dir / "bin" / "python", "-m", "pip", "install", "--report", report,
        "--extra-index-url", f"{local_index.url}/simple/", project,
        env=environment, cwd=tmp_path,
    )  # fmt: skip

    installed = {item["metadata"]["name"]: item for item in json.loads(report.read_text())["install"]}
    runtime = installed["event-runtime"]
    assert runtime["metadata"]["version"] == release_files.version
    assert runtime["download_info"]["url"] == f"{local_index.url}/packages/{release_files.wheel.name}"
    assert f'"GET /packages/{release_files.wheel.name} HTTP/1.1" 200' in local_index.log.read_text()

    command = env_dir / "bin" / "event-service"
    version = run(command, "--version", env=environment, cwd=tmp_path).stdout.strip()
    assert version == f"event-service 0.1.0 (event-runtime {release_files.version})"
    settings = run(command, "settings", env=environment, cwd=tmp_path).stdout.splitlines()
    assert settings[0].startswith("| variable |")
    assert any(line.startswith("| `SERVICE_BUS_URL` |") for line in settings), settings
    # the testing kit's plugin is registered by the installed distribution: what a bake's test suite loads
    plugins = run(
        env_dir / "bin" / "python", "-c",
        "from importlib.metadata import entry_points; print(*entry_points(group='pytest11', name='event_runtime'))",
        env=environment, cwd=tmp_path,
    )  # fmt: skip
    assert "event_runtime.testing.plugin" in plugins.stdout
    run(env_dir / "bin" / "python", "-m", "pip", "check", env=environment, cwd=tmp_path)
