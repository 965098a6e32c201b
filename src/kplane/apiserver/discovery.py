"""API discovery documents, aggregated (apidiscovery.k8s.io) and legacy, built from served resource types.

kubectl 1.32 asks for aggregated discovery first and decides what it got from the response Content-Type;
the Python clients and kr8s read the legacy per-group-version lists. Both forms are derived here from the
same list of :class:`ResourceType` (built-ins from the version profile plus CRD-derived types), so they
never disagree.
Shapes follow k8s.io/api apidiscovery/v2 and k8s.io/apimachinery meta/v1 (APIVersions, APIGroupList,
APIResourceList). Verbs keep the resource table's order, which is alphabetical as upstream reports them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kplane.api.resources import ResourceType

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
LEGACY_JSON = "application/json"

# responseKind (None = the parent's kind) and verbs of each subresource, as the upstream REST storages
# register them: pkg/registry/core/pod (binding, status), core/namespace (finalize, status), apps (scale).
_SUBRESOURCES: dict[str, tuple[tuple[str, str, str] | None, tuple[str, ...]]] = {
    "status": (None, ("get", "patch", "update")),
    "scale": (("autoscaling", "v1", "Scale"), ("get", "patch", "update")),
    "binding": (("", "v1", "Binding"), ("create",)),
    "finalize": (None, ("update",)),
    "eviction": (("policy", "v1", "Eviction"), ("create",)),
    "token": (("authentication.k8s.io", "v1", "TokenRequest"), ("create",)),
}


@dataclass(frozen=True)
class DiscoveryFormat:
    """One answer form: ``aggregated`` (with its apidiscovery version) or legacy JSON."""

    name: str  # "v2", "v2beta1" or "legacy"
    content_type: str

    @property
    def aggregated(self) -> bool:
        return self.name != "legacy"


V2 = DiscoveryFormat("v2", AGGREGATED_V2)
V2BETA1 = DiscoveryFormat("v2beta1", AGGREGATED_V2BETA1)
LEGACY = DiscoveryFormat("legacy", LEGACY_JSON)


def _media_ranges(accept: str) -> list[tuple[str, dict[str, str], float]]:
    """Parse an Accept header into (type, params, q), highest q first, header order kept on ties."""
    ranges = []
    for raw in accept.split(","):
        parts = [p.strip() for p in raw.split(";")]
        media = parts[0].lower()
        if not media:
            continue
        params: dict[str, str] = {}
        for part in parts[1:]:
            key, sep, value = part.partition("=")
            if sep:
                params[key.strip().lower()] = value.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        if q > 0:
            ranges.append((media, params, q))
    ranges.sort(key=lambda r: -r[2])
    return ranges


def negotiate(accept: str | None, *, serve_v2beta1: bool = True) -> DiscoveryFormat | None:
    """Pick the discovery form an Accept header asks for; None when nothing acceptable is offered (406).

    ``serve_v2beta1`` is off for levels that no longer serve apidiscovery.k8s.io/v2beta1 (removed in 1.35).
    """
    if not accept or not accept.strip():
        return LEGACY
    for media, params, _q in _media_ranges(accept):
        if media not in ("application/json", "application/*", "*/*"):
            continue
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList":
            if params.get("v") == "v2":
                return V2
            if params.get("v") == "v2beta1" and serve_v2beta1:
                return V2BETA1
            continue
        if "as" in params or "g" in params:
            continue  # another typed form (e.g. Table); not something discovery can serve
        return LEGACY
    return None


_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key for Kubernetes versions: GA > beta > alpha, higher numbers first, then others by name.

    Mirrors apimachinery's version.CompareKubeAwareVersionStrings
    (v1 > v1beta2 > v1beta1 > v1alpha1).
    """
    match = _VERSION_RE.match(version)
    if not match:
        return (3, 0, 0, version)
    major = int(match.group(1))
    stage = {None: 0, "beta": 1, "alpha": 2}[match.group(2)]
    minor = int(match.group(3) or 0)
    return (stage, -major, -minor, "")


def group_versions(resources: Iterable[ResourceType]) -> list[tuple[str, list[str]]]:
    """Groups in first-seen order (built-ins come first, in upstream priority), each with its versions
    preferred-first."""
    groups: dict[str, set[str]] = {}
    for rt in resources:
        groups.setdefault(rt.group, set()).add(rt.version)
    return [(g, sorted(vs, key=version_priority)) for g, vs in groups.items()]


def storage_version_hash(group: str, version: str, kind: str) -> str:
    """Opaque hash of a storage version, as apiserver's discovery.StorageVersionHash computes it."""
    digest = hashlib.sha256(f"{group}/{version}/{kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _subresource(rt: ResourceType, name: str) -> tuple[dict[str, str], tuple[str, ...]]:
    kind, verbs = _SUBRESOURCES.get(name, (None, ("get",)))
    group, version, kind_name = kind if kind else (rt.group, rt.version, rt.kind)
    return {"group": group, "version": version, "kind": kind_name}, verbs


def _resources_of(resources: Iterable[ResourceType], group: str, version: str) -> list[ResourceType]:
    chosen = [rt for rt in resources if rt.group == group and rt.version == version]
    return sorted(chosen, key=lambda rt: rt.plural)


# --- aggregated -------------------------------------------------------------------------------------------


def _aggregated_resource(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular_name,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    if rt.subresources:
        subs = []
        for name in sorted(rt.subresources):
            response_kind, verbs = _subresource(rt, name)
            subs.append({"subresource": name, "responseKind": response_kind, "verbs": list(verbs)})
        entry["subresources"] = subs
    return entry


def aggregated_discovery(
    resources: Sequence[ResourceType], *, core: bool, form: DiscoveryFormat = V2
) -> dict[str, Any]:
    """``APIGroupDiscoveryList`` for ``/api`` (``core=True``: the "" group only) or ``/apis`` (all others)."""
    items = []
    for group, versions in group_versions(resources):
        if (group == "") != core:
            continue
        version_entries = [
            {
                "version": version,
                "resources": [_aggregated_resource(rt) for rt in _resources_of(resources, group, version)],
                "freshness": "Current",
            }
            for version in versions
        ]
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": version_entries})
    api_version = "apidiscovery.k8s.io/v2beta1" if form.name == "v2beta1" else "apidiscovery.k8s.io/v2"
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}


# --- legacy -----------------------------------------------------------------------------------------------


def api_versions(server_address: str = "") -> dict[str, Any]:
    """Legacy ``/api``: the core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _api_group(group: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list(resources: Sequence[ResourceType]) -> dict[str, Any]:
    """Legacy ``/apis``: every non-core group with its preferred version."""
    groups = [_api_group(g, vs) for g, vs in group_versions(resources) if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(resources: Sequence[ResourceType], group: str) -> dict[str, Any] | None:
    """Legacy ``/apis/<group>``; None when the group is not served."""
    for g, versions in group_versions(resources):
        if g == group and g:
            return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(g, versions)}
    return None


def _legacy_resource(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular_name,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    entry["storageVersionHash"] = storage_version_hash(rt.group, rt.storage_version or rt.version, rt.kind)
    return entry


def _legacy_subresource(rt: ResourceType, name: str) -> dict[str, Any]:
    response_kind, verbs = _subresource(rt, name)
    entry: dict[str, Any] = {
        "name": f"{rt.plural}/{name}",
        "singularName": "",
        "namespaced": rt.namespaced,
        "kind": response_kind["kind"],
        "verbs": list(verbs),
    }
    if (response_kind["group"], response_kind["version"]) != (rt.group, rt.version):
        entry["group"] = response_kind["group"]
        entry["version"] = response_kind["version"]
    return entry


def api_resource_list(resources: Sequence[ResourceType], group: str, version: str) -> dict[str, Any] | None:
    """Legacy ``/api/v1`` or ``/apis/<group>/<version>``; None when that group-version is not served."""
    chosen = _resources_of(resources, group, version)
    if not chosen:
        return None
    entries: list[dict[str, Any]] = []
    for rt in chosen:
        entries.append(_legacy_resource(rt))
        entries.extend(_legacy_subresource(rt, name) for name in sorted(rt.subresources))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }
