"""Creates take short cuts through managedFields and admission; each must give what the general code gives."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kplane.api.fieldset import FieldSet
from kplane.api.managedfields import record_update
from kplane.api.schema import ANY, Schema
from kplane.api.status import StatusError
from kplane.versions.builtin_schemas import schema_for_kind

DEPLOYMENT = schema_for_kind("1.36", "apps", "v1", "Deployment")
CONFIGMAP = schema_for_kind("1.36", "", "v1", "ConfigMap")
T0 = "2025-01-01T00:00:00Z"

CM: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "x", "namespace": "default", "uid": "u", "generation": 1,
                                   "creationTimestamp": T0, "labels": {"app": "bench", "b": ""},
                                   "annotations": {}},
                      "data": {"key": "value", "empty": "", "a": "1"}, "binaryData": {}, "immutable": False}

_NAMES = st.sampled_from(["apiVersion", "kind", "metadata", "name", "namespace", "uid", "labels", "annotations",
                          "data", "spec", "template", "containers", "selector", "matchLabels", "managedFields",
                          "resourceVersion", "x", "y", ""])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["a", ""]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(_NAMES, inner, max_size=4),
    max_leaves=12,
)


def _both(obj: dict[str, Any], schema: Schema, manager: str = "kubectl",
          subresource: str = "") -> tuple[Any, Any]:
    def run(**extra: Any) -> Any:
        try:
            return record_update(None, copy.deepcopy(obj), manager=manager, schema=schema, api_version="v1",
                                 now=T0, subresource=subresource, **extra)
        except StatusError as err:
            return err.to_status()
        except (AttributeError, TypeError) as err:  # shapes admission turns away before this runs
            return type(err)

    # Resetting nothing takes the comparing path, which the create short cut must agree with.
    return run(), run(reset_fields=FieldSet())


@pytest.mark.parametrize("schema", [CONFIGMAP, DEPLOYMENT, ANY])
@pytest.mark.parametrize("obj", [
    CM, {}, {"metadata": {}}, {"metadata": "text"}, {"apiVersion": {"odd": {"x": 1}}, "kind": "K"},
    {"metadata": {"name": {"nested": {"deep": 1}}, "labels": {"a": "b"}}},
    {"metadata": {"name": "only", "namespace": "ns", "uid": "u"}},
    {"kind": "ConfigMap", "data": {}, "spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}},
])
def test_create_short_cut_matches_general_ownership(obj: dict[str, Any], schema: Schema) -> None:
    fast, general = _both(obj, schema)
    assert fast == general


def test_create_short_cut_leaves_the_callers_object_alone() -> None:
    obj = copy.deepcopy(CM)
    out = record_update(None, obj, manager="m", schema=CONFIGMAP, api_version="v1", now=T0)
    assert obj == CM
    assert out["metadata"]["managedFields"] == [{
        "manager": "m", "operation": "Update", "apiVersion": "v1", "time": T0, "fieldsType": "FieldsV1",
        "fieldsV1": {"f:binaryData": {}, "f:data": {".": {}, "f:a": {}, "f:empty": {}, "f:key": {}},
                     "f:immutable": {}, "f:metadata": {"f:annotations": {}, "f:labels": {
                         ".": {}, "f:app": {}, "f:b": {}}}}}]


@pytest.mark.parametrize("manager", ["", "x" * 129, "bad\x00name"])
def test_create_short_cut_names_and_checks_the_manager_as_before(manager: str) -> None:
    fast, general = _both(CM, CONFIGMAP, manager=manager)
    assert fast == general


def test_create_short_cut_with_a_subresource_matches() -> None:
    fast, general = _both(CM, CONFIGMAP, subresource="status")
    assert fast == general
    assert fast["metadata"]["managedFields"][0]["subresource"] == "status"


def test_non_text_keys_take_the_general_walk() -> None:
    obj = {"data": {1: "a"}, "metadata": {"name": "n"}}
    fast, general = _both(obj, ANY)
    assert fast == general


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_NAMES, _JSON, max_size=5))
def test_create_short_cut_matches_for_any_object(obj: dict[str, Any]) -> None:
    for schema in (CONFIGMAP, DEPLOYMENT, ANY):
        fast, general = _both(obj, schema)
        assert fast == general


def test_validation_still_visits_leaves_of_the_wrong_type() -> None:
    from kplane.api.validation import validate

    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": 5, "labels": {"a": True}},
           "data": {"k": 1}, "immutable": "yes"}
    fields = sorted(c.field for c in validate(bad, CONFIGMAP))
    assert fields == ["data.k", "immutable", "metadata.labels.a", "metadata.name"]
    assert validate(CM, CONFIGMAP) == []


def test_enum_short_cut_keeps_unsupported_values() -> None:
    from kplane.api.validation import validate

    schema = Schema({"type": "object", "properties": {"p": {"type": "string", "enum": ["A", "B"]},
                                                      "n": {"type": "integer", "enum": [1, 2]}}})
    assert validate({"p": "A", "n": 2}, schema) == []
    causes = validate({"p": "C", "n": 3}, schema)
    assert [c.reason for c in causes] == ["FieldValueNotSupported", "FieldValueNotSupported"]


def test_unknown_fields_under_scalars_and_maps_are_still_reported() -> None:
    from kplane.api.defaulting import prune, unknown_fields

    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "bogus": {"y": 1}},
           "data": {"k": "v"}, "extra": "z", "immutable": True}
    assert unknown_fields(obj, CONFIGMAP) == ["metadata.bogus", "extra"]
    assert prune(obj, CONFIGMAP)[0] == {k: v for k, v in obj.items() if k != "extra"}
