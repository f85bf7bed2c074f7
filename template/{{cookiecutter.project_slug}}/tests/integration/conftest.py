"""Bus integration tests run once per backend: the same contract for every bus."""

from collections.abc import Iterator
from pathlib import Path

import pytest

BACKENDS = ["memory", "sqlite"]


@pytest.fixture(params=BACKENDS)
def bus_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    else:
        yield f"sqlite:///{tmp_path / 'events.db'}"
