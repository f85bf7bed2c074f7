"""Structured JSON logs, one object a line; stdlib loggers (uvicorn) are routed through the same renderer."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

import structlog
from structlog.typing import EventDict

from .redaction import REDACTED, redact

SHARED_PROCESSORS: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class SecretScrubber:
    """A processor, the last before rendering: `redact` over every value of a log line (nested ones and what would
    be rendered by repr too), so no URL password and none of `secrets` reaches the log, whoever logged it."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(secrets)

    def __call__(self, logger: object, method_name: str, event_dict: EventDict) -> EventDict:
        return {name: self._scrubbed(value) for name, value in event_dict.items()}

    def _scrubbed(self, value: object) -> Any:
        if isinstance(value, str):
            return redact(value, self._secrets)
        if isinstance(value, bool | int | float) or value is None:
            return REDACTED if str(value) in self._secrets else value
        if isinstance(value, dict):
            return {name: self._scrubbed(item) for name, item in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._scrubbed(item) for item in value]
        return redact(repr(value), self._secrets)  # what JSONRenderer would have written


def configure_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """Log JSON to stderr at `level`, with `secrets` (redaction.configured_secrets) scrubbed from every line; call
    once at process start."""
    numeric_level = logging.getLevelName(level)
    scrub = SecretScrubber(secrets)
    structlog.configure(
        processors=[
            *SHARED_PROCESSORS,
            structlog.processors.format_exc_info,
            scrub,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # a stdlib record's traceback as text, so the scrubber sees it (it was rendered as a repr)
                structlog.processors.format_exc_info,
                scrub,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=SHARED_PROCESSORS,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
