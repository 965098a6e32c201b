"""A version profile: everything that depends on which Kubernetes API level the server acts as.

The server reads served resources, feature-gate defaults and ``/version`` from one :class:`VersionProfile`
rather than from constants, so that acting as another level (``--kube-version``) and, later, emulated and
min-compatibility versions (KEP-4330) change one object. Feature gates carry their stage history, the shape
upstream uses (``featuregate.VersionedSpecs``), so the default at any level is computed, never typed twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kplane.api.resources import ResourceType
from kplane.versions.builtin_resources import builtin_resources, parse_minor

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
# Lowest level any 1.33+ binary can emulate (component-base compatibility: minimumKubeEmulationVersion).
_EMULATION_FLOOR = 31


@dataclass(frozen=True)
class GateSpec:
    """One step of a gate's history: from ``since`` on, the gate has this stage and default."""

    since: int  # minor version
    default: bool
    stage: str  # ALPHA, BETA, GA, DEPRECATED
    locked: bool = False


# A small initial set of gates with their history. Sources: k8s.io/apiserver pkg/features/kube_features.go at
# tag kubernetes-1.36.0 and kubernetes/kubernetes pkg/features/kube_features.go (1.35- and 1.37-era copies),
# as summarised in the reference notes upgrades-capi.md §A1/§A5 and dra.md §1.1.
FEATURE_GATE_HISTORY: Mapping[str, tuple[GateSpec, ...]] = MappingProxyType(
    {
        "APIServerIdentity": (GateSpec(26, True, "BETA"),),
        "CoordinatedLeaderElection": (GateSpec(31, False, "ALPHA"), GateSpec(33, False, "BETA")),
        "DRAAdminAccess": (
            GateSpec(32, False, "ALPHA"),
            GateSpec(34, True, "BETA"),
            GateSpec(36, True, "GA"),
        ),
        "DRAConsumableCapacity": (GateSpec(34, False, "ALPHA"), GateSpec(36, True, "BETA")),
        "DRADeviceTaints": (GateSpec(33, False, "ALPHA"), GateSpec(36, True, "BETA")),
        "DRAExtendedResource": (GateSpec(34, False, "ALPHA"), GateSpec(36, True, "BETA")),
        "DRAPartitionableDevices": (GateSpec(33, False, "ALPHA"), GateSpec(36, True, "BETA")),
        "DRAPrioritizedList": (
            GateSpec(33, False, "ALPHA"),
            GateSpec(34, True, "BETA"),
            GateSpec(36, True, "GA"),
        ),
        "DRAResourceClaimDeviceStatus": (GateSpec(32, False, "ALPHA"), GateSpec(33, True, "BETA")),
        "DynamicResourceAllocation": (
            GateSpec(26, False, "ALPHA"),
            GateSpec(32, False, "BETA"),
            GateSpec(34, True, "GA"),
            GateSpec(35, True, "GA", locked=True),
        ),
        "KMSv1": (
            GateSpec(0, True, "GA"),
            GateSpec(28, True, "DEPRECATED"),
            GateSpec(29, False, "DEPRECATED"),
        ),
        "MutatingAdmissionPolicy": (
            GateSpec(32, False, "ALPHA"),
            GateSpec(34, False, "BETA"),
            GateSpec(36, True, "GA"),
        ),
        "SeparateCacheWatchRPC": (
            GateSpec(28, True, "BETA"),
            GateSpec(33, False, "DEPRECATED"),
            GateSpec(36, False, "DEPRECATED", locked=True),
        ),
        "StorageVersionAPI": (GateSpec(20, False, "ALPHA"),),
        "StructuredAuthenticationConfiguration": (
            GateSpec(29, False, "ALPHA"),
            GateSpec(30, True, "BETA"),
            GateSpec(34, True, "GA", locked=True),
        ),
        "UnknownVersionInteroperabilityProxy": (GateSpec(28, False, "ALPHA"), GateSpec(36, True, "BETA")),
        "WatchList": (
            GateSpec(27, False, "ALPHA"),
            GateSpec(32, True, "BETA"),
            GateSpec(33, False, "BETA"),
            GateSpec(34, True, "BETA"),
        ),
    }
)


def gate_spec_at(history: tuple[GateSpec, ...], minor: int) -> GateSpec | None:
    """The spec in force at ``1.<minor>``: the last step not later than it; None before the first step."""
    current = None
    for spec in history:
        if spec.since <= minor:
            current = spec
    return current


def feature_gate_defaults(minor: int) -> Mapping[str, bool]:
    """Gate defaults at ``1.<minor>``; gates not yet introduced at that level are absent."""
    out: dict[str, bool] = {}
    for name, history in FEATURE_GATE_HISTORY.items():
        spec = gate_spec_at(history, minor)
        if spec is not None:
            out[name] = spec.default
    return MappingProxyType(out)


@dataclass(frozen=True)
class VersionProfile:
    kube_version: str  # "1.36"
    resources: tuple[ResourceType, ...]
    feature_gates: Mapping[str, bool] = field(hash=False)

    @property
    def minor(self) -> int:
        return parse_minor(self.kube_version)

    def resource(self, group: str, version: str, plural: str) -> ResourceType | None:
        for rt in self.resources:
            if rt.group == group and rt.version == version and rt.plural == plural:
                return rt
        return None

    def default_min_compatibility_minor(self, emulated_minor: int | None = None) -> int:
        """KEP-4330 default: one level below the emulated one, never below the emulation floor."""
        emulated = self.minor if emulated_minor is None else emulated_minor
        floor = max(self.minor - 3, _EMULATION_FLOOR)
        return max(emulated - 1, floor)

    def version_info(
        self, emulated_minor: int | None = None, min_compat_minor: int | None = None
    ) -> dict[str, Any]:
        """The ``/version`` body. ``major``/``minor``/``gitVersion`` describe the binary; from 1.33 servers
        also report the emulated and min-compatibility levels (by default the binary level and one below)."""
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
            emulated = minor if emulated_minor is None else emulated_minor
            min_compat = (
                self.default_min_compatibility_minor(emulated)
                if min_compat_minor is None
                else min_compat_minor
            )
            info["emulationMajor"] = "1"
            info["emulationMinor"] = str(emulated)
            info["minCompatibilityMajor"] = "1"
            info["minCompatibilityMinor"] = str(min_compat)
        return info


def load_profile(kube_version: str = DEFAULT_KUBE_VERSION) -> VersionProfile:
    """The profile for API level ``kube_version`` (``"1.31"`` … ``"1.36"``)."""
    minor = parse_minor(kube_version)
    if not MIN_MINOR <= minor <= MAX_MINOR:
        raise ValueError(
            f"unsupported kube version {kube_version!r}: kplane can act as 1.{MIN_MINOR} to 1.{MAX_MINOR}"
        )
    return VersionProfile(
        kube_version=f"1.{minor}",
        resources=builtin_resources(minor),
        feature_gates=feature_gate_defaults(minor),
    )
