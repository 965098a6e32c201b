"""What the API serves, from legacy discovery (`/api/v1`, `/apis`, `/apis/<group>/<version>`).

The namespace controller and the garbage collector must reach every resource, including custom
resources added after start-up, so they ask the server instead of using a fixed list, as
kube-controller-manager does (`ServerPreferredResources`). Requests go through lightkube's own request
builder, so they carry its authentication and TLS; only the parsing here is ours.

lightkube keeps one class per (apiVersion, kind) in a process-wide registry, and other controllers use its
typed classes; `resource_class` therefore prefers those and creates a generic class only for kinds that
lightkube does not know (custom resources), with the same arguments as the runtime's CRD manager.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from lightkube import AsyncClient
from lightkube.core.exceptions import LoadResourceError
from lightkube.core.generic_client import BasicRequest
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import create_global_resource, create_namespaced_resource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiResource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """`plural.group` (`pods` for the core group), the name kube-controller-manager logs and skips by."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def supports(self, *verbs: str) -> bool:
        return all(verb in self.verbs for verb in verbs)


def split_group_version(group_version: str) -> tuple[str, str]:
    group, _, version = group_version.rpartition("/")
    if not version:
        raise ValueError(f"invalid groupVersion {group_version!r}")
    return group, version


def parse_resource_list(doc: Mapping[str, Any]) -> list[ApiResource]:
    """The top-level resources of an APIResourceList; subresources (`pods/status`) are left out."""
    group, version = split_group_version(str(doc.get("groupVersion") or ""))
    found = []
    for entry in doc.get("resources") or []:
        name = str(entry.get("name") or "")
        kind = str(entry.get("kind") or "")
        if not name or not kind or "/" in name:
            continue
        found.append(ApiResource(group=group, version=version, kind=kind, plural=name,
                                 namespaced=bool(entry.get("namespaced")),
                                 verbs=frozenset(str(v) for v in entry.get("verbs") or [])))
    return found


def preferred_group_versions(doc: Mapping[str, Any]) -> list[str]:
    """The preferred groupVersion of each group in an APIGroupList (its first version when none is named)."""
    found = []
    for group in doc.get("groups") or []:
        preferred = (group.get("preferredVersion") or {}).get("groupVersion")
        versions = group.get("versions") or []
        if not preferred and versions:
            preferred = versions[0].get("groupVersion")
        if preferred:
            found.append(str(preferred))
    return found


def by_kind(resources: Iterable[ApiResource]) -> dict[tuple[str, str], ApiResource]:
    """Index resources by (group, kind): how an ownerReference's apiVersion and kind are resolved."""
    return {(r.group, r.kind): r for r in resources}


async def get_json(client: AsyncClient, path: str) -> Any:
    generic = client._client
    request = generic.build_adapter_request(BasicRequest(method="GET", url=path.lstrip("/")))
    response = await generic.send(request)
    generic.raise_for_status(response)
    return orjson.loads(response.content)


async def discover(client: AsyncClient) -> list[ApiResource]:
    """Every preferred-version resource the server serves.

    A group whose document cannot be read is skipped with a warning (an aggregated API that is down must
    not stop namespace deletion elsewhere); the core group must answer.
    """
    resources = parse_resource_list(await get_json(client, "/api/v1"))
    for group_version in preferred_group_versions(await get_json(client, "/apis")):
        try:
            resources += parse_resource_list(await get_json(client, f"/apis/{group_version}"))
        except Exception as exc:
            log.warning("discovery of %s failed: %s", group_version, exc)
    return resources


def resource_class(api: ApiResource) -> type:
    """The lightkube class for `api`: lightkube's typed one if it has it, else a generic one."""
    try:
        return resource_registry.load(api.api_version, api.kind)
    except (LoadResourceError, ImportError):
        pass
    create = create_namespaced_resource if api.namespaced else create_global_resource
    return create(api.group, api.version, api.kind, api.plural)
