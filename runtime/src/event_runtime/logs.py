"""Structured JSON logs, one object a line; stdlib loggers (uvicorn) are routed through the same renderer.

Every record, structlog's and the stdlib's, goes out through one LineSink: one write of the line and its newline,
under one lock. Two records shared a line when structlog's PrintLogger (`print`: the text, then the newline, two
writes, under structlog's lock) and logging's StreamHandler (under the handler's own lock) wrote from two threads
at once (the loop and the WAL checkpoint or a sync handler's thread): the other record landed between a text and
its newline.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable
from typing import Any, TextIO

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


class LineSink:
    """Writes whole lines to a stream: the text and its newline in one write, flushed, under one lock."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write_line(self, text: str) -> None:
        line = text + "\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()


class LineLogger:
    """structlog's logger: every level method writes the rendered record as one line to the sink."""

    def __init__(self, sink: LineSink) -> None:
        self._sink = sink

    def msg(self, message: str) -> None:
        self._sink.write_line(message)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = failure = msg


class LineHandler(logging.Handler):
    """The stdlib's handler, writing each formatted record to the same sink as structlog."""

    def __init__(self, sink: LineSink) -> None:
        super().__init__()
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._sink.write_line(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise into the code that logs
            self.handleError(record)


def configure_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """Log JSON to stderr at `level`, with `secrets` (redaction.configured_secrets) scrubbed from every line; call
    once at process start."""
    numeric_level = logging.getLevelName(level)
    scrub = SecretScrubber(secrets)
    sink = LineSink(sys.stderr)
    structlog.configure(
        processors=[
            *SHARED_PROCESSORS,
            structlog.processors.format_exc_info,
            scrub,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=lambda *_: LineLogger(sink),
        cache_logger_on_first_use=True,
    )
    handler = LineHandler(sink)
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
