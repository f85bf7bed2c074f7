"""What event_bus=redis changes in a bake: the runtime's extra, the service's default bus, compose; a sqlite bake
names neither."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from support import bake, runtime_version


def dependencies(project: Path) -> list[str]:
    return tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"]


def test_a_redis_bake_pins_the_runtime_with_its_redis_extra_and_defaults_to_redis(tmp_path: Path) -> None:
    project = bake(tmp_path, event_bus="redis")
    assert dependencies(project) == [f"event-runtime[redis,tracing]=={runtime_version()}"]
    assert 'bus_url="redis://127.0.0.1:6379/0"' in (project / "src" / "event_service" / "app.py").read_text()
    assert "`SERVICE_BUS_URL` | `redis://127.0.0.1:6379/0`" in (project / "README.md").read_text()


def test_a_sqlite_bake_pins_the_runtime_with_its_sqlite_extra_and_names_no_redis(tmp_path: Path) -> None:
    project = bake(tmp_path)
    assert dependencies(project) == [f"event-runtime[sqlite,tracing]=={runtime_version()}"]
    assert "redis" not in (project / "src" / "event_service" / "app.py").read_text()
    assert "redis" not in (project / "compose.yaml").read_text()


def test_compose_of_a_redis_bake_runs_redis_with_the_append_only_file_synced_per_write(tmp_path: Path) -> None:
    compose = yaml.safe_load((bake(tmp_path, event_bus="redis") / "compose.yaml").read_text())
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "always"
    assert compose["services"]["service"]["environment"]["SERVICE_BUS_URL"] == "redis://redis:6379/0"
    assert compose["services"]["service"]["depends_on"]["redis"]["condition"] == "service_healthy"
