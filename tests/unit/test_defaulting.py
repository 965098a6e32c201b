"""Structural defaulting, pruning and the strict unknown-field list."""

from __future__ import annotations

import copy
from typing import Any

from kplane.api.defaulting import apply_defaults, prune, unknown_fields
from kplane.api.schema import Schema

SCHEMA = Schema(
    {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "replicas": {"type": "integer", "default": 1},
                    "paused": {"type": "boolean", "default": False},
                    "note": {"type": "string", "nullable": True, "default": "n"},
                    "plain": {"type": "string"},
                    "config": {
                        "type": "object",
                        "default": {},
                        "properties": {"size": {"type": "integer", "default": 3}, "name": {"type": "string"}},
                    },
                    "items": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "kind": {"type": "string", "default": "basic"},
                                "n": {"type": "integer"},
                            },
                        },
                    },
                    "limits": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {"max": {"type": "integer", "default": 10}},
                        },
                    },
                    "free": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                        "properties": {"known": {"type": "object", "properties": {"a": {"type": "integer"}}}},
                    },
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": True,
                        "properties": {"spec": {"type": "object", "properties": {"x": {"type": "integer"}}}},
                    },
                    "empty": {"type": "object"},
                },
            },
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
        },
    }
)


def test_defaults_fill_absent_fields_recursively() -> None:
    obj: dict[str, Any] = {"spec": {"items": [{}, {"kind": "x"}], "limits": {"cpu": {}, "mem": {"max": 2}}}}
    before = copy.deepcopy(obj)
    out = apply_defaults(obj, SCHEMA)
    assert obj == before  # pure
    assert out["spec"] == {
        "replicas": 1,
        "paused": False,
        "note": "n",
        "config": {"size": 3},  # a defaulted object is defaulted inside
        "items": [{"kind": "basic"}, {"kind": "x"}],
        "limits": {"cpu": {"max": 10}, "mem": {"max": 2}},
    }


def test_defaults_keep_given_values_and_handle_nulls() -> None:
    out = apply_defaults({"spec": {"replicas": 5, "paused": None, "note": None, "plain": None}}, SCHEMA)
    spec = out["spec"]
    assert spec["replicas"] == 5
    assert spec["paused"] is False  # null of a non-nullable field takes the default
    assert spec["note"] is None  # nullable: null stays
    assert "plain" not in spec  # non-nullable null without default is dropped


def test_defaults_do_not_create_absent_parents() -> None:
    assert apply_defaults({}, SCHEMA) == {}
    assert apply_defaults({"status": {}}, SCHEMA) == {"status": {}}


def test_defaults_leave_non_objects_alone() -> None:
    assert apply_defaults({"spec": "x"}, SCHEMA) == {"spec": "x"}
    assert apply_defaults(None, SCHEMA) is None


def test_prune_drops_unknown_fields_and_reports_paths() -> None:
    obj = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "labels": {"a": "b"}},
        "spec": {
            "replicas": 2,
            "bogus": 1,
            "items": [{"n": 1, "extra": True}],
            "limits": {"cpu": {"max": 1, "min": 0}},
            "free": {"anything": {"goes": 1}, "known": {"a": 1, "b": 2}},
            "template": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"x": 1, "y": 2},
            },
            "empty": {"z": 1},
        },
        "top": "level",
    }
    out, pruned = prune(obj, SCHEMA)
    assert pruned == [
        "spec.bogus",
        "spec.items[0].extra",
        "spec.limits[cpu].min",
        "spec.free.known.b",
        "spec.template.spec.y",
        "spec.empty.z",
        "top",
    ]
    assert out["metadata"] == obj["metadata"]
    assert out["spec"]["free"] == {"anything": {"goes": 1}, "known": {"a": 1}}
    assert out["spec"]["template"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"x": 1},
    }
    assert out["spec"]["empty"] == {}
    assert "top" not in out
    assert obj["spec"]["bogus"] == 1  # the input is untouched


def test_prune_of_clean_object_is_a_no_op() -> None:
    obj = {"apiVersion": "a/v1", "kind": "K", "metadata": {}, "spec": {"replicas": 1}}
    assert prune(obj, SCHEMA) == (obj, [])


def test_unknown_fields_for_strict_decoding() -> None:
    schema = Schema(
        {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
                "spec": {"type": "object", "properties": {"x": {"type": "integer"}}},
            },
        }
    )
    obj = {
        "apiVersion": "v1",
        "kind": "K",
        "metadata": {"name": "a", "nam": "b"},
        "spec": {"x": 1, "y": 2, "z": 3},
    }
    assert unknown_fields(obj, schema) == ["metadata.nam", "spec.y", "spec.z"]
    assert obj["spec"]["y"] == 2  # nothing removed
    assert unknown_fields({"spec": {"x": 1}}, schema) == []
