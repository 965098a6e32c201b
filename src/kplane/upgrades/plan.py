"""Planning a two-step control-plane upgrade (KEP-4330), from facts already gathered: no I/O here.

The steps are KEP-4330's Story 1 (keps/sig-architecture/4330-compatibility-versions/README.md):
1. binaries to 1.V, still emulating the current level (rollback-safe);
2. soak;
3. emulated version to 1.V (from here a binary rollback is no longer offered);
4. optionally ``--min-compatibility-version=1.V`` (1.35+ only; the point of no return).

Blockers come first: anything that makes step 1 or step 3 unsafe. Kubelet skew follows the version skew
policy (kubernetes/website content/en/releases/version-skew-policy.md: kubelet never newer than the
apiserver, up to 3 minors older from 1.25 on, 2 before) with KEP-4330's refinement that the kubelet must not
be newer than the apiserver's *emulated* version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from kplane.versions import apis, compat
from kplane.versions.gates import PRE_ALPHA, Gate, state_at

SUPPORTED = range(31, 37)  # levels the version data covers (1.31-1.36)
_TARGET = re.compile(r"^v?1\.(\d+)$")
_KUBELET = re.compile(r"^v?1\.(\d+)(?:\.\d+)?(?:[-+].*)?$")

BLOCKER = "blocker"
WARNING = "warning"


@dataclass(frozen=True)
class ServerVersion:
    """What ``/version`` says: the binary level and, from 1.33, the emulation and min-compatibility levels."""

    binary: int
    emulated: int
    min_compat: int
    git_version: str = ""


@dataclass(frozen=True)
class NodeInfo:
    name: str
    kubelet_version: str


@dataclass(frozen=True)
class FoundObject:
    """An object that uses an API version: ``source`` is ``cluster`` or the manifest file it came from.

    ``used_api`` is the apiVersion the object was written with (a manifest's own, or in a cluster the
    version named by its managedFields / last-applied configuration)."""

    source: str
    used_api: str
    kind: str
    name: str
    namespace: str = ""


@dataclass(frozen=True)
class Finding:
    severity: str  # BLOCKER or WARNING
    code: str  # removed-api, kubelet-skew, version, feature-gate, …
    message: str


@dataclass(frozen=True)
class GateChange:
    """A gate whose default or stage at 1.V differs from the current emulated level (effective at step 3)."""

    name: str
    stage_from: str
    stage_to: str
    default_from: bool
    default_to: bool


@dataclass(frozen=True)
class Flags:
    """The ``kplane up`` / kube-apiserver flags of a step; None: not passed (upstream's default applies)."""

    kube_version: str
    emulated_version: str | None = None
    min_compatibility_version: str | None = None


@dataclass(frozen=True)
class Step:
    number: int
    name: str  # step1 … step4
    title: str
    detail: str
    flags: Flags | None = None
    status: str = "pending"  # pending, done, unavailable
    optional: bool = False
    point_of_no_return: bool = False
    rollback: str = ""


@dataclass(frozen=True)
class Plan:
    current: ServerVersion
    target: int
    blockers: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    gate_changes: tuple[GateChange, ...]
    removed_apis: tuple[str, ...]  # group/versions (with kinds) that 1.V no longer serves
    steps: tuple[Step, ...]

    @property
    def ok(self) -> bool:
        return not self.blockers

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["target"] = f"1.{self.target}"
        data["current"] = {"binary": f"1.{self.current.binary}", "emulated": f"1.{self.current.emulated}",
                           "minCompatibility": f"1.{self.current.min_compat}",
                           "gitVersion": self.current.git_version}
        return data


@dataclass(frozen=True)
class PlanInputs:
    """Everything the planner looks at; gathered by :mod:`kplane.upgrades.inspect` or written by hand in tests."""

    server: ServerVersion
    nodes: Sequence[NodeInfo] = ()
    objects: Sequence[FoundObject] = ()  # objects using an API removed at or before the target
    gate_overrides: Mapping[str, bool] = field(default_factory=dict)  # gates set away from their default
    served_removed: Mapping[str, int] = field(default_factory=dict)  # "apiVersion Kind" → objects readable there


def parse_target(text: str) -> int:
    """``1.35`` / ``v1.35`` → 35; a patch version or a level outside the version data is bad input."""
    match = _TARGET.match(text.strip())
    if match is None:
        raise ValueError(f"--to must be a Kubernetes minor version such as 1.35, got {text!r}")
    minor = int(match.group(1))
    if minor not in SUPPORTED:
        raise ValueError(f"--to 1.{minor} is outside the version data kplane has (1.{SUPPORTED[0]}-1.{SUPPORTED[-1]})")
    return minor


def kubelet_minor(version: str) -> int | None:
    """The minor of a kubeletVersion such as ``v1.33.2`` or ``v1.33.2-eks-1``; None when unreadable."""
    match = _KUBELET.match(version.strip())
    return int(match.group(1)) if match else None


def max_kubelet_lag(kubelet: int) -> int:
    """Minors a kubelet may trail the apiserver: 3 from kubelet 1.25 on, 2 before (skew policy)."""
    return 3 if kubelet >= 25 else 2


def kubelet_skew(node: NodeInfo, binary: int, emulated: int) -> str | None:
    """Why this node's kubelet is outside the skew policy against an apiserver at ``binary``/``emulated``."""
    minor = kubelet_minor(node.kubelet_version)
    if minor is None:
        return f"node {node.name}: kubeletVersion {node.kubelet_version!r} is not a version"
    if minor > emulated:
        return (f"node {node.name}: kubelet v1.{minor} is newer than the apiserver's emulated version 1.{emulated} "
                "(kubelets must never be newer than the apiserver)")
    if binary - minor > max_kubelet_lag(minor):
        return (f"node {node.name}: kubelet v1.{minor} is more than {max_kubelet_lag(minor)} minors older than "
                f"apiserver 1.{binary}; upgrade the kubelet first")
    return None


def _version_findings(server: ServerVersion, target: int) -> list[Finding]:
    out: list[Finding] = []

    def block(message: str) -> None:
        out.append(Finding(BLOCKER, "version", message))

    if target < server.binary:
        block(f"the control plane already runs 1.{server.binary}; 1.{target} would be a downgrade "
              "(use `kplane upgrade rollback` during a soak)")
    elif server.binary > server.emulated and target != server.binary:
        block(f"an upgrade to 1.{server.binary} is in progress (binary 1.{server.binary} emulating "
              f"1.{server.emulated}); finish it with --to 1.{server.binary} or roll it back first")
    elif target > server.emulated + 1:
        block(f"1.{server.emulated} → 1.{target} skips a minor version; upgrade one minor at a time "
              f"(next: 1.{server.emulated + 1})")
    elif target > server.binary and server.emulated < compat.emulation_floor(target):
        block(f"a 1.{target} binary cannot emulate 1.{server.emulated} (its emulation floor is "
              f"1.{compat.emulation_floor(target)}), so there is no rollback-safe step 1")
    if server.binary not in SUPPORTED:
        block(f"the cluster runs 1.{server.binary}, outside the version data kplane has "
              f"(1.{SUPPORTED[0]}-1.{SUPPORTED[-1]})")
    return out


def _object_findings(objects: Iterable[FoundObject], target: int) -> list[Finding]:
    out: list[Finding] = []
    for obj in objects:
        entry = apis.removal_of(obj.used_api, obj.kind)
        if entry is None or entry.removed_in > target:
            continue
        where = f"{obj.namespace}/{obj.name}" if obj.namespace else obj.name
        instead = f"use {entry.replacement}" if entry.replacement else entry.note
        out.append(Finding(BLOCKER, "removed-api",
                           f"{obj.source}: {obj.kind} {where} uses {obj.used_api}, removed in 1.{entry.removed_in}; "
                           f"{instead}"))
    return out


def _served_removed_findings(served: Mapping[str, int], target: int) -> list[Finding]:
    """Objects readable through a removed API but written through another version: their data is safe
    (storage is version-independent), yet clients still reading the old version break at step 3."""
    out = []
    for key, count in sorted(served.items()):
        api_version, _, kind = key.partition(" ")
        entry = apis.removal_of(api_version, kind)
        if entry is None or entry.removed_in > target or count == 0:
            continue
        out.append(Finding(WARNING, "removed-api",
                           f"{count} {kind} object(s) are readable through {api_version}, which 1.{target} no longer "
                           f"serves; clients must read them through {entry.replacement or entry.note}"))
    return out


def _gate_findings(overrides: Mapping[str, bool], gates: Mapping[str, Gate], target: int) -> list[Finding]:
    """Gates the cluster sets explicitly that a 1.V binary at emulation 1.V would refuse (locked or gone)."""
    out: list[Finding] = []
    for name, value in sorted(overrides.items()):
        gate = gates.get(name)
        if gate is None or not gate.known_to(target):
            out.append(Finding(BLOCKER, "feature-gate",
                               f"feature gate {name} is set but 1.{target} does not know it; remove it from "
                               "--feature-gates before step 1"))
            continue
        state = state_at(gate, target)
        if state.locked and state.default != value:
            out.append(Finding(BLOCKER, "feature-gate",
                               f"feature gate {name} is set to {str(value).lower()} but is locked to "
                               f"{str(state.default).lower()} at 1.{target}; remove it before step 3"))
    return out


def gate_changes(gates: Mapping[str, Gate], current: int, target: int) -> tuple[GateChange, ...]:
    """Gates known to a 1.V binary whose stage or default differs between emulating 1.current and 1.V.

    Gates that merely appear as alpha (off by default) change nothing a user would notice and are left out."""
    out = []
    for name, gate in sorted(gates.items()):
        if not gate.known_to(target):
            continue
        before, after = state_at(gate, current), state_at(gate, target)
        new_and_off = before.stage == PRE_ALPHA and not after.default
        if (before.stage, before.default) != (after.stage, after.default) and after.stage != PRE_ALPHA \
                and not new_and_off:
            out.append(GateChange(name, before.stage, after.stage, before.default, after.default))
    return tuple(out)


def _label(minor: int) -> str:
    return f"1.{minor}"


def _steps(server: ServerVersion, target: int) -> tuple[Step, ...]:
    current = server.emulated
    step1_min = compat.default_min_compat(target, current)
    keep_min = server.min_compat if target >= compat.MIN_COMPAT_FLAG_SINCE and step1_min != server.min_compat \
        else None
    binaries_done = server.binary == target
    emulation_done = server.emulated == target
    min_done = server.min_compat == target
    step1 = Step(1, "step1", f"Binaries to {_label(target)}, emulating {_label(current)}",
                 f"Restart the control plane with the {_label(target)} binary and --emulated-version="
                 f"{_label(current)}: served APIs, gate defaults and storage versions stay those of {_label(current)}.",
                 Flags(_label(target), _label(current), _label(keep_min) if keep_min else None),
                 status="done" if binaries_done else "pending",
                 rollback=f"rollback-safe: restart the {_label(server.binary if not binaries_done else current)} "
                          "binary (`kplane upgrade rollback`)")
    step2 = Step(2, "step2", "Soak", "Check readiness, the API error rate (apiserver_request_total), that every "
                 "stored object is readable, and that a watch resumes across the restart; let workloads run.",
                 status="done" if emulation_done else "pending", rollback="rollback-safe")
    step3 = Step(3, "step3", f"Emulated version to {_label(target)}",
                 f"Restart with --emulated-version={_label(target)} (the default): {_label(target)} APIs and gate "
                 f"defaults turn on; storage stays readable by {_label(compat.default_min_compat(target, target))}.",
                 Flags(_label(target)), status="done" if emulation_done else "pending",
                 rollback=f"no binary rollback; emulation can go back to {_label(current)} by restarting with "
                          f"--emulated-version={_label(current)}")
    if target >= compat.MIN_COMPAT_FLAG_SINCE:
        step4 = Step(4, "step4", f"Min compatibility version to {_label(target)} (optional)",
                     f"Restart with --min-compatibility-version={_label(target)}: newest storage versions and CEL "
                     "features; rollbacks below this level are no longer supported.",
                     Flags(_label(target), None, _label(target)), status="done" if min_done else "pending",
                     optional=True, point_of_no_return=True, rollback="none: point of no return")
    else:
        step4 = Step(4, "step4", "Min compatibility version (not available)",
                     f"--min-compatibility-version is a flag from 1.{compat.MIN_COMPAT_FLAG_SINCE}; a "
                     f"{_label(target)} control plane keeps it at "
                     f"{_label(compat.default_min_compat(target, target))}.",
                     status="unavailable", optional=True, point_of_no_return=True)
    return (step1, step2, step3, step4)


def build_plan(inputs: PlanInputs, target: int, gates: Mapping[str, Gate]) -> Plan:
    """The plan for taking the cluster described by ``inputs`` to ``1.<target>``, blockers first."""
    server = inputs.server
    findings = _version_findings(server, target)
    findings += _object_findings(inputs.objects, target)
    for node in inputs.nodes:
        for binary, emulated in ((server.binary, server.emulated), (target, server.emulated)):
            problem = kubelet_skew(node, binary, emulated)
            if problem is not None:
                findings.append(Finding(BLOCKER, "kubelet-skew", problem))
                break
    findings += _gate_findings(inputs.gate_overrides, gates, target)
    findings += _served_removed_findings(inputs.served_removed, target)
    removed = tuple(f"{r.api_version} ({', '.join(r.kinds)}): removed in 1.{r.removed_in}, use "
                    f"{r.replacement or r.note}" for r in apis.removed_between(server.emulated, target))
    return Plan(current=server, target=target,
                blockers=tuple(f for f in findings if f.severity == BLOCKER),
                warnings=tuple(f for f in findings if f.severity == WARNING),
                gate_changes=gate_changes(gates, server.emulated, target) if target > server.emulated else (),
                removed_apis=removed, steps=_steps(server, target))
