"""The service's API documents, generated from its handler registry and settings: an AsyncAPI 3.0 document of the
events it takes (and the follow-ups its handlers declare), an OpenAPI 3.1 document of its HTTP surface.

Both are served (`GET /asyncapi.json`, `GET /openapi.json`, see served.py) and written by the CLI
(`<slug> asyncapi`, `<slug> openapi`); docs/service-contract.md, "API documents".
"""

from .asyncapi import asyncapi_document
from .openapi import openapi_document
from .served import DOCUMENT_PATHS, ApiDocuments

__all__ = ["DOCUMENT_PATHS", "ApiDocuments", "asyncapi_document", "openapi_document"]
