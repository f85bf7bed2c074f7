"""The HTTP side, as a plain ASGI app: the hot path reads top to bottom in `_post_events`.

No web framework: per-request cost decides how many events one core takes (docs/performance.md).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from .__about__ import __version__ as runtime_version
from .cloudevents import (
    BATCH,
    STRUCTURED,
    CloudEvent,
    EventRejected,
    RejectionReason,
    parse_batch,
    parse_binary,
    parse_structured,
)
from .logs import get_logger
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .service import Service

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

log = get_logger(__name__)
_encode = msgspec.json.Encoder().encode
_JSON = [(b"content-type", b"application/json")]


class IngressApp:
    """ASGI app over a Service: POST /events, GET /healthz, /readyz, /metrics; lifespan starts the service."""

    def __init__(self, service: Service, *, run_workers: bool = True) -> None:
        self.service = service
        self._run_workers = run_workers
        self._versions = {"version": service.version, "runtime_version": runtime_version}
        settings = service.settings
        self._tokens = [token.encode() for token in settings.tokens]
        self._max_body = settings.max_body_bytes
        self._max_batch = settings.max_batch_events
        self._max_wait = settings.max_wait_seconds
        if not self._tokens:
            log.warning("auth_disabled", detail="SERVICE_AUTH_TOKENS is empty: anyone can post events")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._route(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/events":
            if method == "POST":
                await self._post_events(scope, receive, send)
            else:
                await _respond(send, 405, {"error": "method_not_allowed", "detail": "use POST"})
        elif path in ("/healthz", "/readyz", "/metrics") and method not in ("GET", "HEAD"):
            await _respond(send, 405, {"error": "method_not_allowed", "detail": "use GET"})
        elif path == "/healthz":
            await _respond(send, 200, {"status": "ok", **self._versions})
        elif path == "/readyz":
            ready, detail = await self.service.readiness()
            await _respond(
                send,
                200 if ready else 503,
                {"status": "ready" if ready else "not_ready", "detail": detail, **self._versions},
            )
        elif path == "/metrics":
            try:
                self.service.metrics.pending.set(await self.service.bus.pending_count())
            except Exception:  # metrics still render; readiness reports the store
                log.exception("pending_count_failed")
            await _send(send, 200, self.service.metrics.render(), [(b"content-type", METRICS_CONTENT_TYPE.encode())])
        else:
            await _respond(send, 404, {"error": "not_found", "detail": f"no route {path}"})

    async def _post_events(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.service
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        try:
            self._authorize(headers.get("authorization"))
            service.admit()  # draining or over SERVICE_MAX_PENDING: refused before the body is read
            declared_length = headers.get("content-length")
            if declared_length is not None and declared_length.isdigit() and int(declared_length) > self._max_body:
                raise _too_large(self._max_body)
            body = await self._read_body(receive)
            events, bodies = self._parse(headers, body)
            service.metrics.received.inc(len(events))
            outcome = await service.accept(events, bodies, self._wait_seconds(headers.get("prefer")))
        except EventRejected as rejection:
            # the one place a rejection is answered, so the one place it is counted
            service.metrics.reject(rejection.reason)
            await _respond(send, rejection.status, rejection.body, _encoded(rejection.headers))
            return
        if outcome.outcomes is None:
            await _respond(send, 202, {"accepted": outcome.accepted, "duplicates": outcome.duplicates})
            return
        results = [
            {"id": o.event_id, "handler": o.handler, "status": o.status, "result": o.result, "error": o.error}
            for o in outcome.outcomes
        ]
        await _respond(send, 200, {"accepted": outcome.accepted, "duplicates": outcome.duplicates, "results": results})

    def _authorize(self, authorization: str | None) -> None:
        if not self._tokens:
            return
        scheme, _, token = (authorization or "").partition(" ")
        offered = token.strip().encode()
        # compare against every token so the time taken does not tell which one was close
        matched = False
        for known in self._tokens:
            matched |= hmac.compare_digest(offered, known)
        if scheme.lower() != "bearer" or not matched:
            raise EventRejected(
                RejectionReason.UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token",
                headers={"www-authenticate": "Bearer"},
            )

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise EventRejected(
                    RejectionReason.MALFORMED, "malformed_json", "the client went away before the body was complete"
                )
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise _too_large(self._max_body)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _parse(self, headers: dict[str, str], body: bytes) -> tuple[list[CloudEvent], list[bytes] | None]:
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type == STRUCTURED:
            return [parse_structured(body)], [body]
        if media_type == BATCH:
            return parse_batch(body, self._max_batch)
        if "ce-specversion" in headers:
            return [parse_binary(headers, body)], None
        raise EventRejected(
            RejectionReason.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            f"content type {media_type or '(none)'!r} is not a CloudEvents mode: use {STRUCTURED} (structured), "
            f"{BATCH} (batch) or ce-* headers (binary)",
        )

    def _wait_seconds(self, prefer: str | None) -> float:
        """RFC 7240 `Prefer: wait=N`; anything unparseable is ignored, as the RFC asks."""
        if not prefer:
            return 0.0
        for preference in prefer.replace(";", ",").split(","):
            name, _, value = preference.strip().partition("=")
            if name.strip().lower() == "wait":
                try:
                    return max(0.0, min(float(value.strip().strip('"')), self._max_wait))
                except ValueError:
                    return 0.0
        return 0.0

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.service.start(run_workers=self._run_workers)
                except Exception as error:  # reported to the server, which exits non-zero
                    log.exception("startup_failed")
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.service.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _too_large(limit: int) -> EventRejected:
    return EventRejected(
        RejectionReason.TOO_LARGE, "body_too_large", f"the body is larger than {limit} bytes", max_bytes=limit
    )


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


async def _respond(
    send: Send, status: int, body: dict[str, Any], extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await _send(send, status, _encode(body), _JSON + (extra_headers or []))


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
