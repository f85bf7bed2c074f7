"""Every `error` code an answer of the service can carry, by HTTP status: the OpenAPI document's error bodies.

The codes are written where each answer is made (cloudevents.py, auth.py, service.py, ingress.py, bus/base.py,
http_protocol.py); runtime/tests/unit/test_openapi.py reads those sources and fails when a code is missing here, or
listed here and made nowhere.
"""

from __future__ import annotations

# status -> {code: when}; a code has one status
ERROR_CODES: dict[int, dict[str, str]] = {
    400: {
        "malformed_json": "the body (or binary-mode data) is not JSON",
        "invalid_utf8": "the JSON, or a ce-* header once percent-decoded, is not UTF-8",
        "nesting_too_deep": "data nests arrays and objects deeper than the limit (`max_depth`)",
        "malformed_event": "a structured body or batch member is not a JSON object",
        "malformed_batch": "a batch body is not a JSON array",
        "invalid_attributes": "CloudEvents attributes are missing or invalid (`attributes` names each)",
        "duplicate_header": "Authorization, Content-Type, Content-Length or a ce-* header came twice (`header`)",
        "invalid_http_request": "the HTTP parser refused the request (not HTTP, bad framing, a bad header)",
    },
    401: {
        "unauthorized": "no valid bearer token (SERVICE_AUTH_TOKENS, or SERVICE_METRICS_TOKEN for /metrics)",
        "bad_signature": "a signature header missing, a bad timestamp, or no signature matching a key",
        "stale_timestamp": "a valid signature whose timestamp is outside the replay window",
        "unsigned_attributes": "binary mode while signing is on: the signature would not cover the attributes",
    },
    404: {"not_found": "no such path"},
    405: {"method_not_allowed": "a method the path does not take (`Allow` names the ones it does)"},
    408: {"request_timeout": "the headers or the body did not arrive in time"},
    413: {
        "body_too_large": "the body is over SERVICE_MAX_BODY_BYTES (`max_bytes`)",
        "event_too_large": "a binary-mode event's ce-* headers and body are over SERVICE_MAX_BODY_BYTES",
        "batch_too_large": "a batch holds more than SERVICE_MAX_BATCH_EVENTS events (`max_events`)",
    },
    414: {"url_too_long": "the request URL is over SERVICE_MAX_URL_BYTES"},
    415: {
        "unsupported_media_type": "the content type is no CloudEvents mode and there are no ce-* headers",
        "unsupported_data": "data that is not JSON (data_base64, or a binary-mode content type that is not JSON)",
        "unsupported_content_encoding": "a compressed body (`Accept-Encoding: identity` says what is taken)",
    },
    422: {
        "unknown_type": "no handler is registered for the event's type (`type`)",
        "invalid_data": "the data does not match its type's schema (`errors`)",
    },
    429: {"rate_limited": "over SERVICE_RATE_LIMIT_PER_SECOND for this token (`Retry-After`, `retry_after_seconds`)"},
    431: {
        "headers_too_large": "the request's headers are over SERVICE_MAX_HEADER_BYTES",
        "too_many_headers": "more than SERVICE_MAX_HEADERS headers",
    },
    500: {"internal_error": "a failure of the service itself, never client input; the traceback is logged"},
    501: {"unsupported_transfer_coding": "a Transfer-Encoding other than chunked"},
    503: {
        "draining": "the process is shutting down (`Retry-After`)",
        "backlog_full": "more deliveries pending than SERVICE_MAX_PENDING (`Retry-After`)",
        "store_unavailable": "the store failed; nothing was stored (`Retry-After`)",
        "disk_full": "free space on the store's filesystem is under SERVICE_MIN_FREE_BYTES (`Retry-After`)",
        "too_many_connections": "over SERVICE_MAX_CONNECTIONS open connections (`Retry-After`), then closed",
    },
}

# the answers the HTTP layer (http_protocol.py) gives before a request reaches a route: any path may get them
HTTP_LAYER_CODES = frozenset(
    {"invalid_http_request", "request_timeout", "url_too_long", "headers_too_large", "too_many_headers"}
    | {"internal_error", "too_many_connections"}
)


def status_of(code: str) -> int:
    for status, codes in ERROR_CODES.items():
        if code in codes:
            return status
    raise KeyError(code)
