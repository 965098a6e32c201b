"""kplane.api.strategic (via kplane.api.patch): strategic merge patch against the real built-in schemas."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import orjson
import pytest

from kplane.api.patch import apply_strategic_merge_patch
from kplane.api.schema import Schema
from kplane.api.status import StatusError


@functools.cache
def _definitions() -> dict[str, Any]:
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / "v1.36.0-local"
    defs: dict[str, Any] = json.loads((root / "_definitions.json").read_text())["$defs"]
    return defs


def schema_of(name: str) -> Schema:
    """The built-in kind's schema, e.g. ``schema_of("io.k8s.api.apps.v1.Deployment")``."""
    defs = _definitions()
    return Schema(defs[name], defs)


DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}, "finalizers": ["a", "b"]},
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1",
                            "args": ["-a", "-b"],
                            "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        },
                        {"name": "sidecar", "image": "envoy"},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "tolerations": [{"key": "k", "operator": "Exists"}],
                },
            },
        },
    }


def smp(obj: dict[str, Any], patch: Any, kind: str = DEPLOYMENT) -> dict[str, Any]:
    return apply_strategic_merge_patch(obj, orjson.dumps(patch), schema_of(kind))


def pod_spec_patch(spec: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": spec}}}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def names(items: list[dict[str, Any]], key: str = "name") -> list[Any]:
    return [i[key] for i in items]


def error(obj: dict[str, Any], patch: Any) -> StatusError:
    with pytest.raises(StatusError) as info:
        smp(obj, patch)
    return info.value


# ---- merging by key ----


def test_new_container_goes_first_as_upstream_orders_it() -> None:
    out = smp(deployment(), pod_spec_patch({"containers": [{"name": "redis", "image": "redis"}]}))
    assert names(pod_spec(out)["containers"]) == ["redis", "nginx", "sidecar"]


def test_existing_container_merges_fields_and_nested_keyed_lists() -> None:
    patch = pod_spec_patch(
        {
            "containers": [
                {
                    "name": "nginx",
                    "image": "nginx:2",
                    "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
                    "ports": [{"containerPort": 80, "name": "web"}],
                }
            ]
        }
    )
    nginx = pod_spec(smp(deployment(), patch))["containers"][0]
    assert nginx["image"] == "nginx:2"
    assert nginx["args"] == ["-a", "-b"]
    assert nginx["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "two"},
        {"name": "C", "value": "3"},
    ]
    assert nginx["ports"] == [{"containerPort": 80, "name": "web"}, {"containerPort": 443}]


@pytest.mark.parametrize(
    ("patch_order", "expected"),
    [
        (["sidecar", "new"], ["nginx", "sidecar", "new"]),
        (["new", "nginx"], ["new", "nginx", "sidecar"]),
        (["sidecar", "nginx"], ["sidecar", "nginx"]),
    ],
)
def test_merged_list_order(patch_order: list[str], expected: list[str]) -> None:
    patch = pod_spec_patch({"containers": [{"name": n, "image": "i"} for n in patch_order]})
    assert names(pod_spec(smp(deployment(), patch))["containers"]) == expected


def test_atomic_and_unannotated_lists_are_replaced() -> None:
    patch = pod_spec_patch(
        {
            "containers": [{"name": "nginx", "args": ["-c"]}],
            "tolerations": [{"key": "other", "operator": "Exists"}],
        }
    )
    spec = pod_spec(smp(deployment(), patch))
    assert spec["containers"][0]["args"] == ["-c"]
    assert spec["tolerations"] == [{"key": "other", "operator": "Exists"}]


def test_primitive_merge_list_is_a_set_union() -> None:
    out = smp(deployment(), {"metadata": {"finalizers": ["b", "c", "c"]}})
    assert out["metadata"]["finalizers"] == ["a", "b", "c"]
    out = smp(deployment(), {"metadata": {"finalizers": ["z"]}})
    assert out["metadata"]["finalizers"] == ["z", "a", "b"]


def test_maps_merge_and_null_deletes() -> None:
    out = smp(
        deployment(),
        {
            "metadata": {"labels": {"tier": None, "new": "x"}, "annotations": {"n": None}},
            "spec": {"replicas": None},
        },
    )
    assert out["metadata"]["labels"] == {"app": "web", "new": "x"}
    assert "replicas" not in out["spec"]
    assert out["metadata"]["annotations"] == {}


def test_fields_unknown_to_the_schema_merge_maps_and_replace_lists() -> None:
    obj = deployment()
    obj["extra"] = {"m": {"a": 1, "b": 2}, "l": [{"name": "x"}]}
    out = smp(obj, {"extra": {"m": {"b": None, "c": 3}, "l": [{"name": "y"}]}})
    assert out["extra"] == {"m": {"a": 1, "c": 3}, "l": [{"name": "y"}]}


def test_service_ports_merge_by_port() -> None:
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    out = smp(svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, "io.k8s.api.core.v1.Service")
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]


def test_merge_key_values_of_different_json_kinds_do_not_match() -> None:
    svc = {"spec": {"ports": [{"port": 80}]}}
    out = smp(svc, {"spec": {"ports": [{"port": "80", "name": "s"}]}}, "io.k8s.api.core.v1.Service")
    assert out["spec"]["ports"] == [{"port": "80", "name": "s"}, {"port": 80}]


# ---- directives ----


def test_delete_directive_on_list_item() -> None:
    out = smp(deployment(), pod_spec_patch({"containers": [{"name": "sidecar", "$patch": "delete"}]}))
    assert names(pod_spec(out)["containers"]) == ["nginx"]


def test_replace_directive_on_list() -> None:
    patch = pod_spec_patch(
        {
            "containers": [
                {"name": "only", "image": "x", "env": [{"name": "E", "value": None}]},
                {"$patch": "replace"},
            ]
        }
    )
    assert pod_spec(smp(deployment(), patch))["containers"] == [
        {"name": "only", "image": "x", "env": [{"name": "E"}]}
    ]


def test_replace_directive_on_map() -> None:
    out = smp(deployment(), {"metadata": {"labels": {"$patch": "replace", "only": "this"}}})
    assert out["metadata"]["labels"] == {"only": "this"}


def test_delete_directive_on_map() -> None:
    out = smp(deployment(), {"spec": {"strategy": {"$patch": "delete"}}})
    assert out["spec"]["strategy"] == {}


def test_retain_keys_clears_unlisted_server_fields() -> None:
    out = smp(deployment(), {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_inside_a_volume_switches_its_source() -> None:
    patch = pod_spec_patch(
        {"volumes": [{"name": "data", "$retainKeys": ["hostPath", "name"], "hostPath": {"path": "/srv"}}]}
    )
    assert pod_spec(smp(deployment(), patch))["volumes"] == [{"name": "data", "hostPath": {"path": "/srv"}}]


def test_set_element_order_reorders_and_merges() -> None:
    patch = pod_spec_patch(
        {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "new"}, {"name": "nginx"}],
            "containers": [{"name": "new", "image": "n"}, {"name": "nginx", "image": "nginx:3"}],
        }
    )
    containers = pod_spec(smp(deployment(), patch))["containers"]
    assert names(containers) == ["sidecar", "new", "nginx"]
    assert containers[2]["image"] == "nginx:3"
    assert containers[2]["env"][0] == {"name": "A", "value": "1"}


def test_set_element_order_alone_reorders_primitives() -> None:
    out = smp(deployment(), {"metadata": {"$setElementOrder/finalizers": ["b", "a"]}})
    assert out["metadata"]["finalizers"] == ["b", "a"]


def test_delete_from_primitive_list() -> None:
    out = smp(
        deployment(),
        {
            "metadata": {
                "$deleteFromPrimitiveList/finalizers": ["a", "zz"],
                "$setElementOrder/finalizers": ["b", "c"],
                "finalizers": ["c"],
            }
        },
    )
    assert out["metadata"]["finalizers"] == ["b", "c"]
    out = smp(deployment(), {"metadata": {"$deleteFromPrimitiveList/absent": ["a"]}})
    assert "absent" not in out["metadata"]


def test_kubectl_apply_style_patch() -> None:
    """The shape kubectl's three-way merge sends on ``apply`` after editing one container's image."""
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
                    "containers": [{"image": "nginx:1.27", "name": "nginx"}],
                }
            }
        },
    }
    out = smp(deployment(), patch)
    assert names(pod_spec(out)["containers"]) == ["nginx", "sidecar"]
    assert pod_spec(out)["containers"][0]["image"] == "nginx:1.27"
    assert out["metadata"]["annotations"] == {"kubectl.kubernetes.io/last-applied-configuration": "{}"}


def test_directives_never_leak_into_the_result() -> None:
    patch = pod_spec_patch(
        {
            "containers": [
                {
                    "name": "fresh",
                    "image": "f",
                    "env": [{"name": "X", "value": "1"}, {"name": "Y", "$patch": "delete"}],
                    "$setElementOrder/env": [{"name": "X"}],
                }
            ],
            "newmap": {"$retainKeys": ["a"], "a": {"b": None}},
        }
    )
    out = smp(deployment(), patch)
    assert "$" not in orjson.dumps(out).decode()
    assert pod_spec(out)["containers"][0] == {
        "name": "fresh",
        "image": "f",
        "env": [{"name": "X", "value": "1"}],
    }
    assert pod_spec(out)["newmap"] == {"a": {}}


def test_inputs_are_not_mutated_and_result_is_independent() -> None:
    obj = deployment()
    before = copy.deepcopy(obj)
    out = smp(obj, {"spec": {"replicas": 3}})
    assert obj == before
    out["metadata"]["labels"]["app"] = "changed"
    assert obj["metadata"]["labels"]["app"] == "web"


def test_null_body_changes_nothing() -> None:
    obj = deployment()
    assert apply_strategic_merge_patch(obj, b"null", schema_of(DEPLOYMENT)) == obj


# ---- errors ----


@pytest.mark.parametrize(
    ("patch", "code", "message"),
    [
        (
            {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}},
            400,
            "invalid patch format of retainKeys",
        ),
        ({"spec": {"strategy": {"$retainKeys": "type"}}}, 400, "invalid patch format of retainKeys"),
        (
            {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}},
            400,
            "invalid patch format of primitive list",
        ),
        (
            {"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}},
            400,
            "invalid patch format of primitive list",
        ),
        ({"metadata": {"$setElementOrder": ["a"]}}, 400, "invalid patch format of setElementOrder list"),
        (
            {"metadata": {"$setElementOrder/finalizers": "a"}},
            400,
            "invalid patch format of setElementOrder list",
        ),
        (
            pod_spec_patch({"containers": [{"image": "nameless"}]}),
            500,
            "map: map[image:nameless] does not contain declared merge key: name",
        ),
        (
            pod_spec_patch({"containers": [{"$patch": "delete"}]}),
            500,
            "map: map[$patch:delete] does not contain declared merge key: name",
        ),
        (
            pod_spec_patch({"containers": [{"name": "x", "$patch": "merge"}]}),
            500,
            "merging lists cannot yet be specified in the patch",
        ),
        (
            pod_spec_patch({"containers": [{"name": "x", "$patch": "bogus"}]}),
            500,
            "unknown patch type: bogus in map: map[$patch:bogus name:x]",
        ),
        (
            {"metadata": {"labels": {"$patch": "merge"}}},
            500,
            "unknown patch type: merge in map: map[$patch:merge]",
        ),
        (
            {"metadata": {"finalizers": [["nested"]]}},
            422,
            "the server rejected our request due to an error in our request",
        ),
        ({"metadata": {"finalizers": [1]}}, 500, "list element types are not identical: [[a b] [1]]"),
        (
            pod_spec_patch(
                {
                    "$setElementOrder/containers": [{"name": "nginx"}],
                    "containers": [{"name": "sidecar", "image": "s"}],
                }
            ),
            500,
            "The order in patch list:\n[map[image:s name:sidecar]]\n doesn't match $setElementOrder list:\n"
            "[map[name:nginx]]\n",
        ),
    ],
)
def test_errors_carry_upstream_codes_and_texts(patch: Any, code: int, message: str) -> None:
    err = error(deployment(), patch)
    assert (err.code, err.message) == (code, message)
    assert err.reason == {400: "BadRequest", 422: "Invalid", 500: ""}[code]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[]", "json: cannot unmarshal array into Go value of type map[string]interface {}"),
        (b'"s"', "json: cannot unmarshal string into Go value of type map[string]interface {}"),
        (b"{", "unexpected end of JSON input"),
        (b"{x}", "invalid character 'x'"),
    ],
)
def test_body_that_is_not_an_object_is_400(raw: bytes, message: str) -> None:
    with pytest.raises(StatusError) as info:
        apply_strategic_merge_patch(deployment(), raw, schema_of(DEPLOYMENT))
    assert info.value.code == 400
    assert info.value.message.startswith(message)
