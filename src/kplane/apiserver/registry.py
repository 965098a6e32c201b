"""The set of resources the server serves right now: the version profile's built-ins plus CRDs.

Routing, discovery and OpenAPI all read from here. ``generation`` increases on every change so that
documents derived from the registry (discovery, OpenAPI) can be cached and invalidated cheaply.
"""

from __future__ import annotations

from collections.abc import Iterable

from kplane.api.resources import ResourceType


class Registry:
    def __init__(self, builtins: Iterable[ResourceType]) -> None:
        self._builtins = list(builtins)
        self._crds: dict[str, list[ResourceType]] = {}
        self.generation = 0
        self._index: dict[tuple[str, str, str], ResourceType] = {}
        self._by_kind: dict[tuple[str, str, str], ResourceType] = {}
        self._rebuild()

    def _rebuild(self) -> None:
        self._index = {}
        self._by_kind = {}
        for rtype in self.all():
            self._index[(rtype.group, rtype.version, rtype.plural)] = rtype
            self._by_kind[(rtype.group, rtype.version, rtype.kind)] = rtype
        self.generation += 1

    def all(self) -> list[ResourceType]:
        out = list(self._builtins)
        for types in self._crds.values():
            out.extend(types)
        return out

    def resolve(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._index.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> ResourceType | None:
        return self._by_kind.get((group, version, kind))

    def is_namespaced(self, group: str, version: str, plural: str) -> bool:
        rtype = self._index.get((group, version, plural))
        return rtype is not None and rtype.namespaced

    def group_versions(self) -> set[tuple[str, str]]:
        return {(r.group, r.version) for r in self.all()}

    def crd_types(self, crd_name: str) -> list[ResourceType]:
        return list(self._crds.get(crd_name, []))

    def set_crd(self, crd_name: str, types: list[ResourceType]) -> None:
        if self._crds.get(crd_name) == types:
            return
        self._crds[crd_name] = types
        self._rebuild()

    def remove_crd(self, crd_name: str) -> None:
        if self._crds.pop(crd_name, None) is not None:
            self._rebuild()

    def conflicts_with(self, crd_name: str, types: list[ResourceType]) -> str | None:
        """A reason the CRD's names clash with another served resource, or ``None``."""
        for rtype in types:
            other = self._index.get((rtype.group, rtype.version, rtype.plural))
            if other is not None and other.crd_name != crd_name:
                return f'"{rtype.plural}" is already in use'
        return None
