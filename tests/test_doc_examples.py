"""Every example a user would paste, from README.md, the baked README and docs/, runs (docs/testing.md).

Unmarked `sh`/`python` blocks fail the quick test; runnable ones run in one fresh default bake per source, in the
order they are written: Python blocks become the bake's modules and tests (then its ruff, mypy and pytest run over
them), shell blocks run with bash against the bake's started service.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from doc_examples.blocks import SHELL_LANGUAGES, Block, blocks_of, problems_with_markers
from doc_examples.commands import command_lines, make_targets
from doc_examples.runner import (
    Outcome,
    environment,
    run_serving,
    run_shell,
    service_for,
    write_console_scripts,
    write_module,
)
from service_process import ServiceProcess
from support import REPO_ROOT, TEMPLATE_DIR, bake, run_in

BAKED_README = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / "README.md"
LOADTESTS_README = REPO_ROOT / "loadtests" / "README.md"  # copied into every bake's loadtests/


def doc_sources() -> list[Path]:
    docs = sorted((REPO_ROOT / "docs").glob("*.md"))
    return [REPO_ROOT / "README.md", BAKED_README, LOADTESTS_README, *docs]


def test_every_example_block_is_marked_runnable_or_says_why_not() -> None:
    blocks = [block for path in doc_sources() for block in blocks_of(path, str(path.relative_to(REPO_ROOT)))]
    assert not problems_with_markers(blocks), "\n".join(problems_with_markers(blocks))
    for block in blocks:
        for named in re.findall(r"tests/[\w/]+\.py", block.arg if block.kind == "not-runnable" else ""):
            assert (REPO_ROOT / named).is_file(), f"{block.where}: the reason names {named}, which does not exist"
    runnable = [block for block in blocks if block.kind == "runnable"]
    assert len(runnable) >= 10, [block.where for block in runnable]


def test_the_handler_example_publishes_a_type_that_has_a_handler() -> None:
    readme = BAKED_README.read_text()
    handler = next(block for block in blocks_of(BAKED_README) if block.options.endswith("handlers/fraud.py"))
    published = set(re.findall(r"context\.publish\((\w+)", handler.code))
    assert published == {"ORDER_CANCELLED"}, published
    orders = (BAKED_README.parent / "src" / "{{cookiecutter.package_name}}" / "handlers" / "orders.py").read_text()
    assert "@handlers.on(ORDER_CANCELLED" in orders
    assert "release_stock" in readme


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, runtime_wheels: Path) -> Path:
    return bake(tmp_path_factory.mktemp("doc-examples"))


@pytest.fixture(scope="module")
def shell_env(project: Path, baked_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    bin_dir = tmp_path_factory.mktemp("doc-examples-bin")
    write_console_scripts(project, baked_python, bin_dir)
    return environment(project, baked_python, bin_dir, tmp_path_factory.mktemp("doc-examples-tmp"))


def run_shell_blocks(blocks: list[Block], project: Path, python: Path, env: dict[str, str],
                     service: ServiceProcess) -> list[Outcome]:
    outcomes = []
    for block in blocks:
        if block.kind != "runnable" or block.language not in SHELL_LANGUAGES or block.mode == "repo":
            continue
        if block.mode == "serves":
            outcomes.append(run_serving(block, project, env))
        elif block.mode == "service":
            with service_for(block, project, python, service) as running:
                outcomes.append(run_shell(block, project, env, running.url))
        else:
            outcomes.append(run_shell(block, project, env))
    return outcomes


@pytest.mark.slow
def test_the_baked_readme_examples_run_in_a_bake(project: Path, baked_python: Path, shell_env: dict[str, str]) -> None:
    blocks = blocks_of(project / "README.md", "baked README.md")
    modules = [write_module(block, project) for block in blocks if block.mode == "module"]
    assert any(path.name == "fraud.py" for path in modules) and any(path.name.startswith("test_") for path in modules)
    written = [str(path.relative_to(project)) for path in modules]
    tests = [name for name in written if Path(name).name.startswith("test_")]
    for command in (("ruff", "check", *written), ("ruff", "format", "--check", *written), ("mypy", *written),
                    ("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests)):
        result = run_in(project, baked_python, *command)
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
    functions = sum(len(re.findall(r"^(?:async )?def test_", (project / name).read_text(), re.M)) for name in tests)
    assert f"{functions} passed" in result.stdout, result.stdout

    # then the shell blocks, against the service as the README left it (its registry includes the new handler)
    with ServiceProcess(project, baked_python, env={}) as started:
        started.wait_ready(60)
        outcomes = run_shell_blocks(blocks, project, baked_python, shell_env, started)
    failed = [outcome.report() for outcome in outcomes if outcome.returncode != 0]
    assert not failed, "\n\n".join(failed)
    ran = [outcome.block.where for outcome in outcomes]
    assert len(ran) >= 3, ran
    # what the README says happens did: the JPY order's reserve_stock delivery is dead-lettered, and replayed
    listing = next(outcome.output for outcome in outcomes if "dlq list" in outcome.block.code)
    assert "e-1" in listing and "reserve_stock" in listing, listing


@pytest.mark.slow
def test_the_docs_examples_run_in_a_bake(project: Path, baked_python: Path, shell_env: dict[str, str],
                                         tmp_path: Path) -> None:
    blocks = [block for path in doc_sources() if path.parent.name == "docs"
              for block in blocks_of(path, f"docs/{path.name}")]
    with ServiceProcess(project, baked_python, env={}) as started:
        started.wait_ready(60)
        outcomes = run_shell_blocks(blocks, project, baked_python, shell_env, started)
    failed = [outcome.report() for outcome in outcomes if outcome.returncode != 0]
    assert not failed, "\n\n".join(failed)
    assert len(outcomes) >= 5, [outcome.block.where for outcome in outcomes]


def test_a_broken_example_fails(tmp_path: Path) -> None:
    broken = Block("example.md", 1, "sh", "runnable", "", "echo start\nfalse\necho never\n")
    outcome = run_shell(broken, tmp_path, {"PATH": "/usr/bin:/bin"})
    assert outcome.returncode != 0 and "never" not in outcome.output


@pytest.mark.slow
def test_the_commands_that_cannot_run_here_name_real_targets_subcommands_and_options(
    project: Path, shell_env: dict[str, str]
) -> None:
    sources = [BAKED_README, LOADTESTS_README, *(REPO_ROOT / "docs" / name for name in ("runbooks.md", "upgrading.md"))]
    blocks = [block for path in sources for block in blocks_of(path, path.name)
              if block.kind == "not-runnable" and block.language in SHELL_LANGUAGES]
    targets = make_targets(project)
    checked = []
    for block in blocks:
        for words in command_lines(block):
            program = Path(words[0]).name.replace("{{ cookiecutter.project_slug }}", "event-service")
            if program == "make":
                named = [word for word in words[1:] if "=" not in word and not word.startswith("-")]
                assert set(named) <= targets, f"{block.where}: make {named}: no such target"
            elif program in {"event-service", "cruft"}:
                subcommand = [word for word in words[1:] if not word.startswith("-")][:2 if "dlq" in words else 1]
                shown = subprocess.run([program, *subcommand, "--help"], cwd=project, env=shell_env,
                                       capture_output=True, text=True, timeout=60)
                assert shown.returncode == 0, f"{block.where}: {program} {subcommand}: {shown.stderr}"
                options = {word.split("=")[0] for word in words if word.startswith("-")} - {"-y"}
                missing = [option for option in options if option not in shown.stdout]
                assert not missing, f"{block.where}: {program} {' '.join(subcommand)} has no {missing}"
            else:
                continue
            checked.append(" ".join(words))
    assert len(checked) >= 8, checked
