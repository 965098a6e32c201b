"""Turning an HTTP request into the API verb it means.

Kubernetes URLs carry the verb implicitly (a GET on a collection is ``list``, with ``?watch=1`` it is
``watch``), and the namespace, name and subresource positionally. Parsing that once here keeps the
handlers free of URL arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from kplane.api import status


@dataclass
class ApiPath:
    """The parts of a resource URL: ``/apis/<group>/<version>/namespaces/<ns>/<plural>/<name>/<sub>``."""

    group: str
    version: str
    plural: str = ""
    namespace: str | None = None
    name: str = ""
    subresource: str = ""


@dataclass
class Query:
    """Query parameters; a repeated key keeps its first value, as Go's ``url.Values.Get`` does."""

    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: bytes) -> Query:
        if not raw:
            return cls({})
        values: dict[str, str] = {}
        for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
            values.setdefault(key, value)
        return cls(values)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    def flag(self, key: str) -> bool:
        """Booleans as Kubernetes reads them: present and not ``0``/``false`` (any case)."""
        value = self.values.get(key)
        if value is None:
            return False
        return value.lower() not in ("", "0", "false")

    def integer(self, key: str) -> int | None:
        value = self.values.get(key, "")
        if value == "":
            return None
        try:
            number = int(value)
        except ValueError:
            raise status.bad_request(f"invalid value for {key}: {value!r} is not an integer") from None
        if number < 0:
            raise status.bad_request(f"invalid value for {key}: must be non-negative")
        return number


def split_path(path: str) -> list[str]:
    """Path segments without empty parts, so trailing slashes (kr8s sends them) do not matter."""
    return [p for p in path.split("/") if p]


def parse_resource_path(
    parts: list[str], is_namespaced_plural: Callable[[str, str, str], bool]
) -> ApiPath | None:
    """Parse ``api/v1/...`` or ``apis/<g>/<v>/...`` segments; ``None`` when it is not a resource URL.

    ``is_namespaced_plural(group, version, plural)`` answers whether a segment after ``namespaces/<ns>``
    names a namespaced resource, which is how ``/api/v1/namespaces/x/status`` (a subresource of the
    Namespace ``x``) is told apart from ``/api/v1/namespaces/x/configmaps`` (a collection in ``x``).
    """
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    result = ApiPath(group, version)
    if not rest:
        return result
    if rest[0] == "namespaces" and len(rest) >= 3 and is_namespaced_plural(group, version, rest[2]):
        result.namespace = rest[1]
        rest = rest[2:]
    result.plural = rest[0]
    if len(rest) >= 2:
        result.name = rest[1]
    if len(rest) >= 3:
        result.subresource = rest[2]
    if len(rest) > 3:
        return None
    return result
