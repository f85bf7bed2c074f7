"""`GET /asyncapi.json` and `GET /openapi.json`: each document built on its first request, then served as bytes.

They describe what a sender may send, so they ask for a sender's bearer token (SERVICE_AUTH_TOKENS) when tokens are
set, as POST /events does, and are open when none are; a refusal is not counted as a rejected event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from ..auth import BearerTokens
from ..cloudevents import EventRejected
from ..logs import get_logger
from ..registry import HandlerRegistry
from ..settings import Settings
from .asyncapi import asyncapi_document
from .openapi import openapi_document

log = get_logger(__name__)
_encode = msgspec.json.Encoder().encode
_JSON = (b"content-type", b"application/json")
Builder = Callable[[HandlerRegistry, Settings, str], dict[str, Any]]
_BUILDERS: dict[str, Builder] = {"/asyncapi.json": asyncapi_document, "/openapi.json": openapi_document}
DOCUMENT_PATHS = frozenset(_BUILDERS)


class ApiDocuments:
    def __init__(self, registry: HandlerRegistry, settings: Settings, version: str) -> None:
        self._registry = registry
        self._settings = settings
        self._version = version
        self._tokens = BearerTokens(settings.tokens)
        self._built: dict[str, bytes] = {}

    def answer(
        self, path: str, raw_headers: Iterable[tuple[bytes, bytes]]
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """(status, body, headers) of a GET of `path`, one of DOCUMENT_PATHS."""
        if self._tokens:
            values = [value for name, value in raw_headers if name.lower() == b"authorization"]
            try:  # a repeated Authorization header counts as none
                self._tokens.identify(values[0].decode("latin-1") if len(values) == 1 else None)
            except EventRejected as refusal:
                headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in refusal.headers.items()]
                return refusal.status, _encode(refusal.body), [_JSON, *headers]
        body = self._built.get(path)
        if body is None:
            body = self._built[path] = _encode(_BUILDERS[path](self._registry, self._settings, self._version))
        return 200, body, [_JSON]
