"""The Kubernetes JSONPath subset: selection, filters, missing keys, and parse errors."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.api.jsonpath import evaluate, format_value

POD: dict[str, Any] = {
    "metadata": {"name": "p", "labels": {"app.kubernetes.io/name": "web", "tier": "fe"}},
    "spec": {"replicas": 3, "containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}]},
    "status": {
        "conditions": [{"type": "Scheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
        "ratio": 0.5,
    },
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (".spec.replicas", [3]),
        ("{.spec.replicas}", [3]),
        ("$.spec.replicas", [3]),
        (".spec.containers[0].name", ["a"]),
        (".spec.containers[-1].name", ["b"]),
        (".spec.containers[*].image", ["nginx", "redis"]),
        (".spec.containers[0:1].name", ["a"]),
        (".spec.containers[0,1].name", ["a", "b"]),
        ('.status.conditions[?(@.type=="Ready")].status', ["False"]),
        (".status.conditions[?(@.type!='Ready')].type", ["Scheduled"]),
        (".status.conditions[?(@.missing)].type", []),
        (".metadata.labels['app.kubernetes.io/name']", ["web"]),
        ('.metadata.labels["tier"]', ["fe"]),
        (r".metadata.labels.app\.kubernetes\.io/name", ["web"]),
        ("..image", ["nginx", "redis"]),
        (".metadata.labels.*", ["web", "fe"]),
        (".", [POD]),
    ],
)
def test_selects(expr: str, expected: list[Any]) -> None:
    assert evaluate(expr, POD) == expected


@pytest.mark.parametrize("expr", [".spec.nope", ".spec.containers[5]", ".spec.replicas.x", ".metadata[0]"])
def test_missing_is_empty(expr: str) -> None:
    assert evaluate(expr, POD) == []


def test_numeric_filters() -> None:
    items = {"items": [{"n": 1}, {"n": 2.5}, {"n": "3"}, {"n": True}]}
    assert evaluate(".items[?(@.n > 1)].n", items) == [2.5]
    assert evaluate(".items[?(@.n == 1)].n", items) == [1]
    assert evaluate('.items[?(@.n == "3")].n', items) == ["3"]


@pytest.mark.parametrize(
    "expr", ["{.spec", ".spec[0", ".spec[?(@.a==)]", ".spec[abc]", ".a b", ".spec[1:2:0]", "}", ".spec['x]"]
)
def test_parse_errors_raise_value_error(expr: str) -> None:
    with pytest.raises(ValueError):
        evaluate(expr, POD)


def test_format_value_like_client_go() -> None:
    assert format_value("x") == "x"
    assert format_value(3) == "3"
    assert format_value(3.0) == "3"
    assert format_value(0.5) == "0.5"
    assert format_value(True) == "true"
    assert format_value({"b": 1, "a": [1, "x"]}) == '{"a":[1,"x"],"b":1}'
