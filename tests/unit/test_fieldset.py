"""Field paths, field sets and their FieldsV1 wire form, checked against upstream's encoding."""

from __future__ import annotations

import json
from pathlib import Path as FsPath
from typing import Any

import kubernetes_validate
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kplane.api.fieldcompare import compare
from kplane.api.fieldset import (
    FieldSet,
    TypedError,
    element_from_string,
    element_to_string,
    field,
    fieldset_of,
    index,
    key,
    make_path,
    path_string,
    typed_fieldset,
    value,
)
from kplane.api.fieldsv1 import decode_cached, encode_cached, from_fields_v1, to_fields_v1
from kplane.api.schema import Schema

DEFS_FILE = (
    FsPath(kubernetes_validate.__file__).parent
    / "kubernetes-json-schema"
    / "v1.36.0-local"
    / "_definitions.json"
)


@pytest.fixture(scope="module")
def defs() -> dict[str, Any]:
    table: dict[str, Any] = json.loads(DEFS_FILE.read_text())["$defs"]
    # upstream's OpenAPI carries this default; the JSON-schema export drops it, and list-map keys need it
    table["io.k8s.api.core.v1.ContainerPort"]["properties"]["protocol"]["default"] = "TCP"
    return table


@pytest.fixture(scope="module")
def deployment(defs: dict[str, Any]) -> Schema:
    return Schema(defs["io.k8s.api.apps.v1.Deployment"], defs)


NGINX = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "nginx"}},
        "template": {
            "metadata": {"labels": {"app": "nginx"}},
            "spec": {
                "containers": [{"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}]}]
            },
        },
    },
}

# What kube-apiserver records for `kubectl apply --server-side` of NGINX (fieldsV1 as served, JSON).
NGINX_FIELDS_V1 = (
    '{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":'
    '{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\\"name\\":\\"nginx\\"}":'
    '{".":{},"f:image":{},"f:name":{},"f:ports":{"k:{\\"containerPort\\":80,\\"protocol\\":\\"TCP\\"}":'
    '{".":{},"f:containerPort":{}}}}}}}}}'
)


def test_fieldset_of_matches_upstream_fields_v1_exactly(deployment: Schema) -> None:
    encoded = to_fields_v1(fieldset_of(NGINX, deployment))
    assert json.dumps(encoded, separators=(",", ":")) == NGINX_FIELDS_V1


def test_fields_v1_round_trip(deployment: Schema) -> None:
    fs = fieldset_of(NGINX, deployment)
    assert from_fields_v1(json.loads(NGINX_FIELDS_V1)) == fs
    assert from_fields_v1(to_fields_v1(fs)) == fs


def test_identity_and_system_metadata_are_not_tracked(deployment: Schema) -> None:
    obj = {
        **NGINX,
        "metadata": {
            "name": "x",
            "namespace": "ns",
            "uid": "u",
            "resourceVersion": "1",
            "generation": 2,
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "managedFields": [],
            "generateName": "x-",
            "annotations": {"a": "b"},
            "finalizers": ["example.com/f"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "123"}],
        },
    }
    meta = to_fields_v1(fieldset_of(obj, deployment))["f:metadata"]
    assert meta == {
        "f:annotations": {"f:a": {}},
        "f:finalizers": {'v:"example.com/f"': {}},
        "f:generateName": {},
        "f:ownerReferences": {'k:{"uid":"123"}': {}},  # OwnerReference is an atomic struct
    }
    assert make_path("apiVersion") not in fieldset_of(obj, deployment)
    assert make_path("metadata", "name") not in fieldset_of(obj, deployment)


def test_free_form_maps_and_unknown_schema_mark_nodes_with_dot() -> None:
    crd = Schema(
        {
            "type": "object",
            "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "data": {
                    "type": "object",
                    "additionalProperties": {"type": "object", "properties": {"x": {"type": "string"}}},
                },
            },
        }
    )
    encoded = to_fields_v1(
        typed_fieldset({"spec": {"a": {"b": 1}, "l": [1, 2]}, "data": {"k": {"x": "y"}}}, crd)
    )
    assert encoded == {
        "f:data": {"f:k": {".": {}, "f:x": {}}},
        "f:spec": {"f:a": {".": {}, "f:b": {}}, "f:l": {}},
    }


def test_no_schema_treats_maps_granular_and_lists_atomic() -> None:
    fs = typed_fieldset({"a": {"b": [1, {"c": 2}]}}, Schema({}))
    assert list(fs.paths()) == [make_path("a"), make_path("a", "b")]


def test_empty_and_null_values_are_leaves(deployment: Schema) -> None:
    obj = {
        "spec": {
            "template": {
                "spec": {"securityContext": {}, "containers": [{"name": "a", "resources": {}, "image": None}]}
            }
        }
    }
    fs = typed_fieldset(obj, deployment)
    assert make_path("spec", "template", "spec", "securityContext") in fs
    c = key(name="a")
    assert make_path("spec", "template", "spec", "containers", c, "resources") in fs
    assert make_path("spec", "template", "spec", "containers", c, "image") in fs
    assert make_path("spec", "template") not in fs  # named struct fields with content are not members


def test_element_order_follows_upstream_compare() -> None:
    fs = FieldSet.from_paths(
        [
            (index(1),),
            (value("b"),),
            (value(2),),
            (value(True),),
            (key(k="a"),),
            (field("z"),),
            (field("a"),),
            (value(None),),
            (index(0),),
        ]
    )
    assert list(to_fields_v1(fs)) == [
        "f:a",
        "f:z",
        'k:{"k":"a"}',
        "v:2",
        'v:"b"',
        "v:true",
        "v:null",
        "i:0",
        "i:1",
    ]


def test_dot_comes_first_for_member_with_children() -> None:
    fs = FieldSet.from_paths([make_path("a"), make_path("a", "b"), make_path("a", "B")])
    assert json.dumps(to_fields_v1(fs)) == '{"f:a": {".": {}, "f:B": {}, "f:b": {}}}'


def test_key_elements_sort_fields_and_escape_like_go() -> None:
    pe = key(protocol="TCP", containerPort=80)
    assert element_to_string(pe) == 'k:{"containerPort":80,"protocol":"TCP"}'
    assert element_to_string(value("<a&b>")) == 'v:"\\u003ca\\u0026b\\u003e"'
    assert element_to_string(value("ünï")) == 'v:"ünï"'
    assert element_to_string(key(port=80.0)) == 'k:{"port":80}'
    assert element_from_string('k:{"protocol":"TCP","containerPort":80}') == pe


def test_path_strings_as_conflicts_print_them() -> None:
    path = make_path("spec", "template", "spec", "containers", key(name="app"), "image")
    assert path_string(path) == '.spec.template.spec.containers[name="app"].image'
    assert (
        path_string(make_path("spec", "ports", key(port=80, protocol="TCP")))
        == '.spec.ports[port=80,protocol="TCP"]'
    )
    assert path_string(make_path("metadata", "finalizers", value("a/b"))) == '.metadata.finalizers[="a/b"]'
    assert path_string(make_path("x", index(3))) == ".x[3]"


@pytest.mark.parametrize(
    "bad",
    [
        {"f:a": []},
        {"k:{bad": {}},
        {"k:[1]": {}},
        {"i:x": {}},
        {"fa": {}},
        {"f": {}},
        {"v:{": {}},
    ],
)
def test_from_fields_v1_rejects_malformed(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        from_fields_v1(bad)


def test_from_fields_v1_rejects_non_object() -> None:
    with pytest.raises(ValueError):
        from_fields_v1([])  # type: ignore[arg-type]


def test_from_fields_v1_skips_unknown_element_kinds() -> None:
    assert from_fields_v1({"x:future": {}, "f:a": {}}) == FieldSet.from_paths([make_path("a")])


def test_set_algebra() -> None:
    a = FieldSet.from_paths([make_path("a", "b"), make_path("a", "c"), make_path("d")])
    b = FieldSet.from_paths([make_path("a", "c"), make_path("e")])
    assert a.union(b) == FieldSet.from_paths(
        [make_path("a", "b"), make_path("a", "c"), make_path("d"), make_path("e")]
    )
    assert a.intersection(b) == FieldSet.from_paths([make_path("a", "c")])
    assert a.difference(b) == FieldSet.from_paths([make_path("a", "b"), make_path("d")])
    assert a.recursive_difference(FieldSet.from_paths([make_path("a")])) == FieldSet.from_paths(
        [make_path("d")]
    )
    assert a.difference(FieldSet.from_paths([make_path("a")])) == a
    assert not FieldSet() and len(a) == 3
    assert make_path("a") not in a and make_path("a", "b") in a


def test_compare_reports_added_modified_removed(deployment: Schema) -> None:
    old = {
        "spec": {
            "replicas": 1,
            "paused": True,
            "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}},
        }
    }
    new = {
        "spec": {
            "replicas": 2,
            "minReadySeconds": 5,
            "template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}},
        }
    }
    cmp = compare(old, new, deployment)
    containers = make_path("spec", "template", "spec", "containers")
    assert cmp.modified == FieldSet.from_paths([make_path("spec", "replicas")])
    assert cmp.removed == FieldSet.from_paths([make_path("spec", "paused")])
    assert cmp.added == FieldSet.from_paths(
        [
            make_path("spec", "minReadySeconds"),
            (*containers, key(name="b")),
            (*containers, key(name="b"), field("name")),
            (*containers, key(name="b"), field("image")),
        ]
    )


@pytest.mark.parametrize(
    ("containers", "message"),
    [
        ([{"image": "x"}], "omits all key fields"),
        (["x"], "non-map elements"),
        ([None], "null element"),
    ],
)
def test_bad_list_map_items_are_typed_errors(deployment: Schema, containers: list[Any], message: str) -> None:
    with pytest.raises(TypedError, match=message):
        typed_fieldset({"spec": {"template": {"spec": {"containers": containers}}}}, deployment)


def test_map_in_a_set_is_a_typed_error(deployment: Schema) -> None:
    with pytest.raises(TypedError, match="map type"):
        typed_fieldset({"metadata": {"finalizers": [{"a": 1}]}}, deployment)


def test_duplicate_list_keys_own_the_item_only(deployment: Schema) -> None:
    fs = typed_fieldset({"metadata": {"finalizers": ["a", "a", "b"]}}, deployment)
    assert list(fs.paths()) == [
        make_path("metadata", "finalizers", value("a")),
        make_path("metadata", "finalizers", value("b")),
    ]


_elements = st.one_of(
    st.text(max_size=5).map(field),
    st.integers(0, 5).map(index),
    st.one_of(st.integers(-3, 3), st.text(max_size=3), st.booleans(), st.none()).map(value),
    st.dictionaries(
        st.text(max_size=3), st.one_of(st.integers(), st.text(max_size=3)), min_size=1, max_size=2
    ).map(lambda d: key(**d)),
)


@given(st.lists(st.lists(_elements, min_size=1, max_size=4).map(tuple), max_size=12))
def test_fields_v1_round_trips_any_set(paths: list[tuple[Any, ...]]) -> None:
    fs = FieldSet.from_paths(paths)
    wire = json.loads(json.dumps(to_fields_v1(fs)))
    assert from_fields_v1(wire) == fs
    assert set(fs.paths()) == set(paths)


def test_cached_wire_form_matches_the_plain_one_and_hands_out_fresh_dicts() -> None:
    fs = from_fields_v1(json.loads(NGINX_FIELDS_V1))
    first = encode_cached(fs)
    assert first == to_fields_v1(fs)
    first["f:spec"] = {}
    assert encode_cached(fs) == to_fields_v1(fs)  # a caller changing its copy changes nothing cached
    wire = json.loads(NGINX_FIELDS_V1)
    assert decode_cached(wire) == fs
    assert decode_cached(wire) is decode_cached(json.loads(NGINX_FIELDS_V1))
    with pytest.raises(ValueError):
        decode_cached({"f:a": "not an object"})


_any_elements = st.one_of(
    _elements,
    st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-3, 3)).map(value),
    st.dictionaries(st.text(max_size=3), st.floats(-4, 4, allow_nan=False), min_size=1, max_size=2)
    .map(lambda d: key(**d)),
)


def _strict(fs: FieldSet) -> list[str]:
    """The paths with their values' types showing (``1`` and ``1.0`` are equal elements, but not the same)."""
    return [repr(p) for p in fs.paths()]


@given(st.lists(st.lists(_any_elements, min_size=1, max_size=4).map(tuple), max_size=12))
def test_decoding_what_was_just_encoded_is_decoding_afresh(paths: list[tuple[Any, ...]]) -> None:
    fs = FieldSet.from_paths(paths)
    wire = orjson.loads(orjson.dumps(encode_cached(fs)))
    fresh = from_fields_v1(orjson.loads(orjson.dumps(wire)))
    decoded = decode_cached(wire)
    assert decoded == fresh
    assert _strict(decoded) == _strict(fresh)


def test_a_float_key_is_decoded_from_its_text_not_taken_from_the_encoded_set() -> None:
    fs = FieldSet.from_paths([make_path("spec", "ports", key(port=80.0), "name")])
    wire = orjson.loads(orjson.dumps(encode_cached(fs)))
    assert wire == {"f:spec": {"f:ports": {'k:{"port":80}': {"f:name": {}}}}}
    assert decode_cached(wire) is not fs
    assert _strict(decode_cached(wire)) == [repr(make_path("spec", "ports", key(port=80), "name"))]


def test_an_encoded_set_is_what_its_text_decodes_to() -> None:
    fs = FieldSet.from_paths([make_path("metadata", "labels", "app"), make_path("spec", "replicas")])
    assert decode_cached(orjson.loads(orjson.dumps(encode_cached(fs)))) is fs
    assert list(to_fields_v1(fs)) == ["f:metadata", "f:spec"]
