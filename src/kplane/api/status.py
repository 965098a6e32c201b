"""Kubernetes ``Status`` errors.

Every failure the API server reports is a ``metav1.Status`` with an upstream reason and code, so clients
(kubectl, client-go, the Python clients) react to it exactly as they would against a real cluster. Code
anywhere in the server raises :class:`StatusError`; the HTTP layer turns it into the response body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One entry of ``details.causes``: which field failed and why (``FieldValueInvalid`` …)."""

    reason: str
    message: str
    field: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


@dataclass
class StatusError(Exception):
    """An API failure carried as a Kubernetes ``Status`` object."""

    code: int
    reason: str
    message: str
    name: str = ""
    group: str = ""
    kind: str = ""
    causes: list[Cause] = field(default_factory=list)
    retry_after: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def to_status(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        }
        if self.reason:
            status["reason"] = self.reason
        if details:
            status["details"] = details
        return status


def qualified(resource: str, group: str) -> str:
    """``configmaps`` for the core group, ``widgets.example.com`` otherwise (upstream's GroupResource)."""
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> StatusError:
    return StatusError(404, "NotFound", f'{qualified(resource, group)} "{name}" not found',
                       name=name, group=group, kind=resource)


def already_exists(resource: str, group: str, name: str) -> StatusError:
    return StatusError(409, "AlreadyExists", f'{qualified(resource, group)} "{name}" already exists',
                       name=name, group=group, kind=resource)


def conflict(resource: str, group: str, name: str, why: str) -> StatusError:
    return StatusError(409, "Conflict",
                       f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
                       name=name, group=group, kind=resource)


MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> StatusError:
    """422 Invalid, worded as upstream: ``Kind.group "name" is invalid: [field: msg, …]``."""
    what = f"{kind}.{group}" if group else kind
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return StatusError(422, "Invalid", f'{what} "{name}" is invalid: {joined}',
                       name=name, group=group, kind=kind, causes=causes)


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> StatusError:
    return StatusError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> StatusError:
    accepted = "application/json, application/yaml, application/vnd.kubernetes.protobuf"
    return StatusError(415, "UnsupportedMediaType",
                       f'the body of the request was in an unknown format - accepted media types include: {accepted}'
                       f' (got "{content_type}")')


def gone(message: str) -> StatusError:
    return StatusError(410, "Expired", message)


def internal(message: str) -> StatusError:
    return StatusError(500, "InternalError", f"Internal error occurred: {message}")


def field_required(path: str) -> Cause:
    return Cause("FieldValueRequired", "Required value", path)


def field_invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {_quote(value)}: {detail}", path)


def field_unsupported(path: str, value: Any, allowed: list[str]) -> Cause:
    choices = ", ".join(f'"{a}"' for a in allowed)
    return Cause("FieldValueNotSupported", f"Unsupported value: {_quote(value)}: supported values: {choices}", path)


def field_forbidden(path: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", f"Forbidden: {detail}", path)


def field_type(path: str, value: Any, expected: str) -> Cause:
    return Cause("FieldValueTypeInvalid", f"Invalid value: {_quote(value)}: must be of type {expected}", path)


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return '"' + type(value).__name__ + '"'
    return str(value)
