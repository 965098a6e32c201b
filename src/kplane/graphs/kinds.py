"""Which REST resource serves a kind: the built-in table plus the CRDs the cluster has (a small RESTMapper).

The RGD and instance controllers meet kinds by ``apiVersion``/``kind`` (templates) or by ``Kind.group``
(ApplySet inventories); lightkube needs a resource class with the plural and the scope. Built-ins come from
the served-resource data of the API level the server emulates (its ``/version``, read by the RGD
controller), CRDs from an informer cache, so a kind registered a moment ago (a chained RGD's CRD) is found
without a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from lightkube.generic_resource import (
    GenericGlobalResource,
    GenericNamespacedResource,
    create_api_info,
    create_global_resource,
    create_namespaced_resource,
)

from kplane.graphs.graph import KindSchema, SchemaLookup, crd_schemas
from kplane.versions.builtin_resources import builtin_resources
from kplane.versions.builtin_schemas import normalize_minor


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    builtin: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> type:
        return _resource_class(self)


@cache
def _resource_class(kind: Kind) -> type:
    """lightkube's class for the kind, always a dict-backed (generic) one: kro reads plain dicts, and a typed
    model costs a conversion on every read of the cache. A built-in's generic class stays out of lightkube's
    process-wide registry, where other controllers of this process find their typed classes."""
    if not kind.builtin:
        create = create_namespaced_resource if kind.namespaced else create_global_resource
        return create(kind.group, kind.version, kind.kind, kind.plural)
    base = GenericNamespacedResource if kind.namespaced else GenericGlobalResource
    return type(kind.kind, (base,), {"_api_info": create_api_info(kind.group, kind.version, kind.kind, kind.plural)})


@cache
def _builtins(minor: int) -> tuple[dict[tuple[str, str, str], Kind], dict[tuple[str, str], Kind]]:
    exact: dict[tuple[str, str, str], Kind] = {}
    preferred: dict[tuple[str, str], Kind] = {}
    for rt in builtin_resources(minor):
        if "/" in rt.plural:
            continue
        found = Kind(rt.group, rt.version, rt.kind, rt.plural, rt.namespaced, builtin=True)
        exact.setdefault((rt.group, rt.version, rt.kind), found)
        preferred.setdefault((rt.group, rt.kind), found)
    return exact, preferred


def served_minor(version_info: Mapping[str, Any]) -> int | None:
    """The API level a server serves, from its ``/version``: ``emulationMinor`` (KEP-4330, 1.33 and later),
    else the binary's ``minor`` (``"31+"`` on some distributions); ``None`` when neither is a number or kplane
    has no data for that level."""
    for key in ("emulationMinor", "minor"):
        text = str(version_info.get(key) or "").rstrip("+")
        if text.isdigit():
            minor = int(text)
            try:
                normalize_minor(minor)
            except ValueError:
                return None
            return minor
    return None


def _plain(obj: Any) -> dict[str, Any]:
    return dict(obj) if isinstance(obj, Mapping) else obj.to_dict()


def crd_kinds(crd: Mapping[str, Any]) -> list[Kind]:
    """The served versions of a CRD, storage version first."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    namespaced = spec.get("scope", "Namespaced") == "Namespaced"
    versions = sorted((v for v in spec.get("versions") or [] if v.get("served")), key=lambda v: not v.get("storage"))
    return [Kind(str(spec.get("group", "")), str(v["name"]), str(names.get("kind", "")), str(names.get("plural", "")),
                 namespaced) for v in versions]


class Kinds:
    """Kind lookups over the built-in table of one API level and a live collection of CRDs."""

    def __init__(self, minor: int, crds: Callable[[], Iterable[Any]]) -> None:
        self.minor = minor
        self._crds = crds

    def crd_objects(self) -> list[dict[str, Any]]:
        return [_plain(c) for c in self._crds()]

    def lookup(self, api_version: str, kind: str) -> Kind | None:
        group, _, version = api_version.rpartition("/")
        found = _builtins(self.minor)[0].get((group, version, kind))
        if found is not None:
            return found
        for crd in self.crd_objects():
            for candidate in crd_kinds(crd):
                if (candidate.group, candidate.version, candidate.kind) == (group, version, kind):
                    return candidate
        return None

    def preferred(self, group: str, kind: str) -> Kind | None:
        found = _builtins(self.minor)[1].get((group, kind))
        if found is not None:
            return found
        for crd in self.crd_objects():
            served = crd_kinds(crd)
            if served and (served[0].group, served[0].kind) == (group, kind):
                return served[0]
        return None

    def schemas(self) -> SchemaLookup:
        """Schemas of the cluster's CRDs, for ``build_graph``."""
        lookup = crd_schemas(self.crd_objects())

        def schemas(group: str, version: str, kind: str) -> KindSchema | None:
            return lookup(group, version, kind)

        return schemas
