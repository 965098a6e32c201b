"""Built-in API lifecycle: which group/versions a level serves, storage versions, and removed APIs.

Data: ``data/api-versions.yaml`` (k8s.io/api lifecycle metadata per tag) and ``data/removed-apis.yaml`` (the
Deprecated API Migration Guide). The serving and storage rules are KEP-4330's, as implemented in
k8s.io/apiserver at kubernetes-1.36.0 (``pkg/server/deleted_kinds.go`` and
``pkg/server/storage/resource_encoding_config.go`` ``emulatedStorageVersion``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

import yaml

_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


@dataclass(frozen=True)
class KindLifecycle:
    group: str
    version: str
    kind: str
    plural: str
    introduced: int  # minor
    removed: int | None  # first minor that no longer serves it

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def stage(self) -> str:
        return version_stage(self.version)

    def exists_at(self, minor: int) -> bool:
        """Introduced and not yet removed at ``1.<minor>`` (whether enabled by default or not)."""
        return self.introduced <= minor and (self.removed is None or minor < self.removed)


@dataclass(frozen=True)
class RemovedApi:
    removed_in: int
    group: str
    version: str
    kinds: tuple[str, ...]
    replacement: str  # apiVersion; "" when there is none (see note)
    note: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def version_stage(version: str) -> str:
    match = _KUBE_VERSION.match(version)
    if match is None:
        raise ValueError(f"not a Kubernetes API version: {version!r}")
    return {None: "GA", "beta": "BETA", "alpha": "ALPHA"}[match.group(2)]


def version_priority(version: str) -> tuple[int, int, int]:
    """Sort key, highest priority first when sorted descending: GA > beta > alpha, then by numbers
    (apimachinery ``version.CompareKubeAwareVersionStrings``)."""
    match = _KUBE_VERSION.match(version)
    if match is None:
        return (-1, 0, 0)
    major, pre, num = match.groups()
    rank = {None: 2, "beta": 1, "alpha": 0}[pre]
    return (rank, int(major), int(num or 0))


def _minor(text: Any) -> int:
    if not isinstance(text, str):  # YAML reads an unquoted 1.40 as the float 1.4
        raise ValueError(f"bad version {text!r}: write versions as quoted strings")
    major, _, minor = text.partition(".")
    if major != "1" or not minor.isdigit():
        raise ValueError(f"bad version {text!r}: expected 1.<minor>")
    return int(minor)


def _load(name: str) -> Any:
    return yaml.safe_load(importlib_resources.files("kplane.versions").joinpath("data", name).read_text("utf-8"))


@cache
def kinds() -> tuple[KindLifecycle, ...]:
    """Every built-in kind of every group/version in the table."""
    out: list[KindLifecycle] = []
    for gv in _load("api-versions.yaml")["groupVersions"]:
        for kind, spec in gv["kinds"].items():
            plural, introduced, *removed = spec
            out.append(KindLifecycle(group=str(gv["group"]), version=str(gv["version"]), kind=str(kind),
                                     plural=str(plural), introduced=_minor(introduced),
                                     removed=_minor(removed[0]) if removed else None))
    return tuple(out)


@cache
def _legacy_beta_on() -> frozenset[tuple[str, str, str]]:
    return frozenset((str(e["group"]), str(e["version"]), str(r))
                     for e in _load("api-versions.yaml")["legacyBetaEnabledByDefault"] for r in e["resources"])


def enabled_by_default(kind: KindLifecycle) -> bool:
    return kind.stage == "GA" or (kind.group, kind.version, kind.plural) in _legacy_beta_on()


def served_kinds(emulated: int) -> tuple[KindLifecycle, ...]:
    """Kinds a kube-apiserver emulating ``1.<emulated>`` serves by default: introduced at or before it, not
    removed by it, and enabled by default."""
    return tuple(k for k in kinds() if k.exists_at(emulated) and enabled_by_default(k))


def served_group_versions(emulated: int) -> frozenset[str]:
    return frozenset(k.api_version for k in served_kinds(emulated))


def storage_version(group: str, kind: str, emulated: int, min_compat: int) -> str | None:
    """The version objects of a kind are written in, so that a ``1.<min_compat>`` server can read them.

    Pass 1: the highest-priority non-alpha version introduced at or before ``min_compat``; pass 2 (brand-new
    kinds): the highest-priority version introduced at or before ``emulated``. None for unknown kinds.
    """
    candidates = sorted((k for k in kinds() if k.group == group and k.kind == kind),
                        key=lambda k: version_priority(k.version), reverse=True)
    for k in candidates:
        if k.stage != "ALPHA" and k.introduced <= min_compat and (k.removed is None or emulated < k.removed):
            return k.version
    for k in candidates:
        if k.exists_at(emulated):
            return k.version
    return None


@cache
def removed_apis() -> tuple[RemovedApi, ...]:
    """Removed built-in API versions (1.16 onward) with what replaces them, oldest first."""
    return tuple(RemovedApi(removed_in=_minor(e["removedIn"]), group=str(e["group"]), version=str(e["version"]),
                            kinds=tuple(e["kinds"]), replacement=str(e["replacement"]),
                            note=str(e.get("replacementNote", "")))
                 for e in _load("removed-apis.yaml")["removed"])


def removed_between(current: int, target: int) -> tuple[RemovedApi, ...]:
    """APIs an upgrade from ``1.<current>`` to ``1.<target>`` stops serving."""
    return tuple(r for r in removed_apis() if current < r.removed_in <= target)


def removal_of(api_version: str, kind: str) -> RemovedApi | None:
    """The removal entry covering ``apiVersion``/``kind``, if that pair was ever removed."""
    for entry in removed_apis():
        if entry.api_version == api_version and kind in entry.kinds:
            return entry
    return None


def kind_table() -> Mapping[tuple[str, str, str], KindLifecycle]:
    """(group, version, plural) → lifecycle, for lookups by served resource."""
    return {(k.group, k.version, k.plural): k for k in kinds()}
