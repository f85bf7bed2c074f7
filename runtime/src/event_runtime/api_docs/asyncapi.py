"""The AsyncAPI 3.0 document of a service: one channel per event type (all posted to `/events`), one receive
operation per handler, one send operation per declared follow-up (`HandlerRegistry.on(..., publishes=[...])`).

Follow-ups are not sent over HTTP: a handler's publish stores the event directly, and the service's own handlers
receive it like a posted one; the send operations say which handler may produce which type.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..__about__ import __version__ as runtime_version
from ..cloudevents import BATCH, STRUCTURED
from ..registry import HandlerRegistry
from ..settings import Settings
from .schemas import event_schemas, unique_keys

ASYNCAPI_VERSION = "3.0.0"
HTTP_BINDING_VERSION = "0.3.0"
_REF = "#/components/schemas/"


def document_title(settings: Settings) -> str:
    """The service's name as its events' source carries it (`/<slug>` unless SERVICE_EVENT_SOURCE says otherwise)."""
    return settings.event_source.strip("/") or settings.event_source


def asyncapi_document(registry: HandlerRegistry, settings: Settings, version: str) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the events a service built from `registry` takes and publishes."""
    unhandled = sorted({event_type for _, event_type in registry.unhandled_follow_ups()})
    schemas = event_schemas(registry, _REF, unhandled)
    channel_keys = schemas.keys
    message_keys = {event_type: "event" for event_type in channel_keys}  # one message per channel
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type, key in channel_keys.items():
        handlers = registry.handler_names_for(event_type)
        handled_by = ", ".join(handlers) if handlers else "no handler (publishing it fails)"
        channels[key] = {
            "address": "/events",
            "title": event_type,
            "description": (
                f"Events of type `{event_type}`, handled by: {handled_by}. Posted to `/events` in any of the "
                f"CloudEvents HTTP modes: structured (`{STRUCTURED}`), binary (`ce-*` headers, the data as the "
                f"body) or batch (`{BATCH}`); the OpenAPI document (`/openapi.json`) describes each."
            ),
            "messages": {message_keys[event_type]: {"$ref": f"#/components/messages/{key}"}},
        }
        messages[key] = {
            "name": event_type,
            "title": event_type,
            "summary": f"a CloudEvent of type {event_type}",
            "contentType": STRUCTURED,
            "payload": schemas.event_ref(key, _REF),
            "bindings": {
                "http": {
                    "headers": {
                        "type": "object",
                        "properties": {
                            "content-type": {"type": "string", "enum": [STRUCTURED, BATCH, "application/json"]},
                            "authorization": {"type": "string", "description": "Bearer <token>: SERVICE_AUTH_TOKENS"},
                            "prefer": {"type": "string", "description": "wait=<seconds>: answer with the results"},
                        },
                    },
                    "bindingVersion": HTTP_BINDING_VERSION,
                }
            },
        }
    operations: dict[str, Any] = {}
    names = sorted(registry.handler_names)
    operation_keys = unique_keys([f"handle.{name}" for name in names])
    for name in names:
        subscription = registry.by_name(name)
        assert subscription is not None  # a name the registry just listed
        key = channel_keys[subscription.event_type]
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{key}"},
            "title": name,
            "summary": f"{name} handles {subscription.event_type}",
            "messages": [{"$ref": f"#/channels/{key}/messages/{message_keys[subscription.event_type]}"}],
            "bindings": {"http": {"method": "POST", "bindingVersion": HTTP_BINDING_VERSION}},
        }
        doc = inspect.getdoc(subscription.function)
        if doc:
            operation["description"] = doc
        operations[operation_keys[f"handle.{name}"]] = operation
    follow_ups = [(name, event_type) for name, types in registry.follow_ups().items() for event_type in types]
    follow_up_keys = unique_keys([f"publish.{name}.{event_type}" for name, event_type in follow_ups])
    for name, event_type in follow_ups:
        key = channel_keys[event_type]
        operations[follow_up_keys[f"publish.{name}.{event_type}"]] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "title": f"{name} publishes {event_type}",
            "summary": f"{name} may publish {event_type} as a follow-up of the event it handles",
            "description": (
                "Stored directly, not sent over HTTP: its source is SERVICE_EVENT_SOURCE "
                f"(`{settings.event_source}`), its subject the cause's unless the handler gives one, and its id the "
                "same on every attempt of the handler call (a retry's publishes are duplicates)."
            ),
            "messages": [{"$ref": f"#/channels/{key}/messages/{message_keys[event_type]}"}],
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": document_title(settings),
            "version": version,
            "description": (
                f"The CloudEvents 1.0 events this service takes over HTTP and the follow-ups its handlers declare. "
                f"Generated by event-runtime {runtime_version} from the handler registry."
            ),
        },
        "defaultContentType": STRUCTURED,
        "servers": {
            "service": {
                "host": "{host}",
                "protocol": "http",
                "description": "the service's HTTP API (`serve --host --port`)",
                "variables": {"host": {"default": "127.0.0.1:8000", "description": "host:port it listens on"}},
                "security": [{"$ref": "#/components/securitySchemes/bearer"}],
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schemas.components,
            "messages": messages,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "one of SERVICE_AUTH_TOKENS; none is asked for while that is empty",
                }
            },
        },
    }
