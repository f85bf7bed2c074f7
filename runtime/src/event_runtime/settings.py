"""Settings from SERVICE_* environment variables, checked once at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .auth import signing_key_bytes
from .redaction import REDACTED, redact

ENV_PREFIX = "SERVICE_"
# every bus URL scheme open_bus knows; redis ones need the `redis` extra installed
SQLITE_SCHEMES = ("sqlite:///", "memory://")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
BUS_SCHEMES = SQLITE_SCHEMES + REDIS_SCHEMES
DEFAULT_SERVICE_NAME = "event-service"


class SettingsError(Exception):
    """Raised at start when a SERVICE_* variable is invalid; the message names the variable."""


class Settings(BaseSettings):
    """Every SERVICE_* variable: its default and its description are written here only (`settings_reference`)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    env: Literal["development", "production"] = Field(
        default="development", description="`production` refuses to start without tokens"
    )
    auth_tokens: str = Field(
        default="",
        repr=False,
        json_schema_extra={"secret": True},
        description="comma-separated bearer tokens for `POST /events`",
    )
    # authentication, signing and rate limits (auth.py, docs/service-contract.md); fields marked secret are never
    # shown or logged (redaction.py)
    signing_keys: str = Field(
        default="",
        repr=False,
        json_schema_extra={"secret": True},
        description="comma-separated Standard Webhooks keys (`whsec_<base64>`, one per sender, two while one rotates): "
        "when set, `POST /events` needs a valid `webhook-signature`",
    )
    signing_replay_window_seconds: float = Field(
        default=300.0,
        gt=0,
        description="how far a signed request's `webhook-timestamp` may be from the clock: an older one (a replay) "
        "gets 401",
    )
    rate_limit_per_second: float = Field(
        default=0.0, ge=0, description="requests per second per bearer token, beyond them 429; `0` turns it off"
    )
    rate_limit_burst: int = Field(
        default=100, gt=0, description="requests a token may send at once before its rate holds it back"
    )
    metrics_token: str = Field(
        default="",
        repr=False,
        json_schema_extra={"secret": True},
        description="bearer token for `GET /metrics`; empty: open",
    )
    bus_url: str = Field(
        default="sqlite:///./var/events.db",
        repr=False,  # its password, if any
        description="`sqlite:///relative.db`, `sqlite:////absolute.db`, `redis://host:port/db` (the `redis` extra) "
        "or `memory://` for tests",
    )
    event_source: str = Field(
        default=f"/{DEFAULT_SERVICE_NAME}", description="the `source` of the follow-up events handlers publish"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="JSON logs on stderr")
    tracing_endpoint: str = Field(
        default="",
        description="OTLP/HTTP traces endpoint (e.g. `http://127.0.0.1:4318/v1/traces`): OpenTelemetry spans per "
        "event, continued from its `traceparent`; empty: tracing off",
    )
    max_body_bytes: int = Field(default=1_048_576, gt=0, description="a larger request body gets 413")
    max_batch_events: int = Field(default=1000, gt=0, description="a batch with more events gets 413")
    max_wait_seconds: float = Field(
        default=30.0, ge=0, description="the longest `Prefer: wait=N` honoured; a longer wait is cut to it"
    )
    # the HTTP layer's limits and timeouts (http_protocol.py, docs/service-contract.md "Limits"): what one client
    # can make the process hold is bounded
    max_url_bytes: int = Field(default=8192, gt=0, description="a longer request URL (path and query) gets 414")
    max_header_bytes: int = Field(
        default=32768, gt=0, description="request headers over this many bytes (names and values) get 431"
    )
    max_headers: int = Field(default=100, gt=0, description="a request with more headers gets 431")
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="a request's line and headers must arrive within this long, else 408 and the connection closes",
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="a request's whole body must arrive within this long after its headers, else 408 and the "
        "connection closes",
    )
    keepalive_timeout_seconds: float = Field(
        default=5.0, gt=0, description="an idle kept-alive connection is closed after this long"
    )
    linger_seconds: float = Field(
        default=5.0,
        gt=0,
        description="after an answer sent before the request was read whole (413, 401, 431...), what the client "
        "still sends is read and dropped until it stops, at most this long, then the connection closes",
    )
    max_connections: int = Field(
        default=1000, gt=0, description="open connections per process; a connection beyond them gets 503 and is closed"
    )
    # handler calls in flight per process: claims of more deliveries each cost less per delivery, which lets the
    # handlers keep up beside ingest on one core (docs/performance.md, run 10); sync handlers get as many threads
    worker_concurrency: int = Field(
        default=64, gt=0, description="handler calls in flight per process (sync handlers get a thread each)"
    )
    max_pending: int = Field(
        default=100_000,
        ge=0,
        description="backpressure: over this many pending deliveries, new events get 503 and `Retry-After: 1`; "
        "`0` turns it off",
    )
    # the WAL of a busy store grows by tens of MiB between checkpoints, and completions write to it too
    min_free_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="SQLite bus: below this much free space on the store's filesystem, new events get 503 "
        "`disk_full` and `Retry-After` while accepted ones still complete; `0` turns it off",
    )
    max_attempts: int = Field(default=5, gt=0, description="attempts per delivery before it is dead-lettered")
    retry_base_seconds: float = Field(
        default=0.5, ge=0, description="first retry delay: exponential backoff with full jitter"
    )
    retry_max_seconds: float = Field(default=60.0, ge=0, description="the longest retry delay")
    handler_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="a handler call is cut off between its timeout and a tenth later (at most 1 s later), then retried",
    )
    lease_seconds: float = Field(
        default=60.0, gt=0, description="a claim not finished within its lease is handed out again"
    )
    poll_seconds: float = Field(
        default=0.2, gt=0, description="how often idle workers look for due deliveries (retries, other processes)"
    )
    dedup_retention_seconds: float = Field(
        default=7 * 24 * 3600, gt=0, description="how long an `(source, id)` is remembered"
    )
    sqlite_synchronous: Literal["normal", "full"] = Field(
        default="normal", description="`normal` survives a process crash, `full` also a power loss"
    )
    # every key of the bus starts with this, so several services (or test runs) can share one Redis
    redis_key_prefix: str = Field(
        default=DEFAULT_SERVICE_NAME,
        min_length=1,
        pattern=r"^[^\s]+$",
        description="Redis bus: every key of the bus starts with it",
    )
    # events of one ordering key stay in one partition; see docs/event-bus.md before changing it
    redis_partitions: int = Field(
        default=16, gt=0, le=1024, description="Redis bus: ordering-key partitions; change only with an empty bus"
    )
    # renewed every min(1 s, lease / 3): a shorter lease moves a dead process's partitions sooner, but a process
    # stalled (or cut off from Redis) for longer than it loses its partitions, and its unfinished deliveries run again
    redis_lease_seconds: float = Field(
        default=3.0,
        gt=0,
        description="Redis bus: a partition's lease; a dead process's partitions are served again within it plus "
        "a second",
    )
    redis_socket_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Redis bus: how long one call may wait for Redis before it fails"
    )
    shutdown_drain_seconds: float = Field(
        default=1.0,
        ge=0,
        description="after SIGTERM, how long `/readyz` fails and new events get 503 before the server stops",
    )
    shutdown_timeout_seconds: float = Field(
        default=10.0, ge=0, description="how long in-flight handlers get after the server stopped"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("bus_url")
    @classmethod
    def _known_bus_scheme(cls, value: str) -> str:
        if not value.startswith(BUS_SCHEMES):
            raise ValueError(f"must start with {' or '.join(BUS_SCHEMES)}")
        return value

    @field_validator("signing_keys")
    @classmethod
    def _signing_keys_decode(cls, value: str) -> str:
        for key in value.split(","):
            if key.strip():
                signing_key_bytes(key)  # its ValueError names no key
        return value

    @model_validator(mode="after")
    def _production_needs_tokens(self) -> Settings:
        if self.env == "production" and not self.tokens:
            raise ValueError("SERVICE_AUTH_TOKENS must hold at least one token when SERVICE_ENV=production")
        return self

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(token.strip() for token in self.auth_tokens.split(",") if token.strip())


def load_settings(defaults: Mapping[str, object] | None = None, **overrides: object) -> Settings:
    """Read the environment; raise SettingsError naming each bad variable.

    `defaults` are the service's own (its composition root's): the environment wins over them. `overrides` win over
    the environment (tests, the testing kit).
    """
    environment = {name.upper() for name in os.environ}
    chosen = {
        field: value for field, value in (defaults or {}).items() if ENV_PREFIX + field.upper() not in environment
    }
    try:
        return Settings(**{**chosen, **overrides})  # type: ignore[arg-type]
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            location = [str(part) for part in problem["loc"]]
            variable = ENV_PREFIX + location[0].upper() if location else "settings"
            message = redact(problem["msg"].removeprefix("Value error, "))
            lines.append(f"{variable}: {message}" if location else message)
        raise SettingsError("; ".join(lines)) from None


@dataclass(frozen=True)
class SettingReference:
    """One row of the settings table: the variable, its default as text, and what it does."""

    variable: str
    default: str  # "" where there is none
    description: str


def settings_reference(defaults: Mapping[str, object] | None = None) -> list[SettingReference]:
    """Every SERVICE_* variable with its default (the service's own where it sets one) and description."""
    rows = []
    for field, info in Settings.model_fields.items():
        default = (defaults or {}).get(field, info.default)
        shown = _shown(default)
        # a service's own default may hold a secret (a token, a bus URL's password): the table never shows it
        secret = isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret")
        shown = REDACTED if secret and shown else redact(shown)
        rows.append(SettingReference(ENV_PREFIX + field.upper(), shown, info.description or ""))
    return rows


def _shown(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
