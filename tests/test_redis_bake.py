"""What event_bus=redis changes in a bake, and what a sqlite bake leaves out."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from support import bake

REDIS_MODULES = {"redis_batching.py", "redis_bus.py", "redis_lanes.py", "redis_scripts.py"}


def bus_modules(project: Path) -> set[str]:
    return {path.name for path in project.glob("src/*/runtime/bus/*.py")}


def dependencies(project: Path) -> list[str]:
    return tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"]


def test_a_redis_bake_carries_the_redis_backend_its_pins_and_its_tests(tmp_path: Path) -> None:
    project = bake(tmp_path, event_bus="redis")
    assert REDIS_MODULES <= bus_modules(project)
    assert {"redis==8.1.0", "hiredis==3.5.0"} <= set(dependencies(project))
    assert (project / "tests" / "integration" / "test_redis_partitions.py").is_file()
    settings = next(project.glob("src/*/runtime/settings.py")).read_text()
    assert "redis_partitions" in settings and '"redis://"' in settings


def test_a_sqlite_bake_has_no_redis_code_dependency_or_setting(tmp_path: Path) -> None:
    project = bake(tmp_path)
    assert not REDIS_MODULES & bus_modules(project)
    assert not [pin for pin in dependencies(project) if pin.startswith(("redis", "hiredis"))]
    assert not (project / "tests" / "integration" / "test_redis_partitions.py").exists()
    assert "redis" not in next(project.glob("src/*/runtime/settings.py")).read_text()
    assert "redis" not in (project / "compose.yaml").read_text()


def test_compose_of_a_redis_bake_runs_redis_with_the_append_only_file_synced_per_write(tmp_path: Path) -> None:
    compose = yaml.safe_load((bake(tmp_path, event_bus="redis") / "compose.yaml").read_text())
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "always"
    assert compose["services"]["service"]["environment"]["SERVICE_BUS_URL"] == "redis://redis:6379/0"
    assert compose["services"]["service"]["depends_on"]["redis"]["condition"] == "service_healthy"
