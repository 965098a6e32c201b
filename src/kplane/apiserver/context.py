"""Everything one request needs to know about the server, passed explicitly instead of via globals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kplane.api.resources import ResourceType
from kplane.apiserver.request import ApiPath, Query


@dataclass
class RequestContext:
    """The parsed request: verb inputs plus the headers handlers read."""

    method: str
    path: ApiPath
    rtype: ResourceType
    query: Query
    headers: dict[str, str]
    body: bytes = b""
    user_agent: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def dry_run(self) -> bool:
        return self.query.get("dryRun") == "All"

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def accept(self) -> str:
        return self.headers.get("accept", "")

    def field_validation(self) -> str:
        """``Strict``, ``Warn`` (the server default since 1.27) or ``Ignore``."""
        from kplane.api import status

        value = self.query.get("fieldValidation") or "Warn"
        if value not in ("Strict", "Warn", "Ignore"):
            raise status.bad_request(
                f'fieldValidation must be one of "Ignore", "Warn", or "Strict", got "{value}"'
            )
        return value


@dataclass
class Response:
    status: int
    body: Any = None
    content_type: str = "application/json"
    raw: bytes | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
