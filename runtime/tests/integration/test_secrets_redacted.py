"""No secret is logged or shown: the start-up log, /readyz, the log renderer, `dlq list`, the CLI's errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import msgspec
from structlog.testing import capture_logs

from event_runtime import NonRetryableError
from event_runtime.bus import open_bus
from event_runtime.ingress import IngressApp
from event_runtime.logs import SecretScrubber
from event_runtime.registry import HandlerContext, HandlerRegistry
from event_runtime.service import Service
from event_runtime.settings import Settings
from event_runtime.testing import BusHarness, EventFactory
from event_runtime.testing.bus import TEST_SETTINGS

from ..sample_service import registry

PASSWORD, TOKEN = "s3cret-pw", "token-9b1d0c7e"
BUS_URL = f"redis://:{PASSWORD}@127.0.0.1:6399/0"
RUNTIME_DIR = Path(__file__).resolve().parents[2]
LEAK = "test.leak"


class Leak(msgspec.Struct):
    n: int


def service_on_memory(**settings: object) -> Service:
    """A service whose settings name a password-protected Redis while its bus is in memory."""
    return Service(
        registry,
        Settings(**{**TEST_SETTINGS, "bus_url": BUS_URL, "auth_tokens": TOKEN, **settings}),
        bus=open_bus(Settings(bus_url="memory://")),
    )


async def test_the_start_up_log_names_the_bus_without_its_password() -> None:
    service = service_on_memory()
    with capture_logs() as entries:
        await service.start(run_workers=False)
    await service.stop()
    started = next(entry for entry in entries if entry["event"] == "service_started")
    assert started["bus"] == "redis://:***@127.0.0.1:6399/0"


async def test_readyz_quotes_the_store_error_without_the_password_or_a_token() -> None:
    service = service_on_memory()
    await service.start(run_workers=False)

    async def unreachable() -> None:
        raise ConnectionError(f"Error connecting to {BUS_URL}: AUTH {PASSWORD} refused (client {TOKEN})")

    service.bus.ping = unreachable  # type: ignore[method-assign]
    transport = httpx.ASGITransport(app=IngressApp(service, run_workers=False))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
            response = await client.get("/readyz")
    finally:
        await service.stop()
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert detail.startswith("store unreachable: ConnectionError: Error connecting to redis://:***@127.0.0.1:6399/0")
    assert PASSWORD not in response.text and TOKEN not in response.text


def test_the_scrubber_hides_secrets_in_every_kind_of_value() -> None:
    class Carrier:
        def __repr__(self) -> str:
            return f"Carrier(token={TOKEN!r})"

    scrub = SecretScrubber([TOKEN, PASSWORD, "424242"])
    line = scrub(
        None,
        "info",
        {
            "event": f"connecting with {TOKEN}",
            "url": BUS_URL,
            "nested": {"tokens": [TOKEN, "other"], "pin": 424242},
            "carrier": Carrier(),
            "count": 3,
        },
    )
    assert line == {
        "event": "connecting with ***",
        "url": "redis://:***@127.0.0.1:6399/0",
        "nested": {"tokens": ["***", "other"], "pin": "***"},
        "carrier": "Carrier(token='***')",
        "count": 3,
    }


LOGGING_SCRIPT = f"""
import logging
from event_runtime.logs import configure_logging, get_logger

configure_logging("INFO", [{TOKEN!r}, {PASSWORD!r}])
log = get_logger("secrets-test")
log.info("structlog_line", token={TOKEN!r}, url={BUS_URL!r})
try:
    raise RuntimeError("failed with " + {BUS_URL!r})
except RuntimeError:
    log.exception("structlog_exception")
    logging.getLogger("uvicorn.error").exception("stdlib line with %s", {TOKEN!r})
"""


def test_every_line_the_configured_logging_writes_is_scrubbed_tracebacks_included() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOGGING_SCRIPT], capture_output=True, text=True, timeout=60, cwd=RUNTIME_DIR
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["event"] for line in lines] == ["structlog_line", "structlog_exception", "stdlib line with ***"]
    assert lines[0]["token"] == "***" and lines[0]["url"] == "redis://:***@127.0.0.1:6399/0"
    assert "RuntimeError: failed with redis://:***@" in lines[1]["exception"]
    assert "RuntimeError: failed with redis://:***@" in lines[2]["exception"]  # a stdlib traceback, as text
    assert PASSWORD not in result.stderr and TOKEN not in result.stderr


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The sample service's console script in its own process (it configures logging for the process)."""
    script = "import sys\nfrom event_runtime import EventService\nfrom tests.sample_service import registry\n"
    script += "sys.exit(EventService(registry, name='sample').main(sys.argv[1:]))"
    path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(RUNTIME_DIR)]))
    environment = {**os.environ, "PYTHONPATH": path, "SERVICE_AUTH_TOKENS": TOKEN, **env}
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RUNTIME_DIR,
        env=environment,
    )


async def test_dlq_list_shows_a_handlers_error_without_the_url_password_or_a_token(tmp_path: Path) -> None:
    leaky = HandlerRegistry()

    @leaky.on(LEAK, Leak)
    async def call_downstream(data: Leak, context: HandlerContext) -> None:
        raise NonRetryableError(f"downstream {BUS_URL} refused token {TOKEN}")

    bus_url = f"sqlite:///{tmp_path / 'events.db'}"
    async with BusHarness(leaky, bus_url=bus_url) as bus:
        await bus.publish(EventFactory().event(LEAK, {"n": 1}, event_id="leak-1"))
        await bus.drain()
        assert len(await bus.dead_letters()) == 1

    for args in (["dlq", "list"], ["dlq", "list", "--json"]):
        listed = run_cli(*args, SERVICE_BUS_URL=bus_url)
        assert listed.returncode == 0, listed.stderr
        assert (
            "leak-1" in listed.stdout and "downstream redis://:***@127.0.0.1:6399/0 refused token ***" in listed.stdout
        )
        assert PASSWORD not in listed.stdout + listed.stderr and TOKEN not in listed.stdout + listed.stderr


def test_cli_errors_show_no_password(tmp_path: Path) -> None:
    invalid = run_cli("dlq", "list", SERVICE_BUS_URL=f"kafka://user:{PASSWORD}@broker:9092")
    assert invalid.returncode == 2 and "SERVICE_BUS_URL" in invalid.stderr
    closed = run_cli(
        "send", "--type", LEAK, "--url", f"http://user:{PASSWORD}@127.0.0.1:9", SERVICE_BUS_URL="memory://"
    )
    assert closed.returncode == 1 and "http://user:***@127.0.0.1:9 did not answer" in closed.stderr
    for result in (invalid, closed):
        assert PASSWORD not in result.stdout + result.stderr and TOKEN not in result.stdout + result.stderr
