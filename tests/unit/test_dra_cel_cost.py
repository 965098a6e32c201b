"""CEL cost of DRA device selectors: kplane.cel.cost estimates, validation's limit, allocation's runtime limit.

Expected costs are those of upstream's ``dynamic-resource-allocation/cel/compile_test.go`` (1.35)."""

from __future__ import annotations

from typing import Any

import pytest

from kplane.api.builtin_validation_dra import validate_device_class, validate_resource_claim
from kplane.cel.cost import UNKNOWN, CostError, Decl, decl_of, estimate, parse
from kplane.cel.draenv import CEL_SELECTOR_EXPRESSION_MAX_COST, DEVICE_DECL, estimated_cost, over_cost_limit
from kplane.dra.allocator import allocate
from kplane.dra.selectors import COST_LIMIT_EXCEEDED, actual_cost, compile_selector

TEN = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"
EXPENSIVE = (f"{TEN}.all(x, {TEN}.all(y, {TEN}.all(z, {TEN}.all(z2, {TEN}.all(z3, {TEN}.all(z4, "
             f"{TEN}.all(z5, int('1'.find('[0-9]*')) < 100)))))))")
"""upstream's "expensive" case: estimated 85555551, and "actual cost limit exceeded" when run."""
NESTED = ('device.attributes.all(d, device.attributes[d].all(i, '
          'device.attributes.all(d2, device.attributes[d2].all(i2, i != "" && i2 != ""))))')
"""Over the limit for the worst device the API admits, well under it for any real one (the squared
attribute count is at most 32 x 32)."""
ALL = " &&\n".join([
    'device.capacity["dra.example.com"].quantity.isGreaterThan(quantity("1Ki"))',
    'device.attributes["dra.example.com"].bool',
    'device.attributes["dra.example.com"].int > 0',
    'device.attributes["dra.example.com"].string == "fish"',
    'device.attributes["dra.example.com"].version.isGreaterThan(semver("0.0.1"))',
    'device.capacity["dra.example.com"]["quantity"].isGreaterThan(quantity("1Ki"))',
    'device.attributes["dra.example.com"]["bool"]',
    'device.attributes["dra.example.com"]["int"] > 0',
    'device.attributes["dra.example.com"]["string"] == "fish"',
    'device.attributes["dra.example.com"]["version"].isGreaterThan(semver("0.0.1"))',
])


@pytest.mark.parametrize(("expression", "cost"), [
    ("true", 0),
    ('"no-such-domain" in device.attributes', 3),
    ('device.driver == ""', 2),
    ('device.driver == "dra.example.com"', 4),
    ('device.attributes["dra.example.com"].name', 4),
    ('device.attributes["dra.example.com"]["name"]', 4),
    ('device.attributes["no-such-domain"].noSuchAttr.isGreaterThan(quantity("0"))', 6),
    ('cel.bind(dra, device.attributes["dra.example.com"], dra.name)', 15),
    ('device.attributes["dra.example.com"].name > 0', 5),
    ('device.attributes["dra.example.com"].name == "fish"', 5),
    ('device.attributes["dra.example.com"].name.isGreaterThan(semver("0.0.1"))', 6),
    ('device.attributes["dra.example.com"].name.isGreaterThan(semver("v0.0.1", true)) && isSemver("v1.0.0", true)', 7),
    ('device.capacity["dra.example.com"].name.isGreaterThan(quantity("1Ki"))', 6),
    ('"name" in device.capacity["dra.example.com"] && '
     'device.capacity["dra.example.com"].name.isGreaterThan(quantity("1Ki"))', 10),
    ('!("name" in device.capacity["dra.example.com"]) || '
     'device.capacity["dra.example.com"].name.isGreaterThan(quantity("1Ki"))', 11),
    (ALL, 52),
    ('device.attributes["dra.example.com"].a && device.attributes["dra.example.com"].b && '
     'device.attributes["dra.example.com"].c', 12),
    ('device.attributes.exists_one(x, x == "dra.example.com")', 164),
    ('device.attributes["dra.example.com"].exists_one(x, x == "services")', 133),
    ('device.attributes["dra.example.com"].services.split("example").size() >= 2', 19),
    ('device.attributes["dra.example.com"].services.matches("[^a]?sym")', 18),
    ('device.capacity.exists_one(x, x == "dra.example.com")', 164),
    ('device.capacity["dra.example.com"].exists_one(x, x == "memory")', 133),
    ("device.allowMultipleAllocations == true", 3),
    (EXPENSIVE, 85555551),
])
def test_estimates_match_upstream(expression: str, cost: int) -> None:
    assert estimated_cost(expression) == cost


@pytest.mark.parametrize("expression", [EXPENSIVE, NESTED])
def test_worst_cases_are_over_the_limit(expression: str) -> None:
    assert estimated_cost(expression) > CEL_SELECTOR_EXPRESSION_MAX_COST
    assert over_cost_limit(expression)


def test_macros_over_device_maps_scale_with_their_bounds() -> None:
    one = estimated_cost('device.attributes["d"].exists(x, x == "a")')
    # range 3 + result 1 + 32 ids x (condition !accu 3 + step accu || (x == "a") 3)
    assert one == 3 + 1 + 32 * 6
    two_var = estimated_cost('device.attributes["d"].all(k, v, v == "x")')
    assert 32 < two_var < 1000
    assert estimated_cost('device.attributes["d"].x.lowerAscii() == "a"') == 4 + 7 + 1


def test_unbounded_sizes_are_unknown_and_unparsable_text_raises() -> None:
    assert estimate("x.all(e, e)", {}) >= UNKNOWN // 2
    assert estimated_cost("device.driver ==") == UNKNOWN
    with pytest.raises(CostError):
        parse("1 +")
    assert over_cost_limit("device.driver ==")


def test_parse_reads_literals_and_comprehensions() -> None:
    tree = parse('[1, -2, 2u, 1.5, "s", b"b", true, null].exists(x, x == 1)')
    assert tree.op == "comp" and tree.comp is not None
    values = [e.value for e in tree.comp.iter_range.args]
    assert values == [1, -2, 2, 1.5, "s", b"b", True, None]
    assert parse('{"a": 1}').op == "map"
    assert parse("has(a.b)").test_only


def test_declarations_bound_fields_and_actual_values() -> None:
    roots = {"s": Decl("string", 10)}
    assert estimate('s == "abcdefghijklmnopqrstu"', roots) == 1 + 1
    actual = decl_of({"m": {"k": "x" * 50}, "l": [1, 2, 3], "n": 1.5})
    assert actual.step("m") is not None and actual.step("l") is not None
    assert estimate('v.m.k.lowerAscii() == ""', {"v": actual}) == 3 + 5
    assert estimate("v.l.all(x, x > 0)", {"v": actual}) == 2 + 1 + 3 * (2 + 1 + 2)
    assert decl_of({"a": 1, "b": "xyz"}).elem == Decl("dyn", 3, any_field_is_elem=False)


def _device(n_attrs: int) -> dict[str, Any]:
    return {"driver": "dra.example.com", "capacity": {"dra.example.com": {}},
            "attributes": {"dra.example.com": {f"a{i}": i for i in range(n_attrs)}}}


def test_actual_cost_uses_the_devices_sizes() -> None:
    selector = compile_selector(NESTED, False)
    assert selector.max_cost > CEL_SELECTOR_EXPRESSION_MAX_COST
    assert actual_cost(selector, _device(32)) < CEL_SELECTOR_EXPRESSION_MAX_COST
    assert actual_cost(selector, _device(1000)) > CEL_SELECTOR_EXPRESSION_MAX_COST


NODE = {"metadata": {"name": "node-1"}}
CLASS = {"metadata": {"name": "gpu"}, "spec": {"selectors": [{"cel": {"expression": "true"}}]}}


def _slice(attrs: int) -> dict[str, Any]:
    device = {"name": "gpu-0", "attributes": {f"a{i}": {"int": i} for i in range(attrs)}}
    return {"metadata": {"name": "s"}, "spec": {"driver": "dra.example.com", "nodeName": "node-1",
            "pool": {"name": "p", "generation": 1, "resourceSliceCount": 1}, "devices": [device]}}


def _claim(expression: str) -> dict[str, Any]:
    request = {"name": "r", "exactly": {"deviceClassName": "gpu", "selectors": [{"cel": {"expression": expression}}]}}
    return {"metadata": {"name": "c", "namespace": "ns"}, "spec": {"devices": {"requests": [request]}}}


def test_allocation_stops_a_too_costly_selector_with_upstreams_error() -> None:
    out = allocate(NODE, [_claim(EXPENSIVE)], [_slice(1)], [CLASS])
    assert out.kind == "error"
    assert out.error == f"claim ns/c: selector #0: CEL runtime error: {COST_LIMIT_EXCEEDED}"
    out = allocate(NODE, [_claim(NESTED)], [_slice(1000)], [CLASS])  # more attributes than the API admits
    assert out.kind == "error" and COST_LIMIT_EXCEEDED in out.error


def test_costly_worst_case_runs_when_the_device_is_small() -> None:
    out = allocate(NODE, [_claim(NESTED)], [_slice(32)], [CLASS])
    assert out.kind == "allocated", out


PATH = "spec.devices.requests[0].exactly.selectors[0].cel.expression"


def test_validation_forbids_selectors_over_the_limit() -> None:
    causes = validate_resource_claim(_claim(EXPENSIVE), None)
    assert [(c.reason, c.field, c.message) for c in causes] == [
        ("FieldValueForbidden", PATH, "Forbidden: too complex, exceeds cost limit")]
    klass = {"metadata": {"name": "c"}, "spec": {"selectors": [{"cel": {"expression": NESTED}}]}}
    assert [(c.field, c.message) for c in validate_device_class(klass, None)] == [
        ("spec.selectors[0].cel.expression", "Forbidden: too complex, exceeds cost limit")]


def test_validation_accepts_cheap_selectors_and_reports_compile_errors_first() -> None:
    assert validate_resource_claim(_claim('device.driver == "x"'), None) == []
    assert validate_resource_claim(_claim(ALL), None) == []
    causes = validate_resource_claim(_claim(EXPENSIVE + " +"), None)
    assert len(causes) == 1 and "compilation failed" in causes[0].message


def test_device_declaration_follows_upstream_limits() -> None:
    attributes = DEVICE_DECL.fields["attributes"]
    assert attributes.size == 32 and attributes.key == Decl("string", 63)
    inner = attributes.elem
    assert inner is not None and inner.step("anyName") == Decl("dyn", 64)
    assert DEVICE_DECL.fields["driver"].size == 63
