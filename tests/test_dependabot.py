"""Every bake's .github/dependabot.yml: valid for GitHub, one entry per ecosystem the bake has, the runtime's pin
proposed on its own."""

from __future__ import annotations

import subprocess
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml
from support import bake


def dependabot_config(project: Path) -> dict:
    return yaml.safe_load((project / ".github" / "dependabot.yml").read_text(encoding="utf-8"))


def update_for(config: dict, ecosystem: str) -> dict:
    (update,) = [entry for entry in config["updates"] if entry["package-ecosystem"] == ecosystem]
    return update


@pytest.mark.parametrize(
    ("ci", "ecosystems"),
    [("github", ["pip", "github-actions"]), ("jenkins", ["pip"]), ("both", ["pip", "github-actions"])],
)
def test_every_bake_has_dependabot_for_pip_and_for_the_actions_it_has(
    tmp_path: Path, ci: str, ecosystems: list[str]
) -> None:
    project = bake(tmp_path, ci=ci)
    config = dependabot_config(project)
    assert [entry["package-ecosystem"] for entry in config["updates"]] == ecosystems
    assert {entry["directory"] for entry in config["updates"]} == {"/"}
    assert (project / ".github" / "workflows").is_dir() == ("github-actions" in ecosystems)


@pytest.mark.parametrize("ci", ["github", "jenkins", "both"])
def test_the_dependabot_config_passes_githubs_schema_and_zizmor(tmp_path: Path, ci: str) -> None:
    project = bake(tmp_path, ci=ci)
    config = str(project / ".github" / "dependabot.yml")
    for command in (
        ("check-jsonschema", "--builtin-schema", "vendor.dependabot", config),
        # zizmor audits dependabot.yml too (a cooldown on every ecosystem)
        ("zizmor", "--offline", "--min-severity", "low", config),
    ):
        result = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, f"{command[0]}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("event_bus", ["sqlite", "redis"])
def test_the_runtime_pin_is_proposed_alone_and_without_cooldown(tmp_path: Path, event_bus: str) -> None:
    project = bake(tmp_path, event_bus=event_bus)
    dependencies = tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"]
    # the name Dependabot matches is the one pyproject pins
    assert [dependency for dependency in dependencies if dependency.startswith(f"event-runtime[{event_bus},tracing]==")]
    pip = update_for(dependabot_config(project), "pip")
    grouped_with_others = [
        name
        for name, group in pip.get("groups", {}).items()
        if any(fnmatch("event-runtime", pattern) for pattern in group.get("patterns", []))
        and not any(fnmatch("event-runtime", pattern) for pattern in group.get("exclude-patterns", []))
    ]
    assert grouped_with_others == []
    assert "event-runtime" in pip["cooldown"]["exclude"]
