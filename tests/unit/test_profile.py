"""Version profile: served built-ins, feature-gate defaults by level, /version, and built-in schemas."""

from __future__ import annotations

import pytest

from kplane.api.resources import ALL_VERBS
from kplane.versions import builtin_schemas
from kplane.versions.builtin_resources import parse_minor
from kplane.versions.profile import FEATURE_GATE_HISTORY, GateSpec, gate_spec_at, load_profile

REQUIRED = {
    ("", "v1", "namespaces"): ("Namespace", False, {"status", "finalize"}),
    ("", "v1", "configmaps"): ("ConfigMap", True, set()),
    ("", "v1", "secrets"): ("Secret", True, set()),
    ("", "v1", "serviceaccounts"): ("ServiceAccount", True, {"token"}),
    ("", "v1", "events"): ("Event", True, set()),
    ("", "v1", "pods"): ("Pod", True, {"status", "binding"}),
    ("", "v1", "nodes"): ("Node", False, {"status"}),
    ("", "v1", "services"): ("Service", True, {"status"}),
    ("", "v1", "endpoints"): ("Endpoints", True, set()),
    ("apps", "v1", "deployments"): ("Deployment", True, {"status", "scale"}),
    ("apps", "v1", "replicasets"): ("ReplicaSet", True, {"status", "scale"}),
    ("apps", "v1", "statefulsets"): ("StatefulSet", True, {"status", "scale"}),
    ("apps", "v1", "daemonsets"): ("DaemonSet", True, {"status"}),
    ("batch", "v1", "jobs"): ("Job", True, {"status"}),
    ("coordination.k8s.io", "v1", "leases"): ("Lease", True, set()),
    ("events.k8s.io", "v1", "events"): ("Event", True, set()),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions"): (
        "CustomResourceDefinition",
        False,
        {"status"},
    ),
}


@pytest.mark.parametrize("key", sorted(REQUIRED))
def test_136_serves_each_required_resource(key: tuple[str, str, str]) -> None:
    kind, namespaced, subresources = REQUIRED[key]
    rt = load_profile("1.36").resource(*key)
    assert rt is not None
    assert (rt.kind, rt.namespaced, set(rt.subresources)) == (kind, namespaced, subresources)


def test_resource_facts_match_upstream() -> None:
    p = load_profile()
    pods = p.resource("", "v1", "pods")
    ns = p.resource("", "v1", "namespaces")
    crd = p.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    assert pods and ns and crd
    assert pods.short_names == ("po",) and pods.categories == ("all",) and pods.verbs == ALL_VERBS
    assert {"spec.nodeName", "status.phase", "status.podIP", "spec.serviceAccountName"} <= set(
        pods.selectable_fields
    )
    assert "deletecollection" not in ns.verbs
    assert ns.selectable_fields == ("status.phase",)
    assert crd.short_names == ("crd", "crds") and crd.categories == ("api-extensions",)
    events = p.resource("", "v1", "events")
    assert (
        events and "involvedObject.name" in events.selectable_fields and "reason" in events.selectable_fields
    )
    all_category = {rt.plural for rt in p.resources if "all" in rt.categories}
    assert {
        "pods",
        "services",
        "deployments",
        "replicasets",
        "statefulsets",
        "daemonsets",
        "jobs",
    } <= all_category
    assert "configmaps" not in all_category


def test_every_builtin_has_a_schema_at_each_level() -> None:
    for minor in range(31, 37):
        for rt in load_profile(f"1.{minor}").resources:
            assert builtin_schemas.definition_name(minor, rt.group, rt.version, rt.kind), (minor, rt.plural)


@pytest.mark.parametrize("bad", ["1.30", "1.37", "2.36", "1.36.1", "abc", "", "1.", "v1.x"])
def test_bad_kube_version_is_a_clear_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="kube version"):
        load_profile(bad)


def test_version_prefix_accepted_and_normalised() -> None:
    assert load_profile("v1.33").kube_version == "1.33"
    assert parse_minor("1.36") == 36


def test_version_info_136() -> None:
    info = load_profile("1.36").version_info()
    assert info["major"] == "1" and info["minor"] == "36" and info["gitVersion"] == "v1.36.0"
    assert info["gitTreeState"] == "clean" and info["compiler"] == "gc" and info["platform"] == "linux/amd64"
    assert (info["emulationMajor"], info["emulationMinor"]) == ("1", "36")
    assert (info["minCompatibilityMajor"], info["minCompatibilityMinor"]) == ("1", "35")
    emulating = load_profile("1.36").version_info(emulated_minor=34)
    assert emulating["minor"] == "36" and emulating["emulationMinor"] == "34"
    assert emulating["minCompatibilityMinor"] == "33"


def test_version_info_before_133_has_no_compatibility_fields() -> None:
    info = load_profile("1.32").version_info()
    assert info["minor"] == "32" and "emulationMinor" not in info and "minCompatibilityMinor" not in info


def test_min_compatibility_respects_floor() -> None:
    assert load_profile("1.33").default_min_compatibility_minor(31) == 31  # floor max(33-3, 31) = 31
    assert load_profile("1.36").default_min_compatibility_minor(33) == 33  # floor 33


def test_feature_gate_defaults_follow_history() -> None:
    g36 = load_profile("1.36").feature_gates
    g33 = load_profile("1.33").feature_gates
    g31 = load_profile("1.31").feature_gates
    assert g36["DynamicResourceAllocation"] is True and g33["DynamicResourceAllocation"] is False
    assert g36["WatchList"] is True and g33["WatchList"] is False and g31["WatchList"] is False
    assert load_profile("1.32").feature_gates["WatchList"] is True
    assert g36["MutatingAdmissionPolicy"] is True and "MutatingAdmissionPolicy" not in g31
    assert (
        g36["UnknownVersionInteroperabilityProxy"] is True
        and g33["UnknownVersionInteroperabilityProxy"] is False
    )


def test_feature_gates_are_read_only() -> None:
    gates = load_profile().feature_gates
    with pytest.raises(TypeError):
        gates["WatchList"] = False  # type: ignore[index]


def test_gate_history_is_well_formed() -> None:
    for name, history in FEATURE_GATE_HISTORY.items():
        versions = [spec.since for spec in history]
        assert versions == sorted(versions) and len(set(versions)) == len(versions), name
    assert gate_spec_at((GateSpec(33, False, "ALPHA"),), 32) is None


def test_builtin_schema_conversion() -> None:
    dep = builtin_schemas.schema_for_kind("1.36", "apps", "v1", "Deployment")
    assert dep.type == "object" and dep.raw["type"] == "object"
    containers = dep.field("spec").field("template").field("spec").field("containers")  # type: ignore[union-attr]
    assert containers is not None and containers.list_type == "map" and containers.list_map_keys == ("name",)
    max_surge = dep.field("spec").field("strategy").field("rollingUpdate").field("maxSurge")  # type: ignore[union-attr]
    assert max_surge is not None and max_surge.int_or_string
    meta_ref = dep.raw["properties"]["metadata"]["$ref"]
    assert meta_ref == "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    defs = builtin_schemas.definitions(36)
    # "$schema" is a real property name of JSONSchemaProps and must survive; the top-level keyword must not.
    props = defs["io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps"]["properties"]
    assert props["$schema"] == {"type": "string"}
    assert all("$schema" not in d and "$id" not in d for d in defs.values())
    assert "null" not in str(defs["io.k8s.api.core.v1.PodSpec"]["properties"]["nodeName"]["type"])


def test_builtin_schema_bad_input() -> None:
    with pytest.raises(LookupError, match="Kind=Nope"):
        builtin_schemas.schema_for_kind("1.36", "apps", "v1", "Nope")
    with pytest.raises(ValueError, match="no built-in schemas"):
        builtin_schemas.definitions("1.24")
    with pytest.raises(ValueError, match="invalid kube minor"):
        builtin_schemas.definitions("one.two")
    assert builtin_schemas.definitions("36") is builtin_schemas.definitions("1.36")
