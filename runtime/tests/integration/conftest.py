"""Bus integration tests run once per backend: the same contract for every bus."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

BACKENDS = ["memory", "sqlite", "redis"]
# the Redis the tests use; each test works under its own key prefix and deletes its keys afterwards
REDIS_URL = os.environ.get("SERVICE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(params=BACKENDS)
def bus_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'events.db'}"
    else:
        yield from redis_bus_url(request, monkeypatch)


def redis_bus_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    request.applymarker(pytest.mark.redis)
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("SERVICE_REDIS_KEY_PREFIX", prefix)
    yield REDIS_URL
    delete_keys(prefix)


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The test Redis, with SERVICE_REDIS_KEY_PREFIX set to a prefix of this test's own."""
    yield from redis_bus_url(request, monkeypatch)


def delete_keys(prefix: str) -> None:
    """Remove every key a test wrote under its prefix."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
