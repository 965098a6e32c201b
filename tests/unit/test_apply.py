"""Server-side apply and managedFields bookkeeping on a real Deployment schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path as FsPath
from typing import Any

import kubernetes_validate
import pytest

from kplane.api.apply import LAST_APPLIED, server_side_apply
from kplane.api.fieldset import FieldSet, make_path
from kplane.api.fieldsv1 import from_fields_v1
from kplane.api.managedfields import decode_managed_fields, manager_from_user_agent, record_update
from kplane.api.schema import Schema
from kplane.api.status import StatusError
from kplane.apiserver.verbrules import unchanged

DEFS_FILE = (
    FsPath(kubernetes_validate.__file__).parent
    / "kubernetes-json-schema"
    / "v1.36.0-local"
    / "_definitions.json"
)
T0, T1, T2 = "2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z", "2024-01-01T00:02:00Z"


@pytest.fixture(scope="module")
def defs() -> dict[str, Any]:
    table: dict[str, Any] = json.loads(DEFS_FILE.read_text())["$defs"]
    table["io.k8s.api.core.v1.ContainerPort"]["properties"]["protocol"]["default"] = "TCP"
    return table


@pytest.fixture(scope="module")
def schema(defs: dict[str, Any]) -> Schema:
    return Schema(defs["io.k8s.api.apps.v1.Deployment"], defs)


@pytest.fixture(scope="module")
def cm_schema(defs: dict[str, Any]) -> Schema:
    return Schema(defs["io.k8s.api.core.v1.ConfigMap"], defs)


def deployment(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1"}]},
        },
    }
    base.update(spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": base,
    }


def apply(
    live: dict[str, Any] | None,
    cfg: dict[str, Any],
    schema: Schema,
    manager: str = "kubectl",
    force: bool = False,
    now: str = T0,
) -> dict[str, Any]:
    return server_side_apply(
        live, cfg, manager=manager, schema=schema, force=force, api_version="apps/v1", now=now
    )


def entries(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def owned(obj: dict[str, Any], manager: str, operation: str = "Apply") -> FieldSet:
    return from_fields_v1(entries(obj)[(manager, operation)]["fieldsV1"])


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return result


# --- apply -----------------------------------------------------------------------------------------


def test_configmap_apply_matches_upstream_docs_sample(cm_schema: Schema) -> None:
    cfg = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "test-cm", "namespace": "default", "labels": {"test-label": "test"}},
        "data": {"key": "some value"},
    }
    out = server_side_apply(
        None, cfg, manager="kubectl", schema=cm_schema, force=False, api_version="v1", now=T0
    )
    assert out["metadata"]["managedFields"] == [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:key": {}}, "f:metadata": {"f:labels": {"f:test-label": {}}}},
        }
    ]
    assert out["data"] == {"key": "some value"}
    assert list(out["metadata"]["managedFields"][0]) == [
        "manager",
        "operation",
        "apiVersion",
        "time",
        "fieldsType",
        "fieldsV1",
    ]


def test_apply_create_returns_config_and_keeps_it_unmodified(schema: Schema) -> None:
    cfg = deployment(replicas=2)
    before = copy.deepcopy(cfg)
    out = apply(None, cfg, schema)
    assert cfg == before
    assert out["spec"] == cfg["spec"]
    assert make_path("spec", "replicas") in owned(out, "kubectl")


def test_reapply_without_a_field_removes_it(schema: Schema) -> None:
    live = apply(None, deployment(replicas=2, minReadySeconds=5), schema)
    out = apply(live, deployment(replicas=2), schema, now=T1)
    assert "minReadySeconds" not in out["spec"]
    assert make_path("spec", "minReadySeconds") not in owned(out, "kubectl")
    assert entries(out)[("kubectl", "Apply")]["time"] == T1


def test_reapply_keeps_fields_nobody_owns(schema: Schema) -> None:
    live = apply(None, deployment(replicas=2), schema)
    live["spec"]["progressDeadlineSeconds"] = 600  # e.g. a default, owned by nobody
    out = apply(live, deployment(), schema)
    assert out["spec"]["progressDeadlineSeconds"] == 600
    assert "replicas" not in out["spec"]


def test_removing_the_last_label_removes_the_map(schema: Schema) -> None:
    cfg = deployment()
    cfg["metadata"]["labels"] = {"tier": "web"}
    live = apply(None, cfg, schema)
    out = apply(live, deployment(), schema)
    assert "labels" not in out["metadata"]
    assert out["metadata"]["name"] == "web"


def test_noop_apply_keeps_time(schema: Schema) -> None:
    live = apply(None, deployment(replicas=2), schema)
    out = apply(live, deployment(replicas=2), schema, now=T2)
    assert entries(out)[("kubectl", "Apply")]["time"] == T0
    assert out == live


def test_two_managers_share_a_field_with_the_same_value(schema: Schema) -> None:
    live = apply(None, deployment(replicas=3), schema, manager="a")
    shared = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 3},
    }
    live = apply(live, shared, schema, manager="b")
    assert make_path("spec", "replicas") in owned(live, "a")
    assert make_path("spec", "replicas") in owned(live, "b")
    out = apply(live, deployment(), schema, manager="a")  # a lets go; b still holds it
    assert out["spec"]["replicas"] == 3
    assert make_path("spec", "replicas") not in owned(out, "a")


def test_conflict_without_force(schema: Schema) -> None:
    live = apply(None, deployment(replicas=3), schema, manager="a")
    with pytest.raises(StatusError) as info:
        apply(live, deployment(replicas=5), schema, manager="b")
    err = info.value
    assert (err.code, err.reason) == (409, "Conflict")
    assert err.message == 'Apply failed with 1 conflict: conflict with "a": .spec.replicas'
    assert err.to_status()["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "a"', "field": ".spec.replicas"}
    ]


def test_conflicts_with_several_fields_and_managers(schema: Schema) -> None:
    live = apply(None, deployment(replicas=3, minReadySeconds=1), schema, manager="a")
    live = record_update(
        live,
        {**live, "spec": {**live["spec"], "paused": True}},
        manager="ctl",
        schema=schema,
        api_version="apps/v1",
        now=T1,
    )
    with pytest.raises(StatusError) as info:
        apply(live, deployment(replicas=5, minReadySeconds=2, paused=False), schema, manager="b")
    assert info.value.message == (
        'Apply failed with 3 conflicts: conflicts with "a":\n- .spec.minReadySeconds\n- .spec.replicas\n'
        'conflicts with "ctl" using apps/v1:\n- .spec.paused'
    )


def test_force_transfers_ownership(schema: Schema) -> None:
    live = apply(None, deployment(replicas=3), schema, manager="a")
    out = apply(live, {**deployment(), "spec": {"replicas": 5}}, schema, manager="b", force=True)
    assert out["spec"]["replicas"] == 5
    assert make_path("spec", "replicas") in owned(out, "b")
    assert make_path("spec", "replicas") not in owned(out, "a")
    assert out["spec"]["template"] == live["spec"]["template"]


def test_list_map_items_merge_by_key(schema: Schema) -> None:
    live = apply(None, deployment(), schema, manager="a")
    sidecar = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "log", "image": "busybox"}]}}},
    }
    live = apply(live, sidecar, schema, manager="b")
    assert [c["name"] for c in containers(live)] == ["app", "log"]
    cfg = deployment()
    containers(cfg)[0]["image"] = "nginx:2"
    out = apply(live, cfg, schema, manager="a")
    assert containers(out) == [{"name": "app", "image": "nginx:2"}, {"name": "log", "image": "busybox"}]
    cfg = deployment()
    containers(cfg)[:] = [{"name": "other", "image": "x"}]
    out = apply(out, cfg, schema, manager="a")
    assert [c["name"] for c in containers(out)] == ["log", "other"]


def test_duplicate_keys_in_config_are_rejected(schema: Schema) -> None:
    cfg = deployment()
    containers(cfg).append({"name": "app", "image": "other"})
    with pytest.raises(StatusError) as info:
        apply(None, cfg, schema)
    assert info.value.code == 500
    assert "failed to create typed patch object (default/web; apps/v1, Kind=Deployment)" in info.value.message


def test_set_lists_merge_and_prune_per_value(schema: Schema) -> None:
    def with_finalizers(*names: str) -> dict[str, Any]:
        cfg = deployment()
        cfg["metadata"]["finalizers"] = list(names)
        return cfg

    live = apply(None, with_finalizers("a.io/x"), schema, manager="a")
    live = apply(live, {**with_finalizers("b.io/y"), "spec": {}}, schema, manager="b")
    assert live["metadata"]["finalizers"] == ["a.io/x", "b.io/y"]
    out = apply(live, with_finalizers(), schema, manager="a")
    assert out["metadata"]["finalizers"] == ["b.io/y"]


def test_atomic_lists_are_replaced_whole(schema: Schema) -> None:
    cfg = deployment()
    containers(cfg)[0]["args"] = ["a", "b"]
    live = apply(None, cfg, schema, manager="a")
    other = deployment()
    containers(other)[0]["args"] = ["c"]
    with pytest.raises(StatusError) as info:
        apply(live, {**other, "spec": {"template": other["spec"]["template"]}}, schema, manager="b")
    assert info.value.to_status()["details"]["causes"][0]["field"] == (
        '.spec.template.spec.containers[name="app"].args'
    )
    out = apply(live, other, schema, manager="a")
    assert containers(out)[0]["args"] == ["c"]


def test_bad_requests(schema: Schema) -> None:
    with pytest.raises(StatusError) as info:
        apply(None, deployment(), schema, manager="")
    assert (info.value.code, info.value.message) == (
        422,
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
    )
    cfg = deployment()
    cfg["metadata"]["managedFields"] = []
    with pytest.raises(StatusError) as info:
        apply(None, cfg, schema)
    assert (info.value.code, info.value.message) == (400, "metadata.managedFields must be nil")
    with pytest.raises(StatusError) as info:
        apply(None, {**deployment(), "apiVersion": "apps/v1beta1"}, schema)
    assert (info.value.code, info.value.message) == (
        400,
        "invalid object type: apps/v1beta1, Kind=Deployment",
    )
    with pytest.raises(StatusError) as info:
        apply(None, deployment(), schema, manager="bad\x00name")
    assert info.value.code == 422


def test_apply_rejects_undecodable_live_managed_fields(schema: Schema) -> None:
    live = apply(None, deployment(), schema)
    live["metadata"]["managedFields"][0]["fieldsV1"] = {"k:{": {}}
    with pytest.raises(StatusError) as info:
        apply(live, deployment(), schema)
    assert info.value.code == 500


# --- update, and update followed by apply ----------------------------------------------------------


def csa_create(schema: Schema, obj: dict[str, Any]) -> dict[str, Any]:
    return record_update(
        None, obj, manager="kubectl-client-side-apply", schema=schema, api_version="apps/v1", now=T0
    )


def test_update_records_changed_fields_and_takes_them_from_others(schema: Schema) -> None:
    live = apply(None, deployment(replicas=3), schema, manager="a")
    new = copy.deepcopy(live)
    new["spec"]["replicas"] = 4
    out = record_update(live, new, manager="hpa", schema=schema, api_version="apps/v1", now=T1)
    assert owned(out, "hpa", "Update") == FieldSet.from_paths([make_path("spec", "replicas")])
    assert make_path("spec", "replicas") not in owned(out, "a")
    assert [e["operation"] for e in out["metadata"]["managedFields"]] == ["Apply", "Update"]
    assert entries(out)[("hpa", "Update")]["time"] == T1
    again = record_update(
        out, copy.deepcopy(out), manager="hpa", schema=schema, api_version="apps/v1", now=T2
    )
    assert entries(again)[("hpa", "Update")]["time"] == T1  # nothing changed: time stays


def test_update_drops_entries_left_empty(schema: Schema) -> None:
    live = apply(None, {**deployment(), "spec": {"replicas": 3}}, schema, manager="a")
    new = copy.deepcopy(live)
    new["spec"]["replicas"] = 4
    out = record_update(live, new, manager="b", schema=schema, api_version="apps/v1", now=T1)
    assert set(entries(out)) == {("b", "Update")}


def test_update_then_apply_conflicts_with_client_side_apply(schema: Schema) -> None:
    live = csa_create(schema, deployment(replicas=1))
    assert make_path("spec", "replicas") in owned(live, "kubectl-client-side-apply", "Update")
    with pytest.raises(StatusError) as info:
        apply(live, deployment(replicas=2), schema)
    assert info.value.to_status()["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "field": ".spec.replicas",
            "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
        }
    ]
    assert info.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: '
        ".spec.replicas"
    )
    out = apply(live, deployment(replicas=2), schema, force=True)
    assert out["spec"]["replicas"] == 2
    assert make_path("spec", "replicas") not in owned(out, "kubectl-client-side-apply", "Update")
    assert make_path("spec", "selector") in owned(out, "kubectl-client-side-apply", "Update")
    assert make_path("spec", "replicas") in owned(out, "kubectl")


def test_kubectl_takes_over_fields_matching_last_applied(schema: Schema) -> None:
    obj = deployment(replicas=1)
    obj["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(deployment(replicas=1))}
    live = csa_create(schema, obj)
    out = apply(live, deployment(replicas=2), schema)  # no conflict: replicas still as last applied
    assert out["spec"]["replicas"] == 2
    assert json.loads(out["metadata"]["annotations"][LAST_APPLIED]) == deployment(replicas=2)
    drifted = copy.deepcopy(live)
    drifted["spec"]["replicas"] = 7  # changed outside client-side apply: a real conflict again
    drifted = record_update(
        live, drifted, manager="kubectl-client-side-apply", schema=schema, api_version="apps/v1", now=T1
    )
    with pytest.raises(StatusError):
        apply(drifted, deployment(replicas=2), schema)
    with pytest.raises(StatusError):
        apply(live, deployment(replicas=2), schema, manager="someone-else")


def test_reset_with_single_empty_entry(schema: Schema) -> None:
    live = csa_create(schema, deployment(replicas=1))
    new = copy.deepcopy(live)
    new["metadata"]["managedFields"] = [{}]
    out = record_update(live, new, manager="m", schema=schema, api_version="apps/v1", now=T1)
    assert "managedFields" not in out["metadata"]
    new["spec"]["replicas"] = 2
    out = record_update(live, new, manager="m", schema=schema, api_version="apps/v1", now=T1)
    assert set(entries(out)) == {("m", "Update")}


def test_client_sent_managed_fields_are_kept_or_ignored(schema: Schema) -> None:
    live = csa_create(schema, deployment(replicas=1))
    sent = copy.deepcopy(live)
    sent["metadata"]["managedFields"][0]["manager"] = "renamed"
    out = record_update(live, sent, manager="m", schema=schema, api_version="apps/v1", now=T1)
    assert set(entries(out)) == {("renamed", "Update")}
    sent["metadata"]["managedFields"][0]["operation"] = "Bogus"  # undecodable: the live ones win
    out = record_update(live, sent, manager="m", schema=schema, api_version="apps/v1", now=T1)
    assert set(entries(out)) == {("kubectl-client-side-apply", "Update")}
    del sent["metadata"]["managedFields"]  # omitted: the live ones are kept
    out = record_update(live, sent, manager="m", schema=schema, api_version="apps/v1", now=T1)
    assert out["metadata"]["managedFields"] == live["metadata"]["managedFields"]


@pytest.mark.parametrize(
    ("managed_fields", "fragment"),
    [
        ("nope", "cannot unmarshal string into Go struct field ObjectMeta.metadata.managedFields"),
        ([1], "cannot unmarshal number"),
        ([{"manager": 5}], "managedFields.manager of type string"),
        ([{"time": "yesterday"}], 'parsing time "yesterday"'),
    ],
)
def test_malformed_managed_fields_are_bad_requests(
    schema: Schema, managed_fields: Any, fragment: str
) -> None:
    new = deployment()
    new["metadata"]["managedFields"] = managed_fields
    with pytest.raises(StatusError) as info:
        record_update(None, new, manager="m", schema=schema, api_version="apps/v1", now=T0)
    assert info.value.code == 400
    assert info.value.message.startswith('Deployment in version "v1" cannot be handled as a Deployment: ')
    assert fragment in info.value.message


def test_invalid_manager_in_sent_entries_is_invalid(schema: Schema) -> None:
    live = csa_create(schema, deployment(replicas=1))
    sent = copy.deepcopy(live)
    sent["metadata"]["managedFields"][0]["manager"] = "x" * 129
    with pytest.raises(StatusError) as info:
        record_update(live, sent, manager="m", schema=schema, api_version="apps/v1", now=T1)
    assert info.value.code == 422
    assert info.value.causes[0].field == "metadata.managedFields[0].manager"


def test_subresource_entries_are_separate(schema: Schema) -> None:
    live = csa_create(schema, deployment(replicas=1))
    new = copy.deepcopy(live)
    new["status"] = {"replicas": 1}
    new["metadata"]["managedFields"] = [{}]  # ignored on a subresource: the live entries are used
    out = record_update(
        live, new, manager="ctrl", schema=schema, api_version="apps/v1", now=T1, subresource="status"
    )
    status_entry = next(e for e in out["metadata"]["managedFields"] if e["manager"] == "ctrl")
    assert status_entry["subresource"] == "status"
    assert make_path("status", "replicas") in from_fields_v1(status_entry["fieldsV1"])
    assert ("kubectl-client-side-apply", "Update") in entries(out)


def test_reset_fields_are_neither_owned_nor_conflicting(schema: Schema) -> None:
    status = FieldSet.from_paths([make_path("status")])
    live = csa_create(schema, deployment(replicas=1))
    new = copy.deepcopy(live)
    new["status"] = {"replicas": 1}
    new["spec"]["paused"] = True
    out = record_update(
        live, new, manager="m", schema=schema, api_version="apps/v1", now=T1, reset_fields=status
    )
    assert owned(out, "m", "Update") == FieldSet.from_paths([make_path("spec", "paused")])
    cfg = {**deployment(), "status": {"replicas": 9}}
    applied = server_side_apply(
        out, cfg, manager="a", schema=schema, force=False, api_version="apps/v1", now=T2, reset_fields=status
    )
    assert not any(p[0] == ("f", "status") for p in owned(applied, "a").paths())


def test_update_managers_are_capped(schema: Schema) -> None:
    obj = csa_create(schema, deployment(replicas=0))
    for i in range(12):
        new = copy.deepcopy(obj)
        new["spec"]["replicas"] = i + 1
        new["metadata"].setdefault("labels", {})[f"l{i}"] = "x"
        obj = record_update(
            obj,
            new,
            manager=f"m{i}",
            schema=schema,
            api_version="apps/v1",
            now=f"2024-01-01T00:{i + 1:02d}:00Z",
        )
    managers = [e["manager"] for e in obj["metadata"]["managedFields"]]
    assert len(managers) == 10
    assert "ancient-changes" in managers


def test_unknown_manager_name_for_updates(schema: Schema) -> None:
    out = record_update(None, deployment(), manager="", schema=schema, api_version="apps/v1", now=T0)
    assert [e["manager"] for e in out["metadata"]["managedFields"]] == ["unknown"]


@pytest.mark.parametrize(
    ("ua", "manager"),
    [
        ("kubectl/v1.32.5 (linux/amd64) kubernetes/abc", "kubectl"),
        ("OpenAPI-Generator/31.0.0/python", "OpenAPI-Generator"),
        ("plain", "plain"),
        ("", ""),
        ("tab\there/1", "tabhere"),
        ("x" * 200, "x" * 128),
    ],
)
def test_manager_from_user_agent(ua: str, manager: str) -> None:
    assert manager_from_user_agent(ua) == manager


# --- decoding ownership and spotting no-op writes, as every write does ---------------------------------------

def _entry(manager: Any = "kubectl", **extra: Any) -> dict[str, Any]:
    return {"manager": manager, "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:00Z",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}, **extra}


def test_decoded_ownership_is_fresh_each_time_and_follows_the_entries() -> None:
    entries = [_entry(), _entry("other", subresource="status")]
    first = decode_managed_fields(entries)
    first.clear()
    again = decode_managed_fields(copy.deepcopy(entries))
    assert again == decode_managed_fields(entries) and len(again) == 2
    assert [k.manager for k in decode_managed_fields([_entry(None)])] == [""]
    assert [k.manager for k in decode_managed_fields([_entry(float("nan"))])] == ["nan"]  # not null's ""
    for _ in range(2):
        with pytest.raises(ValueError, match="operation must be"):
            decode_managed_fields([_entry(operation="Patch")])


def _unchanged_reference(old: dict[str, Any], new: dict[str, Any]) -> bool:
    def strip(o: dict[str, Any]) -> dict[str, Any]:
        m = dict(o.get("metadata", {}))
        m["managedFields"] = [dict(e, time="") for e in m.get("managedFields") or []]
        return {**o, "metadata": m}

    return strip(old) == strip(new)


_BASE = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "managedFields": [_entry()]},
         "spec": {"a": 1}}


@pytest.mark.parametrize(
    "new",
    [
        _BASE,
        {**_BASE, "metadata": {"name": "p", "managedFields": [_entry(time="2030-01-01T00:00:00Z")]}},
        {**_BASE, "metadata": {"name": "p", "managedFields": [_entry(), _entry("b")]}},
        {**_BASE, "metadata": {"name": "p", "managedFields": [_entry("b")]}},
        {**_BASE, "metadata": {"name": "p"}},
        {**_BASE, "metadata": {"name": "p", "managedFields": []}},
        {**_BASE, "metadata": {"name": "q", "managedFields": [_entry()]}},
        {**_BASE, "metadata": {"managedFields": [_entry()], "uid": "u"}},
        {**_BASE, "spec": {"a": 2}},
        {**_BASE, "status": {}},
        {k: v for k, v in _BASE.items() if k != "spec"},
        {k: v for k, v in _BASE.items() if k != "metadata"},
        {**{k: v for k, v in _BASE.items() if k != "spec"}, "status": {"a": 1}},
    ],
)
def test_unchanged_writes_are_those_equal_but_for_managed_fields_times(new: dict[str, Any]) -> None:
    for old, other in ((_BASE, new), (new, _BASE), ({"metadata": {}}, new), (new, {"spec": {"a": 1}})):
        assert unchanged(old, other) is _unchanged_reference(old, other)
