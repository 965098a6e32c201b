"""The `device` variable of DRA selectors as the cost estimator sees it, and the selector cost limit.

Shared by API validation (which refuses selectors whose worst case is over the limit) and the allocator
(which checks again with a real device's sizes), so both use one declaration of upstream's size limits.
"""

from __future__ import annotations

from kplane.cel.cost import UNKNOWN, CostError, Decl, estimate

CEL_SELECTOR_EXPRESSION_MAX_COST = 1_000_000
"""resource/v1 ``CELSelectorExpressionMaxCost``: roughly 0.1 s of evaluation."""

# The size limits of `device` as newCompiler declares them (dynamic-resource-allocation cel/compile.go):
# attribute values up to DeviceAttributeMaxValueLength (64), domains DeviceMaxDomainLength (63), ids
# DeviceMaxIDLength (32), the driver DriverNameMaxLength (63), and every map up to
# ResourceSliceMaxAttributesAndCapacitiesPerDevice (32) entries. Its sizeEstimator lets `.name` on an
# attribute map reach the attribute type; capacity values are Quantity objects.
_ATTRIBUTE = Decl("dyn", 64)
_DOMAIN = Decl("string", 63)
_ID = Decl("string", 32)
_INNER_ATTRIBUTES = Decl("map", 32, key=_ID, elem=_ATTRIBUTE, any_field_is_elem=True)
_INNER_CAPACITY = Decl("map", 32, key=_ID, elem=Decl("object", 0))
DEVICE_DECL = Decl("object", 0, {
    "driver": Decl("string", 63),
    "attributes": Decl("map", 32, key=_DOMAIN, elem=_INNER_ATTRIBUTES),
    "capacity": Decl("map", 32, key=_DOMAIN, elem=_INNER_CAPACITY),
    "allowMultipleAllocations": Decl("bool", 1),
})


def estimated_cost(expression: str) -> int:
    """The worst-case cost of a selector over any device; :data:`kplane.cel.cost.UNKNOWN` when it is
    unbounded or the text does not parse (the compile error is reported instead)."""
    try:
        return estimate(expression, {"device": DEVICE_DECL})
    except CostError:
        return UNKNOWN


def over_cost_limit(expression: str) -> bool:
    """Whether validation must refuse the selector: "too complex, exceeds cost limit"."""
    return estimated_cost(expression) > CEL_SELECTOR_EXPRESSION_MAX_COST
