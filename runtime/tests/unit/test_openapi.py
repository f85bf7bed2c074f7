"""The OpenAPI document of the HTTP surface: every error code the runtime answers with is documented under its
status, /events has its three modes and the limits of its settings, every $ref resolves. openapi-spec-validator and
schemathesis check a bake's document in tests/test_api_documents.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from event_runtime import http_protocol
from event_runtime.api_docs import openapi_document
from event_runtime.api_docs.errors import ERROR_CODES, HTTP_LAYER_CODES, status_of
from event_runtime.bus.base import DiskReserveReached, StoreUnavailable
from event_runtime.cloudevents import RejectionReason

from ..sample_service import ORDER_CANCELLED, ORDER_PLACED, registry
from .api_documents_support import refs, resolve, settings

SOURCE = Path(__file__).resolve().parents[2] / "src" / "event_runtime"
# EventRejected(RejectionReason.X, "code", ..., status=N): the code, its reason, and the status when the call (up to
# its closing parenthesis) overrides it
_REJECTION = re.compile(
    r'EventRejected\(\s*RejectionReason\.(\w+),\s*"(\w+)"'
    r"(?:(?:(?!EventRejected\(|\n\s*\)|\) from).)*?status=(\d+))?",
    re.S,
)
_SIGNATURE = re.compile(r'_refused\(\s*"(\w+)"')  # auth.py's 401 bad_signature family
_LITERAL = re.compile(r'"error": "(\w+)"')  # ingress.py's own answers


def codes_in_sources() -> dict[str, int]:
    """Every `error` code the runtime's sources make, with the status it is answered with."""
    found: dict[str, int] = {}
    for path in SOURCE.rglob("*.py"):
        if "api_docs" in path.parts:
            continue
        text = path.read_text()
        for reason, code, status in _REJECTION.findall(text):
            found[code] = int(status) if status else RejectionReason[reason].status
        for code in _SIGNATURE.findall(text):
            found[code] = RejectionReason.BAD_SIGNATURE.status
        for code in _LITERAL.findall(text):
            found.setdefault(code, {"not_found": 404, "method_not_allowed": 405, "internal_error": 500}[code])
    for failure in (StoreUnavailable, DiskReserveReached):
        found[failure.code] = 503
    for name in ("INVALID_REQUEST", "URL_TOO_LONG", "HEADERS_TOO_LARGE", "TOO_MANY_HEADERS", "REQUEST_TIMEOUT"):
        found[getattr(http_protocol, name)] = {"INVALID_REQUEST": 400, "URL_TOO_LONG": 414, "REQUEST_TIMEOUT": 408}.get(
            name, 431
        )
    found[http_protocol.TOO_MANY_CONNECTIONS] = 503
    found[http_protocol.INTERNAL_ERROR] = 500
    return found


def test_every_error_code_the_runtime_answers_with_is_documented_under_its_status() -> None:
    made = codes_in_sources()
    documented = {code: status for status, codes in ERROR_CODES.items() for code in codes}
    assert len(made) >= 30, sorted(made)  # the scan found them, not nothing
    assert made == documented
    assert made["unsupported_transfer_coding"] == 501 and made["stale_timestamp"] == 401
    assert {status_of(code) for code in HTTP_LAYER_CODES} == {400, 408, 414, 431, 500, 503}


def error_enum(document: dict[str, Any], response: dict[str, Any]) -> list[str]:
    schema = response["content"]["application/json"]["schema"]
    if "allOf" in schema:  # narrowed to some codes
        return list(schema["allOf"][1]["properties"]["error"]["enum"])
    return list(resolve(document, schema["$ref"])["properties"]["error"]["enum"])


def test_post_events_documents_the_three_modes_the_limits_and_every_error_body() -> None:
    document = openapi_document(registry, settings(max_batch_events=7, max_body_bytes=4096), "1.2.3")
    assert document["openapi"] == "3.1.0"
    post = document["paths"]["/events"]["post"]
    content = post["requestBody"]["content"]
    assert sorted(content) == ["application/cloudevents+json", "application/cloudevents-batch+json", "application/json"]
    assert content["application/cloudevents-batch+json"]["schema"]["maxItems"] == 7
    assert "4096 bytes" in post["description"]
    one_event = resolve(document, content["application/cloudevents+json"]["schema"]["$ref"])
    typed = [resolve(document, option["$ref"])["properties"]["type"]["const"] for option in one_event["oneOf"]]
    assert sorted(typed) == sorted([ORDER_PLACED, ORDER_CANCELLED])
    headers = {p["name"] for p in post["parameters"] if p["in"] == "header"}
    assert {"Prefer", "ce-specversion", "ce-id", "ce-source", "ce-type"} <= headers
    responses = post["responses"]
    assert {"200", "202"} <= set(responses)
    for status, codes in ERROR_CODES.items():
        if status in (404, 405):  # answered for paths and methods the document does not list
            assert str(status) not in responses
            continue
        assert error_enum(document, responses[str(status)]) == list(codes), status
    assert "Retry-After" in responses["503"]["headers"] and "Retry-After" in responses["429"]["headers"]


def test_the_get_routes_list_only_what_the_http_layer_can_answer_beside_their_own() -> None:
    document = openapi_document(registry, settings(), "1.2.3")
    assert sorted(document["paths"]) == [
        "/asyncapi.json",
        "/events",
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/readyz",
    ]
    for path in ("/healthz", "/metrics", "/asyncapi.json"):
        responses = document["paths"][path]["get"]["responses"]
        for status, response in responses.items():
            if status in ("200", "401"):
                continue
            assert set(error_enum(document, response)) <= HTTP_LAYER_CODES, (path, status)
    assert document["paths"]["/metrics"]["get"]["responses"]["200"]["content"].keys() == {"text/plain"}
    readiness = document["paths"]["/readyz"]["get"]["responses"]["503"]["content"]["application/json"]["schema"]
    assert readiness["anyOf"][0] == {"$ref": "#/components/schemas/runtime.Readiness"}


def test_every_ref_resolves() -> None:
    document = openapi_document(registry, settings(), "1.2.3")
    found = refs(document)
    assert len(found) > 20
    for ref in found:
        assert resolve(document, ref) is not None, ref
