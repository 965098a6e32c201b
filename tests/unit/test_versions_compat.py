"""KEP-4330 rules: flag parsing and ranges, gate resolution at the emulated level, served APIs, storage."""

from __future__ import annotations

import pytest

from kplane.versions import apis
from kplane.versions.compat import CompatibilityError, effective_version, emulation_floor, parse_version_flag
from kplane.versions.gates import parse_feature_gates, resolve_gates
from kplane.versions.profile import load_profile


@pytest.mark.parametrize(("binary", "floor"), [(31, 31), (32, 31), (33, 31), (34, 31), (35, 32), (36, 33)])
def test_floors(binary: int, floor: int) -> None:
    assert emulation_floor(binary) == floor


@pytest.mark.parametrize("text", ["1.34", "v1.34", "kube=1.34", "kube=v1.34", " kube = 1.34 "])
def test_accepted_forms(text: str) -> None:
    assert parse_version_flag("emulated-version", text) == 34


@pytest.mark.parametrize(("text", "message"), [
    ("1.32.1", 'invalid argument "1.32.1" for "--emulated-version" flag: patch version not allowed, '
               "got: kube=1.32.1"),
    ("kube=1.30,kube=1.32", "duplicate version flag, kube=1.30 and kube=1.32"),
    ("wardle=1.2", "component not registered: wardle"),
    ("one.two", 'could not parse "one.two" as version'),
    ("2.1", "only 1.x exists"),
])
def test_rejected_forms(text: str, message: str) -> None:
    with pytest.raises(CompatibilityError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_version_flag("emulated-version", text)


def test_ranges_and_defaults() -> None:
    assert effective_version(36) == effective_version(36, "1.36")
    assert (effective_version(36).emulated, effective_version(36).min_compat) == (36, 35)
    assert effective_version(34, "1.31").min_compat == 31  # never below the floor
    assert effective_version(36, "1.35", "1.33").min_compat == 33
    assert effective_version(32, "1.31").min_compat == 31
    with pytest.raises(CompatibilityError, match=r"emulation version 1\.30 is not between \[1\.31, 1\.34\.0\]"):
        effective_version(34, "1.30")
    with pytest.raises(CompatibilityError, match=r"emulation version 1\.37 is not between \[1\.33, 1\.36\.0\]"):
        effective_version(36, "1.37")
    with pytest.raises(CompatibilityError, match=r"not between \[1\.31\.0, 1\.32\.0\]"):
        effective_version(32, "1.30")
    with pytest.raises(CompatibilityError, match=r"equal to binary version\(1\.31\)"):
        effective_version(31, "1.30")
    with pytest.raises(CompatibilityError, match=r"minCompatibilityVersion version 1\.36 is not between "
                                                 r"\[1\.33, 1\.35\]"):
        effective_version(36, "1.35", "1.36")
    with pytest.raises(CompatibilityError, match=r"minCompatibilityVersion version 1\.32 is not between"):
        effective_version(36, None, "1.32")
    with pytest.raises(CompatibilityError, match="unknown flag: --min-compatibility-version"):
        effective_version(34, None, "1.33")


def test_feature_gate_flag_parsing() -> None:
    assert parse_feature_gates("A=true,B=False") == {"A": True, "B": False}
    assert parse_feature_gates("kube:A=true,kube:B=false") == {"A": True, "B": False}
    for bad, message in [("A", "missing bool value for A"), ("A=yes", "invalid value of A=yes"),
                         ("A=true,kube:B=true", "do not mix use"), ("wardle:A=true", "component not registered")]:
        with pytest.raises(ValueError, match=message):
            parse_feature_gates(bad)


def test_unknown_and_locked_and_prealpha_gates() -> None:
    with pytest.raises(ValueError, match="unrecognized feature gate: NoSuchGate"):
        resolve_gates(36, 36, 35, {"NoSuchGate": True})
    with pytest.raises(ValueError, match="unrecognized feature gate: MutatingAdmissionPolicy"):
        resolve_gates(31, 31, 30, {"MutatingAdmissionPolicy": True})  # unknown to a 1.31 binary
    with pytest.raises(ValueError, match="cannot set feature gate StructuredAuthenticationConfiguration to false, "
                                         "feature is locked to true"):
        resolve_gates(36, 34, 33, {"StructuredAuthenticationConfiguration": False})
    # Locked from 1.34 on, so settable while emulating 1.33.
    assert not resolve_gates(36, 33, 33, {"StructuredAuthenticationConfiguration": False})[
        "StructuredAuthenticationConfiguration"].enabled
    with pytest.raises(ValueError, match="cannot set feature gate DRAConsumableCapacity to true, feature is "
                                         r"PreAlpha at emulated version 1\.33, min compatibility version 1\.32"):
        resolve_gates(36, 33, 32, {"DRAConsumableCapacity": True})


def test_a_133_only_beta_gate_behaves_as_at_133() -> None:
    """WatchList was Beta but off only in 1.33 (on in 1.32 and 1.34)."""
    at_133 = load_profile("1.34", "1.33")
    assert at_133.gates["WatchList"].stage == "BETA" and at_133.feature_gates["WatchList"] is False
    assert load_profile("1.34").feature_gates["WatchList"] is True
    flipped = load_profile("1.34", "1.33", feature_gates="WatchList=true")
    assert flipped.feature_gates["WatchList"] is True and flipped.gates["WatchList"].default is False


def test_134_emulating_133_equals_133() -> None:
    real = load_profile("1.33")
    emulating = load_profile("1.34", "1.33")
    assert {(r.group, r.version, r.plural) for r in emulating.resources} == {
        (r.group, r.version, r.plural) for r in real.resources}
    shared = set(real.feature_gates) & set(emulating.feature_gates)
    assert len(shared) > 150
    assert {n: emulating.feature_gates[n] for n in shared} == {n: real.feature_gates[n] for n in shared}
    # Gates a 1.34 binary knows but that 1.33 did not have are PreAlpha: absent from the enabled set.
    assert "DRAConsumableCapacity" not in emulating.feature_gates
    assert emulating.gates["DRAConsumableCapacity"].stage == "PRE-ALPHA"
    assert emulating.version_info()["emulationMinor"] == "33"
    assert emulating.version_info()["minor"] == "34"


def test_served_apis_follow_the_emulated_version() -> None:
    newest = {(r.group, r.version) for r in load_profile("1.34").resources}
    old = {(r.group, r.version) for r in load_profile("1.34", "1.31").resources}
    assert ("flowcontrol.apiserver.k8s.io", "v1beta3") in old  # removed in 1.32, back when emulating 1.31
    assert ("flowcontrol.apiserver.k8s.io", "v1beta3") not in newest
    newest_kinds = {(r.group, r.version, r.kind) for r in load_profile("1.34").resources}
    old_kinds = {(r.group, r.version, r.kind) for r in load_profile("1.34", "1.31").resources}
    vac = ("storage.k8s.io", "v1", "VolumeAttributesClass")
    assert vac in newest_kinds and vac not in old_kinds  # GA in 1.34
    assert "flowcontrol.apiserver.k8s.io/v1beta3" in apis.served_group_versions(31)
    assert "resource.k8s.io/v1" in apis.served_group_versions(34)
    assert "resource.k8s.io/v1beta2" not in apis.served_group_versions(34)  # beta: off by default


def test_storage_versions_follow_min_compatibility() -> None:
    assert apis.storage_version("storage.k8s.io", "VolumeAttributesClass", 34, 33) == "v1beta1"
    assert apis.storage_version("storage.k8s.io", "VolumeAttributesClass", 34, 34) == "v1"
    assert apis.storage_version("resource.k8s.io", "ResourceClaim", 34, 33) == "v1beta2"
    assert apis.storage_version("resource.k8s.io", "ResourceClaim", 31, 31) == "v1alpha3"  # alpha-only pass 2
    assert apis.storage_version("flowcontrol.apiserver.k8s.io", "FlowSchema", 31, 31) == "v1"
    assert apis.storage_version("nope", "Nope", 36, 35) is None
    vac = load_profile("1.35", "1.34").resource("storage.k8s.io", "v1", "volumeattributesclasses")
    assert vac is not None and vac.storage_version == "v1beta1"
    assert load_profile("1.35", "1.35", "1.35").resource(
        "storage.k8s.io", "v1", "volumeattributesclasses").storage_version in ("", "v1")  # type: ignore[union-attr]


def test_version_info_carries_profile_levels() -> None:
    info = load_profile("1.36", "1.35", "1.34").version_info()
    assert (info["minor"], info["emulationMinor"], info["minCompatibilityMinor"]) == ("36", "35", "34")
