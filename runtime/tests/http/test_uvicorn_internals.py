"""http_protocol.py overrides uvicorn's httptools protocol: these are the parts of uvicorn it copies or relies on.

When uvicorn moves (its pin in pyproject.toml), this fails: re-read `HttpToolsProtocol` and `RequestResponseCycle`
in uvicorn/protocols/http/httptools_impl.py against http_protocol.py, then update the version and the digest. The
behaviour itself is pinned by test_limits.py and test_early_answers.py.
"""

import hashlib
import inspect

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from event_runtime.http_protocol import LimitedHttpToolsProtocol

RELIED_ON = (
    *(
        getattr(HttpToolsProtocol, name)
        for name in (
            "__init__",
            "connection_made",
            "connection_lost",
            "eof_received",
            "data_received",
            "shutdown",
            "on_message_begin",
            "on_url",
            "on_header",
            "on_headers_complete",
            "on_body",
            "on_message_complete",
            "on_response_complete",
            "_start_asgi_task",
        )
    ),
    *(getattr(RequestResponseCycle, name) for name in ("__init__", "run_asgi", "send", "receive")),
)
REVIEWED = ("0.54.0", "458e98757a00ba2f53856b9a7e00998b9cfc323dd001b4aec91f299e7d9f79fb")


def test_the_uvicorn_internals_the_protocol_overrides_are_the_reviewed_ones() -> None:
    digest = hashlib.sha256("".join(inspect.getsource(part) for part in RELIED_ON).encode()).hexdigest()

    assert (uvicorn.__version__, digest) == REVIEWED


def test_the_service_runs_on_the_limited_protocol() -> None:
    from event_runtime.server import http_config
    from event_runtime.service import Service
    from event_runtime.settings import Settings

    from ..sample_service import registry

    config = http_config(Service(registry, Settings(bus_url="memory://")), "127.0.0.1", 0)

    assert isinstance(config.http, type) and issubclass(config.http, LimitedHttpToolsProtocol)
    assert config.http.limits.max_header_bytes == Settings().max_header_bytes
