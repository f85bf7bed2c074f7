"""The HTTP side, as a plain ASGI app: the hot path reads top to bottom in `_post_events`.

No web framework: per-request cost decides how many events one core takes (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from .__about__ import __version__ as runtime_version
from .api_docs import DOCUMENT_PATHS, ApiDocuments
from .auth import RequestAuth
from .bus.base import DiskReserveReached, StoreUnavailable
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
from .redaction import configured_secrets, redact
from .service import Service

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

log = get_logger(__name__)
_encode = msgspec.json.Encoder().encode
_JSON = [(b"content-type", b"application/json")]
STORE_RETRY_AFTER_SECONDS = 1  # what a 503 for a failing store (or its disk reserve) asks the sender to wait


class IngressApp:
    """ASGI app over a Service: POST /events, GET /healthz, /readyz, /metrics; lifespan starts the service."""

    def __init__(self, service: Service, *, run_workers: bool = True) -> None:
        self.service = service
        self._run_workers = run_workers
        self._versions = {"version": service.version, "runtime_version": runtime_version}
        settings = service.settings
        self._auth = RequestAuth(settings)  # bearer tokens, signatures, rate per token, the /metrics token
        self._max_body = settings.max_body_bytes
        self._max_batch = settings.max_batch_events
        self._max_wait = settings.max_wait_seconds
        self._secrets = configured_secrets(settings)
        self._documents = ApiDocuments(service.registry, settings, service.version)  # GET /asyncapi.json, ...
        if not self._auth.tokens and self._auth.signatures is None:
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
                await _respond(send, 405, {"error": "method_not_allowed", "detail": "use POST"}, [(b"allow", b"POST")])
        elif (path in ("/healthz", "/readyz", "/metrics") or path in DOCUMENT_PATHS) and method not in ("GET", "HEAD"):
            await _respond(send, 405, {"error": "method_not_allowed", "detail": "use GET"}, [(b"allow", b"GET, HEAD")])
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
                self._auth.authorize_metrics(scope["headers"])
            except EventRejected as refusal:  # not an event request: not counted in events_rejected_total
                await _respond(send, refusal.status, refusal.body, _encoded(refusal.headers))
                return
            try:
                self.service.metrics.pending.set(await self.service.bus.pending_count())
            except Exception:  # metrics still render; readiness reports the store
                log.exception("pending_count_failed")
            await _send(send, 200, self.service.metrics.render(), [(b"content-type", METRICS_CONTENT_TYPE.encode())])
        elif path in DOCUMENT_PATHS:  # the AsyncAPI and OpenAPI documents (api_docs/served.py)
            await _send(send, *self._documents.answer(path, scope["headers"]))
        else:
            await _respond(send, 404, {"error": "not_found", "detail": f"no route {path}"})

    async def _post_events(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.service
        raw_headers = scope["headers"]
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in raw_headers}
        try:
            if len(headers) != len(raw_headers):  # a name came more than once: rare, so only then looked into
                headers = _merged_headers(raw_headers)
            if "transfer-encoding" in headers or "content-encoding" in headers:
                _check_codings(headers)
            self._authorize(headers.get("authorization"))
            service.admit()  # draining or over SERVICE_MAX_PENDING: refused before the body is read
            media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            header_bytes = _binary_header_bytes(media_type, headers)  # a binary event's ce-* headers count too
            declared_length = headers.get("content-length")
            if declared_length is not None and _over(declared_length, self._max_body - header_bytes):
                raise _too_large(self._max_body, header_bytes)
            body = await self._read_body(receive, header_bytes)
            self._auth.verify_signature(headers, body)  # before anything of the body is parsed
            events, bodies = self._parse(media_type, headers, body)
            service.metrics.received.inc(len(events))
            outcome = await service.accept(events, bodies, self._wait_seconds(headers.get("prefer")), bounded=True)
            counts = {"accepted": outcome.accepted, "duplicates": outcome.duplicates}
            if outcome.outcomes is None:
                status, answer = 202, _encode(counts)
            else:
                results = [
                    {"id": o.event_id, "handler": o.handler, "status": o.status, "result": o.result, "error": o.error}
                    for o in outcome.outcomes
                ]
                status, answer = 200, _encode({**counts, "results": results})
        except EventRejected as rejection:
            # the one place a rejection is answered, so the one place it is counted
            service.metrics.reject(rejection.reason)
            await _respond(send, rejection.status, rejection.body, _encoded(rejection.headers))
            return
        except StoreUnavailable as failure:  # nothing was stored; the service logged it (with its traceback)
            # the store's own error is for the log and /readyz; the reserve's figures help the sender
            cause = str(failure) if isinstance(failure, DiskReserveReached) else "the store cannot take events now"
            detail = redact(f"{cause}; nothing was stored: retry later", self._secrets)
            refusal = {"error": failure.code, "detail": detail, "retry_after_seconds": STORE_RETRY_AFTER_SECONDS}
            await _respond(send, 503, refusal, [(b"retry-after", str(STORE_RETRY_AFTER_SECONDS).encode())])
            return
        except Exception:  # a bug, never client input (tests/api/test_fuzzed_requests.py)
            log.exception("post_events_failed")
            await _respond(send, 500, {"error": "internal_error", "detail": "the service failed; the error is logged"})
            return
        await _send(send, status, answer, _JSON)

    def _authorize(self, authorization: str | None) -> None:
        self._auth.authorize(authorization)  # 401 without a valid token, 429 over its rate

    async def _read_body(self, receive: Receive, header_bytes: int) -> bytes:
        """The whole body, refused with 413 as soon as it and `header_bytes` (a binary event's ce-* headers) are over
        SERVICE_MAX_BODY_BYTES."""
        limit = self._max_body - header_bytes
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
            if size > limit:
                raise _too_large(self._max_body, header_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _parse(
        self, media_type: str, headers: dict[str, str], body: bytes
    ) -> tuple[list[CloudEvent], list[bytes] | None]:
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


def _too_large(limit: int, header_bytes: int = 0) -> EventRejected:
    if header_bytes:
        return EventRejected(
            RejectionReason.TOO_LARGE,
            "event_too_large",
            f"the binary-mode event ({header_bytes} bytes of ce-* headers, and the body) is larger than {limit} bytes",
            max_bytes=limit,
        )
    return EventRejected(
        RejectionReason.TOO_LARGE, "body_too_large", f"the body is larger than {limit} bytes", max_bytes=limit
    )


def _over(declared_length: str, limit: int) -> bool:
    """Whether a Content-Length is over `limit`; one that is not a number is left to the server (ASCII digits only:
    `int` takes other digits, and refuses more than 4,300 of them)."""
    if not (declared_length.isascii() and declared_length.isdigit()):
        return False
    return len(declared_length) > 18 or int(declared_length) > limit


def _binary_header_bytes(media_type: str, headers: dict[str, str]) -> int:
    """In binary mode the ce-* headers are the event's attributes: their names' and values' bytes, held to
    SERVICE_MAX_BODY_BYTES with the body as a structured event is. 0 in the other modes."""
    if media_type in (STRUCTURED, BATCH) or "ce-specversion" not in headers:
        return 0
    return sum(len(name) + len(value) for name, value in headers.items() if name.startswith("ce-"))


# headers whose second copy would make the request ambiguous (which token, which type?); ce-* headers too
_SINGLE_HEADERS = frozenset({"authorization", "content-type", "content-length"})


def _merged_headers(raw_headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Headers where a name came more than once: 400 for a duplicated ce-* or single-valued header; the lines of
    a list-valued one (Transfer-Encoding, Prefer, ...) are joined with ", ", as RFC 9110 section 5.3 reads them."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw_headers:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        if name in headers:
            if name in _SINGLE_HEADERS or name.startswith("ce-"):
                raise EventRejected(
                    RejectionReason.MALFORMED,
                    "duplicate_header",
                    f"the {name} header is sent more than once: send it once",
                    header=name,
                )
            value = f"{headers[name]}, {value}"
        headers[name] = value
    return headers


def _check_codings(headers: dict[str, str]) -> None:
    """501 for a transfer coding other than chunked (RFC 9112 section 6.1), 415 for a compressed body (RFC 7694):
    the service reads bodies as sent."""
    transfer = headers.get("transfer-encoding")
    if transfer is not None and [c.strip().lower() for c in transfer.split(",") if c.strip()] != ["chunked"]:
        raise EventRejected(
            RejectionReason.MALFORMED,
            "unsupported_transfer_coding",
            f"transfer coding {transfer!r} is not supported: send the body as is or chunked",
            status=501,
        )
    encoding = headers.get("content-encoding")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        raise EventRejected(
            RejectionReason.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_encoding",
            f"content coding {encoding!r} is not supported: send the body uncompressed",
            headers={"accept-encoding": "identity"},
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
