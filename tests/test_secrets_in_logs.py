"""No secret in anything a running bake writes or shows: a redis bake on a password-protected Redis, with bearer
tokens, signing keys and a /metrics token set, is sent good and bad requests, loses its Redis, lists its dead
letters; then every log line and every output is searched for the password and each token and key.

The bake gets one extra handler that misbehaves as real code does: it logs the bus URL and a token (through
structlog and through the stdlib) and fails with both in its error, so the dead letter quotes them too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from service_process import ServiceProcess
from support import free_port, run_in

pytestmark = [pytest.mark.slow, pytest.mark.redis]

PASSWORD = "s3cret-pw"
PLACED, CANCELLED = "com.example.order.placed", "com.example.order.cancelled"
LEAKY_MODULE = '''"""Test handler: logs and fails with the bus URL and a token in its messages, as careless code does."""

import logging
import os

import structlog
from event_runtime import HandlerContext, HandlerRegistry, NonRetryableError

from ..events import ORDER_CANCELLED, OrderCancelled

handlers = HandlerRegistry()
log = structlog.get_logger(__name__)


@handlers.on(ORDER_CANCELLED, OrderCancelled)
async def call_downstream(cancellation: OrderCancelled, context: HandlerContext) -> None:
    url, token = os.environ["SERVICE_BUS_URL"], os.environ["SERVICE_AUTH_TOKENS"].split(",")[0]
    log.warning("downstream_call", url=url, token=token, cancellation=cancellation.reason)
    logging.getLogger(__name__).warning("calling %s with %s", url, token)
    raise NonRetryableError(f"downstream {url} refused token {token}")
'''


def signing_key() -> str:
    return "whsec_" + base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()


def signed(key: str, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers, computed here from the spec rather than with the runtime's own helper."""
    message_id, timestamp = f"msg-{uuid.uuid4().hex}", str(int(time.time()))
    secret = base64.b64decode(key.removeprefix("whsec_"))
    digest = hmac.new(secret, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": message_id, "webhook-timestamp": timestamp,
            "webhook-signature": f"v1,{base64.b64encode(digest).decode()}"}


class PrivateRedis:
    """A redis-server of this test's own, with a password, on a free port; stopped by PID."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.log = folder / "redis.log"
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", PASSWORD,
             "--save", "", "--appendonly", "no", "--dir", str(folder), "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while self.cli("ping") != "PONG":
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"redis-server did not start: {self.log.read_text() if self.log.exists() else ''}")
            time.sleep(0.1)

    def cli(self, *args: str) -> str:
        result = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "--no-auth-warning",
                                 "-a", PASSWORD, *args], capture_output=True, text=True, timeout=10)
        return result.stdout.strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.fail("this test needs redis-server (apt install redis-server; see docs/event-bus.md)")
    folder = tmp_path / "redis"
    folder.mkdir()
    redis = PrivateRedis(folder)
    yield redis
    redis.stop()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"after {timeout}s still not: {what}")
        time.sleep(0.2)


def order(event_type: str, event_id: str, **data: object) -> bytes:
    return json.dumps({"specversion": "1.0", "id": event_id, "source": "/secrets-test", "type": event_type,
                       "subject": "o-1", "data": {"order_id": "o-1", **data}}).encode()


def test_no_password_token_or_key_appears_in_any_log_line_or_output(
    bake_project: Callable[..., Path], baked_python: Path, private_redis: PrivateRedis
) -> None:
    project = bake_project(event_bus="redis")
    handlers = project / "src" / "event_service" / "handlers"
    (handlers / "leaky.py").write_text(LEAKY_MODULE)
    init = handlers / "__init__.py"
    init.write_text(init.read_text().replace("from . import orders", "from . import leaky, orders")
                    .replace("include(orders.handlers)", "include(orders.handlers, leaky.handlers)"))

    tokens = [f"token-{uuid.uuid4().hex}", f"token-{uuid.uuid4().hex}"]
    key, metrics_token = signing_key(), f"scrape-{uuid.uuid4().hex}"
    secrets = [PASSWORD, *tokens, key, key.removeprefix("whsec_"), metrics_token]
    env = {
        "SERVICE_BUS_URL": f"redis://:{PASSWORD}@127.0.0.1:{private_redis.port}/0",
        "SERVICE_AUTH_TOKENS": ",".join(tokens),
        "SERVICE_SIGNING_KEYS": key,
        "SERVICE_METRICS_TOKEN": metrics_token,
        "SERVICE_LOG_LEVEL": "DEBUG",
        "SERVICE_SHUTDOWN_DRAIN_SECONDS": "0",
        "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "2",
    }
    outputs: list[str] = []
    service = ServiceProcess(project, baked_python, env=env)
    try:
        service.wait_ready()
        url = f"{service.url}/events"
        structured = {"content-type": "application/cloudevents+json"}
        authorized = {**structured, "authorization": f"Bearer {tokens[0]}"}
        good = order(PLACED, "good-1", customer_id="c-1", amount_cents=100, currency="EUR")
        leak = order(CANCELLED, "leak-1", reason="leak")
        unknown = order("com.example.nobody.listens", "unknown-1")
        attempts = [
            (202, good, {**authorized, **signed(key, good)}, url),
            (202, leak, {**authorized, **signed(key, leak)}, url),
            (401, good, {**structured, "authorization": f"Bearer {tokens[0]}x", **signed(key, good)}, url),
            (422, unknown, {**authorized, **signed(key, unknown)}, url),
            (401, good, {**structured, "x-api-key": tokens[1], **signed(key, good)}, url),
            (401, good, {**structured, **signed(key, good)}, f"{url}?access_token={tokens[1]}"),
            (401, good, {**authorized, **signed(key, good + b" ")}, url),
        ]
        for status, body, headers, target in attempts:
            response = httpx.post(target, content=body, headers=headers, timeout=10)
            assert response.status_code == status, response.text
            outputs.append(response.text)
        scrape = {"authorization": f"Bearer {metrics_token}"}
        assert httpx.get(f"{service.url}/metrics", timeout=10).status_code == 401

        def dead_lettered() -> bool:
            text = httpx.get(f"{service.url}/metrics", headers=scrape, timeout=10).text
            return 'events_dead_lettered_total{handler="call_downstream",type="com.example.order.cancelled"} 1.0' in text

        wait_for(dead_lettered, 30, "the leaky handler's event dead-lettered")

        # the service's own client signs and authenticates with the settings it reads
        sent = run_in(project, baked_python, "python", "-m", "event_service", "send", "--type", PLACED,
                      "--url", service.url, "--json", "--data", json.dumps({"order_id": "o-2", "customer_id": "c-2",
                                                                  "amount_cents": 1, "currency": "EUR"}), **env)
        assert sent.returncode == 0 and json.loads(sent.stdout)["status"] == 202, sent.stdout + sent.stderr
        outputs += [sent.stdout, sent.stderr]

        for listing in (("dlq", "list"), ("dlq", "list", "--json")):
            listed = run_in(project, baked_python, "python", "-m", "event_service", *listing, **env)
            assert listed.returncode == 0, listed.stderr
            assert "leak-1" in listed.stdout and "downstream redis://:***@127.0.0.1" in listed.stdout
            outputs += [listed.stdout, listed.stderr]
        for command in (("--version",), ("settings",)):
            printed = run_in(project, baked_python, "python", "-m", "event_service", *command, **env)
            assert printed.returncode == 0, printed.stderr
            outputs += [printed.stdout, printed.stderr]
        refused = run_in(project, baked_python, "python", "-m", "event_service", "worker",
                         **{**env, "SERVICE_BUS_URL": f"kafka://user:{PASSWORD}@127.0.0.1:9092"})
        assert refused.returncode == 2 and "SERVICE_BUS_URL" in refused.stderr
        outputs += [refused.stdout, refused.stderr]

        private_redis.stop()
        readiness: list[httpx.Response] = []

        def not_ready() -> bool:
            readiness.append(httpx.get(f"{service.url}/readyz", timeout=10))
            return readiness[-1].status_code == 503

        wait_for(not_ready, 20, "/readyz failing without Redis")
        assert "store unreachable" in readiness[-1].json()["detail"]
        outputs += [response.text for response in readiness]
        time.sleep(1)  # the workers and the bus's maintenance log their failures meanwhile
    finally:
        service.stop()
    log = service.log_path.read_text()

    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    events = {line["event"] for line in lines}
    assert {"service_started", "downstream_call", "event_dead_lettered"} <= events, sorted(events)
    started = next(line for line in lines if line["event"] == "service_started")
    assert started["bus"] == f"redis://:***@127.0.0.1:{private_redis.port}/0"
    assert any(line["event"] == "calling redis://:***@127.0.0.1:%d/0 with ***" % private_redis.port for line in lines)
    print(f"\nsecrets check: {len(log.splitlines())} log lines, {len(outputs)} outputs, {len(secrets)} secrets")
    for secret in secrets:
        assert secret not in log, f"a secret is in the service's log:\n{log}"
        for output in outputs:
            assert secret not in output, f"a secret is in an output:\n{output}"
