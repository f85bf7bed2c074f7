"""The object a service's composition root builds: its registry, its name and version, its own setting defaults."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .registry import HandlerRegistry
from .service import Service
from .settings import SettingReference, Settings, load_settings, settings_reference

# the name is the command, the event source and the Redis key prefix: one word a shell and Redis take as it is
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class EventService:
    """`EventService(registry, name="billing")`: one per service; `main` is its console script.

    Names that differ per service come from here: the command (`name`), the default event source (`/<name>`) and
    the default Redis key prefix (`<name>`). `setting_defaults` replace the runtime's defaults for this service
    (for example `bus_url="redis://127.0.0.1:6379/0"`); SERVICE_* variables still win over them.
    """

    def __init__(
        self,
        registry: HandlerRegistry,
        *,
        name: str,
        version: str = "0.0.0+source",
        summary: str = "",
        **setting_defaults: object,
    ) -> None:
        if not _NAME.match(name):
            raise ValueError(f"EventService name {name!r}: use lower-case letters, digits, '.', '_' and '-'")
        unknown = sorted(set(setting_defaults) - set(Settings.model_fields))
        if unknown:
            raise TypeError(f"EventService: no such setting {', '.join(unknown)}")
        self.registry = registry
        self.name = name
        self.version = version
        self.summary = summary
        self.setting_defaults: dict[str, object] = {
            "event_source": f"/{name}",
            "redis_key_prefix": name,
            **setting_defaults,
        }

    def settings(self, **overrides: object) -> Settings:
        """This service's settings: its defaults, then SERVICE_* variables, then `overrides`."""
        return load_settings(self.setting_defaults, **overrides)

    def build(self, settings: Settings | None = None) -> Service:
        """A service process's runtime object (not started)."""
        return Service(self.registry, settings or self.settings(), version=self.version)

    def settings_reference(self) -> list[SettingReference]:
        """Every SERVICE_* variable with this service's default and what it does."""
        return settings_reference(self.setting_defaults)

    def main(self, argv: Sequence[str] | None = None) -> int:
        """The console script: serve, worker, send, dlq, settings."""
        from .cli import run

        return run(self, argv)
