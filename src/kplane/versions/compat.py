"""KEP-4330 compatibility versions: parsing and validating ``--emulated-version`` and ``--min-compatibility-version``.

The rules follow k8s.io/component-base at the release tags (compatibility/registry.go ``toVersionMap``,
compatibility/version.go ``Validate`` and ``SetEmulationVersion``; version/version.go for 1.31/1.32):

- a flag value is ``[component=]major.minor`` (component ``kube`` by default, a leading ``v`` allowed, no patch);
- 1.31 binaries can only emulate themselves; 1.32 binaries emulate 1.31..1.32; from 1.33 the floor is
  ``max(binary-3, 1.31)`` and ``floor <= emulated <= binary``;
- the min-compatibility version defaults to ``max(emulated-1, floor)``; it became a flag in 1.35, where
  ``floor <= minCompat <= emulated``. Before 1.35 it is fixed (1.31/1.32: binary-1; 1.33/1.34: the default).

Error texts are upstream's, so that scripts written against kube-apiserver read kplane's the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_KUBE_EMULATION_MINOR = 31  # component-base compatibility: minimumKubeEmulationVersion
MIN_COMPAT_FLAG_SINCE = 35  # --min-compatibility-version first registered at kubernetes-1.35.0
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?$")


class CompatibilityError(ValueError):
    """A bad version flag, worded as kube-apiserver words it."""


@dataclass(frozen=True)
class EffectiveVersion:
    """The three levels a control-plane component runs at (all ``1.<minor>``)."""

    binary: int
    emulated: int
    min_compat: int

    def label(self, minor: int) -> str:
        return f"1.{minor}"


def emulation_floor(binary: int) -> int:
    """Lowest emulated minor a binary accepts (1.31: itself; 1.32: binary-1; then max(binary-3, 1.31))."""
    if binary <= MIN_KUBE_EMULATION_MINOR:
        return binary
    if binary == 32:
        return 31
    return max(binary - 3, MIN_KUBE_EMULATION_MINOR)


def default_min_compat(binary: int, emulated: int) -> int:
    """Upstream default: one below the emulated level, never below the floor; 1.31/1.32 fix it at binary-1."""
    if binary <= 32:
        return binary - 1
    return max(emulated - 1, emulation_floor(binary))


def parse_version_flag(flag: str, value: str) -> int | None:
    """The kube minor named by one flag value (``1.34``, ``v1.34``, ``kube=1.34``); None for an empty value."""
    minors: dict[str, int] = {}
    for raw in (part.strip() for part in value.split(",")):
        if not raw:
            continue
        component, text = "kube", raw
        if "=" in raw:
            component, text = (s.strip() for s in raw.split("=", 1))
        match = _VERSION.match(text)
        if match is None:
            raise CompatibilityError(
                f'invalid argument "{value}" for "--{flag}" flag: could not parse "{text}" as version')
        major, minor, patch = (int(g) if g is not None else 0 for g in match.groups())
        if patch:
            raise CompatibilityError(f'invalid argument "{value}" for "--{flag}" flag: patch version not allowed, '
                                     f"got: {component}={major}.{minor}.{patch}")
        if component in minors:
            raise CompatibilityError(f'invalid argument "{value}" for "--{flag}" flag: duplicate version flag, '
                                     f"{component}=1.{minors[component]} and {component}={major}.{minor}")
        if component != "kube":
            raise CompatibilityError(
                f'invalid argument "{value}" for "--{flag}" flag: component not registered: {component}')
        if major != 1:
            raise CompatibilityError(f"{flag.replace('-', ' ')} {major}.{minor} is not supported: only 1.x exists")
        minors[component] = minor
    return minors.get("kube")


def effective_version(binary: int, emulated_flag: str | None = None,
                      min_compat_flag: str | None = None) -> EffectiveVersion:
    """Validate the flags against the binary level; raise :class:`CompatibilityError` with upstream wording."""
    emulated = parse_version_flag("emulated-version", emulated_flag) if emulated_flag else None
    explicit_min = parse_version_flag("min-compatibility-version", min_compat_flag) if min_compat_flag else None
    if explicit_min is not None and binary < MIN_COMPAT_FLAG_SINCE:
        raise CompatibilityError("unknown flag: --min-compatibility-version "
                                 f"(a 1.{binary} control plane has no such flag; it exists from 1.35)")
    emulated = binary if emulated is None else emulated
    floor = emulation_floor(binary)
    if binary == MIN_KUBE_EMULATION_MINOR and emulated != binary:
        raise CompatibilityError("emulation version needs to be equal to binary version(1.31) in "
                                 f"compatibility-version alpha, got 1.{emulated}")
    # 1.32's Validate printed both bounds with a patch (.0); from 1.33 the floor is major.minor.
    floor_text = f"1.{floor}.0" if binary == 32 else f"1.{floor}"
    if not floor <= emulated <= binary:
        raise CompatibilityError(f"emulation version 1.{emulated} is not between [{floor_text}, 1.{binary}.0]")
    min_compat = default_min_compat(binary, emulated) if explicit_min is None else explicit_min
    if explicit_min is not None and not floor <= explicit_min <= emulated:
        raise CompatibilityError(
            f"minCompatibilityVersion version 1.{explicit_min} is not between [1.{floor}, 1.{emulated}]")
    return EffectiveVersion(binary=binary, emulated=emulated, min_compat=min_compat)
