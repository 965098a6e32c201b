"""kplane.api.patch: JSON patch (RFC 6902) and merge patch (RFC 7386), with upstream's error codes."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kplane.api.patch import MAX_JSON_PATCH_OPERATIONS, apply_json_patch, apply_merge_patch
from kplane.api.status import StatusError

CM: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "cm", "resourceVersion": "7", "labels": {"a": "1"}, "finalizers": ["x", "y"]},
    "data": {"k": "v"},
}


def body(value: Any) -> bytes:
    return orjson.dumps(value)


def error(fn: Any, *args: Any) -> StatusError:
    with pytest.raises(StatusError) as info:
        fn(*args)
    return info.value


# ---- JSON patch ----


@pytest.mark.parametrize(
    ("ops", "check"),
    [
        (
            [{"op": "add", "path": "/metadata/labels/b", "value": "2"}],
            lambda o: o["metadata"]["labels"] == {"a": "1", "b": "2"},
        ),
        ([{"op": "replace", "path": "/data/k", "value": "w"}], lambda o: o["data"] == {"k": "w"}),
        (
            [{"op": "remove", "path": "/metadata/finalizers/0"}],
            lambda o: o["metadata"]["finalizers"] == ["y"],
        ),
        (
            [{"op": "add", "path": "/metadata/finalizers/-", "value": "z"}],
            lambda o: o["metadata"]["finalizers"] == ["x", "y", "z"],
        ),
        (
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
                {"op": "remove", "path": "/metadata/finalizers"},
            ],
            lambda o: "finalizers" not in o["metadata"],
        ),
        ([{"op": "move", "from": "/data/k", "path": "/data/m"}], lambda o: o["data"] == {"m": "v"}),
        ([{"op": "copy", "from": "/data", "path": "/binaryData"}], lambda o: o["binaryData"] == {"k": "v"}),
        (
            [{"op": "add", "path": "/metadata/labels/a~1b", "value": "slash"}],
            lambda o: o["metadata"]["labels"]["a/b"] == "slash",
        ),
        ([], lambda o: o == CM),
    ],
)
def test_json_patch_applies(ops: list[dict[str, Any]], check: Any) -> None:
    before = copy.deepcopy(CM)
    out = apply_json_patch(CM, body(ops))
    assert check(out)
    assert before == CM  # the input is untouched


def test_json_patch_null_body_is_no_operations() -> None:
    assert apply_json_patch(CM, b"null") == CM


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "test", "path": "/metadata/resourceVersion", "value": "6"}],  # kopf's optimistic lock
        [{"op": "replace", "path": "/data/missing", "value": 1}],
        [{"op": "remove", "path": "/spec"}],
        [{"op": "add", "path": "/spec/template/x", "value": 1}],
        [{"op": "add", "path": "/metadata/finalizers/9", "value": "z"}],
        [{"op": "bogus", "path": "/data"}],
        [{"path": "/data"}],
        [{"op": "add", "value": 1}],
        [{"op": "move", "from": "/data", "path": "/data/k/x"}],
    ],
)
def test_json_patch_that_cannot_apply_is_422(ops: list[dict[str, Any]]) -> None:
    err = error(apply_json_patch, CM, body(ops))
    assert (err.code, err.reason) == (422, "Invalid")
    assert err.message == "the server rejected our request due to an error in our request"
    assert err.causes == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "invalid character 'n' looking for beginning of value"),
        (b'[{"op":', "unexpected end of JSON input"),
        (b"", "unexpected end of JSON input"),
        (b'{"op": "add"}', "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
        (b'"add"', "json: cannot unmarshal string into Go value of type jsonpatch.Patch"),
        (b"[1]", "json: cannot unmarshal number into Go value of type jsonpatch.Operation"),
        (b"[[]]", "json: cannot unmarshal array into Go value of type jsonpatch.Operation"),
    ],
)
def test_json_patch_undecodable_is_400(raw: bytes, message: str) -> None:
    err = error(apply_json_patch, CM, raw)
    assert (err.code, err.reason, err.message) == (400, "BadRequest", message)


def test_json_patch_operation_limit_is_413() -> None:
    ops = [{"op": "test", "path": "/kind", "value": "ConfigMap"}] * (MAX_JSON_PATCH_OPERATIONS + 1)
    err = error(apply_json_patch, CM, body(ops))
    assert (err.code, err.reason) == (413, "RequestEntityTooLarge")
    assert err.message.endswith(f"is {MAX_JSON_PATCH_OPERATIONS}, got {MAX_JSON_PATCH_OPERATIONS + 1}")
    assert apply_json_patch(CM, body(ops[:MAX_JSON_PATCH_OPERATIONS])) == CM


def test_json_patch_replacing_the_root_with_a_non_object_is_422_on_patch() -> None:
    err = error(apply_json_patch, CM, body([{"op": "replace", "path": "", "value": [1]}]))
    assert (err.code, err.reason) == (422, "Invalid")
    assert err.causes[0].field == "patch"
    assert err.message.startswith(' "" is invalid: patch: Invalid value: "[1]": json: cannot unmarshal array')


# ---- merge patch ----


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"data": {"k": None, "n": "1"}}, {**CM, "data": {"n": "1"}}),
        (
            {"metadata": {"labels": None}},
            {**CM, "metadata": {k: v for k, v in CM["metadata"].items() if k != "labels"}},
        ),
        ({"metadata": {"finalizers": ["z"]}}, {**CM, "metadata": {**CM["metadata"], "finalizers": ["z"]}}),
        ({"data": "flat"}, {**CM, "data": "flat"}),
        ({"new": {"a": {"b": None, "c": 1}}}, {**CM, "new": {"a": {"c": 1}}}),
        ({"list": [{"a": None, "b": 1}, None]}, {**CM, "list": [{"b": 1}, None]}),
        ({"missing": None}, CM),
        ({}, CM),
    ],
)
def test_merge_patch(patch: dict[str, Any], expected: dict[str, Any]) -> None:
    before = copy.deepcopy(CM)
    assert apply_merge_patch(CM, body(patch)) == expected
    assert before == CM


def test_merge_patch_result_shares_nothing_with_input() -> None:
    out = apply_merge_patch(CM, body({"data": {"x": "1"}}))
    out["metadata"]["labels"]["a"] = "changed"
    assert CM["metadata"]["labels"]["a"] == "1"


@pytest.mark.parametrize("raw", [b"{bad", b"null", b'"str"', b"12", b"true", b""])
def test_merge_patch_undecodable_or_not_an_object_is_400(raw: bytes) -> None:
    err = error(apply_merge_patch, CM, raw)
    assert (err.code, err.reason, err.message) == (400, "BadRequest", "Invalid JSON Patch")


def test_merge_patch_array_is_422() -> None:
    err = error(apply_merge_patch, CM, b"[1, 2]")
    assert (err.code, err.reason) == (422, "Invalid")
    assert err.causes[0].field == "patch"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=2), children, max_size=3)
    ),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=2), json_values, max_size=4)


@given(json_objects, json_objects)
def test_merge_patch_laws(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386: applying a patch twice equals applying it once, and null members never survive."""
    once = apply_merge_patch(target, body(patch))
    assert apply_merge_patch(once, body(patch)) == once
    for key, value in patch.items():
        if value is None:
            assert key not in once
        elif not isinstance(value, dict):
            assert once[key] is not None
