"""A version profile: everything that depends on which Kubernetes level the server acts as.

The server reads served resources, feature gates and ``/version`` from one :class:`VersionProfile` rather than
from constants. A profile has three levels (KEP-4330): the binary level (``--kube-version``), the emulated level
(what is served and which gate defaults apply) and the min-compatibility level (which storage versions are
written, so that a server of that level can still read the data). Gate histories live in
``data/feature-gates.yaml`` (see :mod:`kplane.versions.gates`), so the default at any level is computed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kplane.api.resources import ResourceType
from kplane.versions import apis, compat
from kplane.versions.builtin_resources import builtin_resources, parse_minor
from kplane.versions.gates import GateSpec, GateState, all_gates, gate_spec_at, parse_feature_gates, resolve_gates

__all__ = [
    "DEFAULT_KUBE_VERSION", "FEATURE_GATE_HISTORY", "MAX_MINOR", "MIN_MINOR", "GateSpec", "VersionProfile",
    "feature_gate_defaults", "gate_spec_at", "load_profile",
]

MIN_MINOR = 31
MAX_MINOR = 36
DEFAULT_KUBE_VERSION = "1.36"

# /version reports the binary's build; these are fixed so that responses are reproducible.
_GIT_COMMIT = "0000000000000000000000000000000000000000"
_BUILD_DATE = "2026-01-01T00:00:00Z"
# Go toolchain series each Kubernetes minor was built with (kubernetes/kubernetes .go-version); clients only
# display this value, and the patch levels are indicative, not checked against each .0 tag.
_GO_VERSIONS = {
    31: "go1.22.5",
    32: "go1.23.3",
    33: "go1.24.2",
    34: "go1.24.6",
    35: "go1.25.4",
    36: "go1.25.7",
}
# First minor whose /version carries emulation and min-compatibility fields (apimachinery version.Info).
_COMPAT_FIELDS_SINCE = 33

# Every gate's history, by name (the whole table, whatever binary knows it).
FEATURE_GATE_HISTORY: Mapping[str, tuple[GateSpec, ...]] = MappingProxyType(
    {name: gate.history for name, gate in all_gates().items()})


def feature_gate_defaults(minor: int, emulated: int | None = None) -> Mapping[str, bool]:
    """Gate defaults of a ``1.<minor>`` binary emulating ``1.<emulated>`` (itself by default); gates the binary
    does not know, or that are not yet introduced at the emulated level (PreAlpha), are absent."""
    level = minor if emulated is None else emulated
    return MappingProxyType({name: state.default
                             for name, state in resolve_gates(minor, level, level).items()
                             if state.stage != "PRE-ALPHA"})


def _with_storage_versions(resources: tuple[ResourceType, ...], emulated: int,
                           min_compat: int) -> tuple[ResourceType, ...]:
    out = []
    for rt in resources:
        stored = apis.storage_version(rt.group, rt.kind, emulated, min_compat)
        out.append(dataclasses.replace(rt, storage_version=stored) if stored and stored != rt.version else rt)
    return tuple(out)


@dataclass(frozen=True)
class VersionProfile:
    kube_version: str  # binary level, "1.36"
    resources: tuple[ResourceType, ...]  # served at the emulated level, storage versions set
    feature_gates: Mapping[str, bool] = field(hash=False)  # gates not PreAlpha at the emulated level → enabled
    emulated_minor: int = 0  # 0: the binary level
    min_compat_minor: int = 0  # 0: the default for the emulated level
    gates: Mapping[str, GateState] = field(hash=False, default_factory=lambda: MappingProxyType({}))

    @property
    def minor(self) -> int:
        return parse_minor(self.kube_version)

    @property
    def emulated(self) -> int:
        return self.emulated_minor or self.minor

    @property
    def min_compat(self) -> int:
        return self.min_compat_minor or self.default_min_compatibility_minor(self.emulated)

    def resource(self, group: str, version: str, plural: str) -> ResourceType | None:
        for rt in self.resources:
            if rt.group == group and rt.version == version and rt.plural == plural:
                return rt
        return None

    def default_min_compatibility_minor(self, emulated_minor: int | None = None) -> int:
        """KEP-4330 default: one level below the emulated one, never below the emulation floor."""
        emulated = self.emulated if emulated_minor is None else emulated_minor
        return compat.default_min_compat(self.minor, emulated)

    def version_info(
        self, emulated_minor: int | None = None, min_compat_minor: int | None = None
    ) -> dict[str, Any]:
        """The ``/version`` body. ``major``/``minor``/``gitVersion`` describe the binary; from 1.33 servers
        also report the emulated and min-compatibility levels (this profile's unless given)."""
        minor = self.minor
        info: dict[str, Any] = {
            "major": "1",
            "minor": str(minor),
            "gitVersion": f"v1.{minor}.0",
            "gitCommit": _GIT_COMMIT,
            "gitTreeState": "clean",
            "buildDate": _BUILD_DATE,
            "goVersion": _GO_VERSIONS[minor],
            "compiler": "gc",
            "platform": "linux/amd64",
        }
        if minor >= _COMPAT_FIELDS_SINCE:
            emulated = self.emulated if emulated_minor is None else emulated_minor
            if min_compat_minor is not None:
                min_compat = min_compat_minor
            elif emulated_minor is None:
                min_compat = self.min_compat
            else:
                min_compat = self.default_min_compatibility_minor(emulated)
            info["emulationMajor"] = "1"
            info["emulationMinor"] = str(emulated)
            info["minCompatibilityMajor"] = "1"
            info["minCompatibilityMinor"] = str(min_compat)
        return info


def load_profile(kube_version: str = DEFAULT_KUBE_VERSION, emulated_version: str | None = None,
                 min_compatibility_version: str | None = None, feature_gates: str = "") -> VersionProfile:
    """The profile of a ``kube_version`` binary (``"1.31"`` … ``"1.36"``) started with the given
    ``--emulated-version``, ``--min-compatibility-version`` and ``--feature-gates`` values.

    Raises ``ValueError`` (a :class:`compat.CompatibilityError` for version flags) with upstream's wording.
    Flags are applied in upstream's order: emulation version, then min-compatibility version, then gates.
    """
    minor = parse_minor(kube_version)
    if not MIN_MINOR <= minor <= MAX_MINOR:
        raise ValueError(
            f"unsupported kube version {kube_version!r}: kplane can act as 1.{MIN_MINOR} to 1.{MAX_MINOR}"
        )
    levels = compat.effective_version(minor, emulated_version, min_compatibility_version)
    gates = resolve_gates(minor, levels.emulated, levels.min_compat, parse_feature_gates(feature_gates))
    served = builtin_resources(levels.emulated)
    return VersionProfile(
        kube_version=f"1.{minor}",
        resources=_with_storage_versions(served, levels.emulated, levels.min_compat),
        feature_gates=MappingProxyType({n: s.enabled for n, s in gates.items() if s.stage != "PRE-ALPHA"}),
        emulated_minor=levels.emulated,
        min_compat_minor=levels.min_compat,
        gates=gates,
    )
