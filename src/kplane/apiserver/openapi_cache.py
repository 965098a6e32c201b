"""Serving ``/openapi/v3``: the root index and per group-version documents, cached by content.

kubectl fetches the root and the documents it needs on every ``apply``/``edit``/``explain``; documents are
built once per registry state and served as pre-encoded bytes with the immutable caching headers the
real server sends for hashed URLs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kplane.api import status
from kplane.apiserver.context import Response
from kplane.apiserver.openapi import OpenAPIDocuments
from kplane.apiserver.registry import Registry
from kplane.apiserver.request import Query

CrdSchemas = Callable[[], Mapping[tuple[str, str, str], Any]]


class OpenAPICache:
    def __init__(self, registry: Registry, builtin_minor: int, crd_schemas: CrdSchemas) -> None:
        self.registry = registry
        self.crd_schemas = crd_schemas
        self.documents = OpenAPIDocuments(str(builtin_minor))

    def serve(self, parts: list[str], query: Query) -> Response:
        if parts[:2] != ["openapi", "v3"]:
            raise status.StatusError(404, "NotFound", "the server could not find the requested resource")
        resources = self.registry.all()
        schemas = self.crd_schemas()
        if len(parts) == 2:
            return Response(200, self.documents.root(resources, schemas))
        gv = "/".join(parts[2:])
        try:
            doc = self.documents.document(gv, resources, schemas)
        except (LookupError, ValueError):
            raise status.StatusError(404, "NotFound", "the server could not find the requested resource") from None
        headers: list[tuple[bytes, bytes]] = [(b"etag", f'"{doc.hash}"'.encode())]
        if query.get("hash") == doc.hash:
            headers.append((b"cache-control", b"public, immutable"))
        return Response(200, raw=doc.body, headers=headers)
