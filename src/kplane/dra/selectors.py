"""CEL device selectors: the ``device`` variable as ``k8s.io/dynamic-resource-allocation/cel/compile.go``
builds it, compiled once per expression and evaluated through :mod:`kplane.cel`.

``device`` is declared as ``map(string, dyn)`` because the adapter has no object types; the differences that
shows are closed here: attribute and capacity names without a domain are placed under the device's driver,
versions become Semver values and capacities Quantity values, a domain the device does not publish reads as
an empty map (upstream's custom ``mapper.Find``), ``allowMultipleAllocations`` exists only when consumable
capacity is enabled (else, as upstream, the expression does not compile), and the result must be a bool.

Costs: every compiled selector carries its worst-case cost (:mod:`kplane.cel.cost` over the size limits
of the ``device`` declaration, as ``CompileCELExpression`` sets ``MaxCost``); validation refuses one over
``CELSelectorExpressionMaxCost``. The engine has no runtime cost limit, so :func:`matches` stands in for
cel-go's ``cel.CostLimit``: a selector whose worst case is over the limit is first costed again with the
sizes of the actual device, and if that bound is still over the limit evaluation is refused with cel-go's
error. The bound counts both sides of ``&&``/``||`` where cel-go's actual cost would stop early."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from kplane.cel import DYN, STRING, CelError, Program, map_of
from kplane.cel import compile as cel_compile
from kplane.cel.cost import UNKNOWN, CostError, decl_of, estimate
from kplane.cel.draenv import CEL_SELECTOR_EXPRESSION_MAX_COST, estimated_cost
from kplane.cel.engine import wrap
from kplane.cel.k8slib import QUANTITY, SEMVER, parse_semver
from kplane.dra.model import CEL_SELECTOR_EXPRESSION_MAX_LENGTH, Device

_DEVICE = {"device": map_of(STRING, DYN)}
_STRING_LITERAL = re.compile(r"""(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")
_MULTI_ALLOC = re.compile(r"\ballowMultipleAllocations\b")

COST_LIMIT_EXCEEDED = "operation cancelled: actual cost limit exceeded"
"""cel-go ``interpreter/runtimecost.go``: the error of an evaluation stopped by ``cel.CostLimit``."""

@dataclass(frozen=True)
class Selector:
    program: Program | None
    error: str
    domains: frozenset[str]
    """String literals of the expression: a lookup of any of them as a domain must find an empty map."""
    max_cost: int = UNKNOWN
    """Worst-case cost over any device the API admits (upstream's ``CompilationResult.MaxCost``)."""
    expression: str = ""


@lru_cache(maxsize=1024)
def compile_selector(expression: str, consumable_capacity: bool) -> Selector:
    """A compiled selector, or the compile error as cel-go words it (``undeclared reference …``)."""
    if len(expression) > CEL_SELECTOR_EXPRESSION_MAX_LENGTH:
        too_long = f"expression too long ({len(expression)} > {CEL_SELECTOR_EXPRESSION_MAX_LENGTH})"
        return Selector(None, too_long, frozenset())
    if not consumable_capacity and _MULTI_ALLOC.search(expression):
        return Selector(None, "undefined field 'allowMultipleAllocations'", frozenset())
    try:
        program = cel_compile(expression, _DEVICE)
    except CelError as err:
        return Selector(None, str(err), frozenset())
    if program.result_type not in ("bool", "dyn"):
        return Selector(None, f"must evaluate to bool, got {program.result_type}", frozenset())
    domains = frozenset(a or b for a, b in _STRING_LITERAL.findall(expression))
    return Selector(program, "", domains, estimated_cost(expression), expression)


def _qualify(name: str, driver: str) -> tuple[str, str]:
    domain, sep, ident = name.rpartition("/")
    return (domain, ident) if sep else (driver, name)


def _attribute_value(value: Any) -> Any:
    if "int" in value:
        return int(value["int"])
    if "bool" in value:
        return bool(value["bool"])
    if "string" in value:
        return str(value["string"])
    if "version" in value:
        major, minor, patch, pre = parse_semver(str(value["version"]))
        return wrap(SEMVER, f"{major}.{minor}.{patch}" + ("-" + ".".join(pre) if pre else ""))
    raise CelError("unsupported attribute value")


def device_variable(device: Device, driver: str, consumable_capacity: bool) -> dict[str, Any]:
    """The ``device`` value for CEL; raises CelError (``attribute NAME: …``, as getAttributeValue in
    cel/compile.go) for a version that is not semver or an attribute without a value of a known type."""
    attributes: dict[str, dict[str, Any]] = {driver: {}}
    for name, value in device.attributes.items():
        domain, ident = _qualify(name, driver)
        try:
            attributes.setdefault(domain, {})[ident] = _attribute_value(value or {})
        except CelError as err:
            raise CelError(f"attribute {name}: {err}") from None
    capacity: dict[str, dict[str, Any]] = {driver: {}}
    for name, cap in device.capacity.items():
        domain, ident = _qualify(name, driver)
        amount = cap.value
        capacity.setdefault(domain, {})[ident] = wrap(QUANTITY, f"{amount.numerator}/{amount.denominator}")
    variable: dict[str, Any] = {"driver": driver, "attributes": attributes, "capacity": capacity}
    if consumable_capacity:
        variable["allowMultipleAllocations"] = device.allow_multiple
    return variable


def matches(selector: Selector, variable: dict[str, Any]) -> bool:
    """Evaluate a compiled selector; CelError on a runtime error, a non-bool result, or (cel-go's
    runtime cost limit) a selector too costly for this device."""
    assert selector.program is not None
    if selector.max_cost > CEL_SELECTOR_EXPRESSION_MAX_COST and actual_cost(selector, variable) > \
            CEL_SELECTOR_EXPRESSION_MAX_COST:
        raise CelError(COST_LIMIT_EXCEEDED)
    for key in ("attributes", "capacity"):
        missing = selector.domains.difference(variable[key])
        if missing:
            variable = {**variable, key: {**variable[key], **{d: {} for d in missing}}}
    result = selector.program.evaluate({"device": variable})
    if not isinstance(result, bool):
        raise CelError(f"expression must evaluate to bool, got {type(result).__name__}")
    return result


def actual_cost(selector: Selector, variable: dict[str, Any]) -> int:
    """An upper bound of the selector's cost for one device: the estimate with that device's sizes."""
    try:
        return estimate(selector.expression, {"device": decl_of(variable)})
    except CostError:
        return UNKNOWN
