"""Settings from SERVICE_* environment variables, checked once at start."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SERVICE_"
{%- if cookiecutter.event_bus == "redis" %}
BUS_SCHEMES = ("sqlite:///", "memory://", "redis://", "rediss://", "unix://")
{%- else %}
BUS_SCHEMES = ("sqlite:///", "memory://")
{%- endif %}


class SettingsError(Exception):
    """Raised at start when a SERVICE_* variable is invalid; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    env: Literal["development", "production"] = "development"
    auth_tokens: str = ""
{%- if cookiecutter.event_bus == "redis" %}
    bus_url: str = "redis://127.0.0.1:6379/0"
{%- else %}
    bus_url: str = "sqlite:///./var/events.db"
{%- endif %}
    event_source: str = "/{{ cookiecutter.project_slug }}"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_batch_events: int = Field(default=1000, gt=0)
    max_wait_seconds: float = Field(default=30.0, ge=0)
    # handler calls in flight per process: claims of more deliveries each cost less per delivery, which lets the
    # handlers keep up beside ingest on one core (docs/performance.md, run 10); sync handlers get as many threads
    worker_concurrency: int = Field(default=64, gt=0)
    # pending deliveries (bus_pending_events) past which POST /events answers 503; 0: no bound
    max_pending: int = Field(default=100_000, ge=0)
    max_attempts: int = Field(default=5, gt=0)
    retry_base_seconds: float = Field(default=0.5, ge=0)
    retry_max_seconds: float = Field(default=60.0, ge=0)
    handler_timeout_seconds: float = Field(default=30.0, gt=0)
    lease_seconds: float = Field(default=60.0, gt=0)
    poll_seconds: float = Field(default=0.2, gt=0)
    dedup_retention_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    sqlite_synchronous: Literal["normal", "full"] = "normal"
{%- if cookiecutter.event_bus == "redis" %}
    # every key of the bus starts with this, so several services (or test runs) can share one Redis
    redis_key_prefix: str = Field(default="{{ cookiecutter.project_slug }}", min_length=1, pattern=r"^[^\s]+$")
    # events of one ordering key stay in one partition; see docs/event-bus.md before changing it
    redis_partitions: int = Field(default=16, gt=0, le=1024)
{%- endif %}
    shutdown_drain_seconds: float = Field(default=1.0, ge=0)
    shutdown_timeout_seconds: float = Field(default=10.0, ge=0)

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

    @model_validator(mode="after")
    def _production_needs_tokens(self) -> Settings:
        if self.env == "production" and not self.tokens:
            raise ValueError("SERVICE_AUTH_TOKENS must hold at least one token when SERVICE_ENV=production")
        return self

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(token.strip() for token in self.auth_tokens.split(",") if token.strip())


def load_settings(**overrides: object) -> Settings:
    """Read the environment (overrides win); raise SettingsError naming each bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            location = [str(part) for part in problem["loc"]]
            variable = ENV_PREFIX + location[0].upper() if location else "settings"
            message = problem["msg"].removeprefix("Value error, ")
            lines.append(f"{variable}: {message}" if location else message)
        raise SettingsError("; ".join(lines)) from None
