"""Feature gates with their versioned stage history, resolved at an emulated and min-compatibility version.

The table is ``data/feature-gates.yaml`` (sources named there). Resolution follows k8s.io/component-base
featuregate (``featureSpecAtEmulationAndMinCompatVersion`` and ``unsafeSetFromMap`` at kubernetes-1.36.0): the
spec in force is the last step not later than the emulated version; a gate with no such step is PreAlpha (off,
not settable). Overrides from ``--feature-gates`` are checked in upstream's order with upstream's error texts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources as importlib_resources
from types import MappingProxyType
from typing import Any

import yaml

STAGES = ("ALPHA", "BETA", "GA", "DEPRECATED")
PRE_ALPHA = "PRE-ALPHA"
# Upstream prints stages as featuregate.prerelease strings; GA is the empty string there.
_STAGE_LABEL = {"ALPHA": "ALPHA", "BETA": "BETA", "GA": "", "DEPRECATED": "DEPRECATED", PRE_ALPHA: "PRE-ALPHA"}


@dataclass(frozen=True)
class GateSpec:
    """One step of a gate's history: from ``1.<since>`` on, the gate has this stage and default."""

    since: int  # minor version (0 for upstream's "1.0" initial-state entries)
    default: bool
    stage: str  # ALPHA, BETA, GA, DEPRECATED
    locked: bool = False


@dataclass(frozen=True)
class Gate:
    name: str
    history: tuple[GateSpec, ...]
    binaries: tuple[int, int]  # first and last binary minor whose gate table holds the gate
    source: str
    unversioned: bool = False

    def known_to(self, binary: int) -> bool:
        return self.binaries[0] <= binary <= self.binaries[1]


@dataclass(frozen=True)
class GateState:
    """A gate as a running component sees it: the stage at the emulated version and whether it is on."""

    name: str
    stage: str  # one of STAGES or PRE_ALPHA
    default: bool
    locked: bool
    enabled: bool

    @property
    def stage_label(self) -> str:
        """The ``stage`` label of ``kubernetes_feature_enabled`` (empty for GA, as upstream)."""
        return _STAGE_LABEL[self.stage]


def _parse_step(text: str) -> GateSpec:
    parts = text.split()
    if len(parts) not in (3, 4) or parts[1] not in STAGES or parts[2] not in ("on", "off"):
        raise ValueError(f"bad feature-gate step {text!r}: expected 'VERSION STAGE on|off [locked]'")
    if len(parts) == 4 and parts[3] != "locked":
        raise ValueError(f"bad feature-gate step {text!r}: the fourth word can only be 'locked'")
    major, _, minor = parts[0].partition(".")
    if major != "1" or not minor.isdigit():
        raise ValueError(f"bad feature-gate step {text!r}: version must be 1.<minor>")
    return GateSpec(int(minor), parts[2] == "on", parts[1], len(parts) == 4)


def _parse_range(text: str) -> tuple[int, int]:
    low, _, high = str(text).partition("-")
    return int(low.split(".")[1]), int(high.split(".")[1])


def gate_from_entry(name: str, entry: Mapping[str, Any]) -> Gate:
    return Gate(name=name, history=tuple(_parse_step(s) for s in entry["history"]),
                binaries=_parse_range(entry["binaries"]), source=str(entry["source"]),
                unversioned=bool(entry.get("unversioned", False)))


@cache
def all_gates() -> Mapping[str, Gate]:
    """Every gate of the table, by name."""
    text = importlib_resources.files("kplane.versions").joinpath("data", "feature-gates.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)["gates"]
    return MappingProxyType({name: gate_from_entry(name, entry) for name, entry in raw.items()})


def gate_spec_at(history: tuple[GateSpec, ...], minor: int) -> GateSpec | None:
    """The spec in force at ``1.<minor>``: the last step not later than it; None before the first step."""
    current = None
    for spec in history:
        if spec.since <= minor:
            current = spec
    return current


def state_at(gate: Gate, emulated: int, override: bool | None = None) -> GateState:
    spec = gate_spec_at(gate.history, emulated)
    if spec is None:
        return GateState(gate.name, PRE_ALPHA, False, False, False)
    enabled = spec.default if override is None else override
    return GateState(gate.name, spec.stage, spec.default, spec.locked, enabled)


def parse_feature_gates(value: str) -> dict[str, bool]:
    """``A=true,B=false`` → mapping, with component-base's messages for malformed pairs (``kube:`` allowed)."""
    out: dict[str, bool] = {}
    prefixed: bool | None = None
    for raw in (part.strip() for part in value.split(",")):
        if not raw:
            continue
        key, sep, text = raw.partition("=")
        key = key.strip()
        has_prefix = key.startswith("kube:")
        if prefixed is not None and prefixed != has_prefix:
            raise ValueError("set kube feature gates with default empty prefix or kube: prefix consistently, "
                             "do not mix use")
        prefixed = has_prefix
        if ":" in key and not has_prefix:
            raise ValueError(f"component not registered: {key.split(':', 1)[0]}")
        key = key.removeprefix("kube:")
        if not sep:
            raise ValueError(f"missing bool value for {key}")
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "1", "0", "t", "f"):
            raise ValueError(f'invalid value of {key}={text.strip()}, err: strconv.ParseBool: parsing '
                             f'"{text.strip()}": invalid syntax')
        out[key] = lowered in ("true", "1", "t")
    return out


def resolve_gates(binary: int, emulated: int, min_compat: int,
                  overrides: Mapping[str, bool] | None = None) -> Mapping[str, GateState]:
    """The gate states of a component of binary ``1.<binary>`` emulating ``1.<emulated>``.

    Only gates the binary knows are present (PreAlpha ones included, off). Overrides are applied as
    ``unsafeSetFromMap`` does: unknown → error at once; locked or PreAlpha → error; all errors are reported.
    ``min_compat`` only appears in messages: no gate in the table carries a MinCompatibilityVersion step.
    """
    known = {name: gate for name, gate in all_gates().items() if gate.known_to(binary)}
    errors: list[str] = []
    for name, value in (overrides or {}).items():
        gate = known.get(name)
        if gate is None:
            raise ValueError(f"unrecognized feature gate: {name}")
        state = state_at(gate, emulated)
        if state.locked and state.default != value:
            errors.append(f"cannot set feature gate {name} to {str(value).lower()}, feature is locked to "
                          f"{str(state.default).lower()}")
        elif state.stage == PRE_ALPHA:
            errors.append(f"cannot set feature gate {name} to {str(value).lower()}, feature is PreAlpha at "
                          f"emulated version 1.{emulated}, min compatibility version 1.{min_compat}")
    if errors:
        raise ValueError("; ".join(errors))
    given = overrides or {}
    return MappingProxyType({name: state_at(gate, emulated, given.get(name)) for name, gate in sorted(known.items())})

