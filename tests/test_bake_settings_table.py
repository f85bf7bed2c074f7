"""The settings table in a bake's README is the runtime's own: every variable, its default and its description."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support import bake, run_in

pytestmark = pytest.mark.slow

ROW = re.compile(r"^\| `(SERVICE_[A-Z_]+)` \| (.*?) \| (.*) \|$", re.M)


def table_rows(markdown: str) -> dict[str, tuple[str, str]]:
    return {variable: (default, description) for variable, default, description in ROW.findall(markdown)}


@pytest.mark.parametrize("event_bus", ["sqlite", "redis"])
def test_the_readme_lists_every_setting_as_the_service_itself_prints_them(
    tmp_path: Path, baked_python: Path, event_bus: str
) -> None:
    project = bake(tmp_path, event_bus=event_bus)
    printed = run_in(project, baked_python, "python", "-m", "event_service", "settings")
    assert printed.returncode == 0, printed.stderr
    from_the_runtime = table_rows(printed.stdout)
    assert len(from_the_runtime) >= 20 and "SERVICE_MAX_WAIT_SECONDS" in from_the_runtime
    assert table_rows((project / "README.md").read_text()) == from_the_runtime


def test_a_redis_bake_prints_its_own_default_bus_and_key_prefix(tmp_path: Path, baked_python: Path) -> None:
    project = bake(tmp_path, event_bus="redis", project_name="Billing Events", package_name="event_service")
    rows = table_rows(run_in(project, baked_python, "python", "-m", "event_service", "settings").stdout)
    assert rows["SERVICE_BUS_URL"][0] == "`redis://127.0.0.1:6379/0`"
    assert rows["SERVICE_REDIS_KEY_PREFIX"][0] == "`billing-events`"
    assert rows["SERVICE_EVENT_SOURCE"][0] == "`/billing-events`"
