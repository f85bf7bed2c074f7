"""The README's quickstart, run as a new user would: a new virtualenv, an empty HOME, nothing else."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
import venv
from pathlib import Path

import httpx
import pytest
from support import REPO_ROOT, free_port

pytestmark = pytest.mark.slow

README_REPO_URL = "https://github.com/example-org/cookiecutter-event-service"


def quickstart_section() -> str:
    return REPO_ROOT.joinpath("README.md").read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]


def quickstart_commands() -> list[str]:
    """The shell commands of the README's Quickstart section, in order."""
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", quickstart_section(), re.S)]


def quickstart_send_command() -> str:
    """The `send` command the Quickstart's last paragraph gives inline (its backticks span a line break)."""
    section = quickstart_section()
    sends = [" ".join(code.split()) for code in re.findall(r"(?<!`)`([^`]+ send [^`]+)`(?!`)", section)]
    assert len(sends) == 1, sends
    return sends[0]


def test_the_quickstart_clones_then_bakes_and_runs_in_two_commands_then_tests() -> None:
    clone, bake_and_run, run_tests = quickstart_commands()
    assert clone == f"git clone {README_REPO_URL}"
    assert "cookiecutter" in bake_and_run and "serve" in bake_and_run
    assert run_tests.endswith("tox")
    assert "tox" in REPO_ROOT.joinpath(".ci", "run").read_text()


def test_the_quickstart_clones_bakes_and_serves_from_a_new_venv_with_no_index_holding_the_runtime(
    tmp_path: Path,
) -> None:
    # the clone is of this repository's committed main, into the folder a clone of the published address makes
    clone, bake_and_run, _ = quickstart_commands()
    clone = clone.replace(README_REPO_URL, f"{REPO_ROOT} {README_REPO_URL.rsplit('/', 1)[1]}")
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    # nothing else: no PIP_FIND_LINKS, so the runtime can come only from the clone, as the README says
    environment = {"HOME": str(home), "PATH": f"{env_dir / 'bin'}{os.pathsep}/usr/bin:/bin", "LANG": "C.UTF-8"}
    cloned = subprocess.run(["bash", "-c", clone], cwd=tmp_path, env=environment, capture_output=True, text=True,
                            timeout=120)
    assert cloned.returncode == 0, cloned.stderr
    log = (tmp_path / "quickstart.log").open("w")
    process = subprocess.Popen(["bash", "-c", f"{bake_and_run} --port {port}"], cwd=tmp_path, env=environment,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 400
        ready = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert ready is not None and ready.status_code == 200, (tmp_path / "quickstart.log").read_text()[-3000:]
        assert (tmp_path / "var" / "events.db").is_file()  # the embedded bus, relative to where it runs
        # the next thing the README tells the user to paste, against the service it just started
        sent = subprocess.run(["bash", "-c", f"{quickstart_send_command()} --url http://127.0.0.1:{port}"],
                              cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "processed" in sent.stdout and "reserve_stock" in sent.stdout, sent.stdout
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited already
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        log.close()
