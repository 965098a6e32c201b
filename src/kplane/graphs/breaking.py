"""Breaking-change detection between the old and new CRD of an RGD's kind, as kro decides it before it
updates the CRD (``kubernetes-sigs/kro:pkg/graph/crd/compat/schema.go``, ``compat.go``, ``changes.go``;
the refusal text is ``pkg/client/crd.go`` ``Ensure``).

Breaking: a property or items schema removed, a type changed, an existing property newly required, a
required property added without a default, an enum value removed, a pattern added or changed, a default
removed from a required property, and a minimum/maximum/minLength/maxLength/minItems/maxItems added or
tightened; also a renamed version, ``served`` turned off and the status subresource removed. Everything
else kro compares (descriptions, defaults, optional properties added, ``required`` shrunk, enum grown,
patterns removed, limits loosened) is non-breaking. Like kro, ``additionalProperties``,
``x-kubernetes-*`` and CEL rules are not compared. Properties are visited in name order, so reports are
stable (kro walks Go maps in random order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

ALLOW_BREAKING_ANNOTATION = "kro.run/allow-breaking-changes"
SUMMARY_LIMIT = 3

# Breaking kinds of change (kro's ChangeType values).
PROPERTY_REMOVED = "PROPERTY_REMOVED"
TYPE_CHANGED = "TYPE_CHANGED"
REQUIRED_ADDED = "REQUIRED_ADDED"
ENUM_RESTRICTED = "ENUM_RESTRICTED"
PATTERN_CHANGED = "PATTERN_CHANGED"
PATTERN_ADDED = "PATTERN_ADDED"
REQUIRED_DEFAULT_REMOVED = "REQUIRED_DEFAULT_REMOVED"
# Non-breaking kinds of change.
PROPERTY_ADDED = "PROPERTY_ADDED"
DESCRIPTION_CHANGED = "DESCRIPTION_CHANGED"
DEFAULT_CHANGED = "DEFAULT_CHANGED"
REQUIRED_REMOVED = "REQUIRED_REMOVED"
ENUM_EXPANDED = "ENUM_EXPANDED"
PATTERN_REMOVED = "PATTERN_REMOVED"

# (limit, is a lower bound): raising a lower bound or lowering an upper one tightens it.
_LIMITS: tuple[tuple[str, bool], ...] = (
    ("minimum", True), ("maximum", False), ("minLength", True), ("maxLength", False),
    ("minItems", True), ("maxItems", False),
)
_LIMIT_TITLES = {"minimum": "Minimum", "maximum": "Maximum", "minLength": "MinLength", "maxLength": "MaxLength",
                 "minItems": "MinItems", "maxItems": "MaxItems"}
_SIMPLE_TEXT = {
    PROPERTY_REMOVED: "Property {prop} was removed",
    TYPE_CHANGED: "Type changed from {old} to {new}",
    REQUIRED_ADDED: "Field {new} is newly required",
    REQUIRED_REMOVED: "Field {old} is no longer required",
    ENUM_RESTRICTED: "Enum value {old} was removed",
    ENUM_EXPANDED: "Enum value {new} was added",
    PATTERN_CHANGED: "Validation pattern changed from {old} to {new}",
    PATTERN_ADDED: "Validation pattern {new} was added",
    PATTERN_REMOVED: "Validation pattern {old} was removed",
    REQUIRED_DEFAULT_REMOVED: "Default value removed from required field {old}",
    DESCRIPTION_CHANGED: "Description field was changed from {old} to {new}",
    DEFAULT_CHANGED: "Default value was changed from {old} to {new}",
}


def _limit_types(name: str) -> tuple[str, str, str, str]:
    """(added, removed, tightened, relaxed) change types of a limit, e.g. MAX_ITEMS_DECREASED is tightened."""
    upper = "".join("_" + ch if ch.isupper() else ch.upper() for ch in name)
    lower_bound = name.startswith("min")
    return (f"{upper}_ADDED", f"{upper}_REMOVED", f"{upper}_{'INCREASED' if lower_bound else 'DECREASED'}",
            f"{upper}_{'DECREASED' if lower_bound else 'INCREASED'}")


def _limit_texts() -> dict[str, str]:
    texts = {}
    for name, _ in _LIMITS:
        added, removed, tightened, relaxed = _limit_types(name)
        title = _LIMIT_TITLES[name]
        texts[added] = title + " constraint {new} was added"
        texts[removed] = title + " constraint {old} was removed"
        for kind in (tightened, relaxed):
            texts[kind] = title + (" was increased" if kind.endswith("INCREASED") else " was decreased") + \
                " from {old} to {new}"
    return texts


_LIMIT_TEXT = _limit_texts()


@dataclass(frozen=True)
class Change:
    path: str
    type: str
    old: str = ""
    new: str = ""

    def description(self) -> str:
        """kro's one-line wording of the change (``Change.Description``)."""
        prop = self.path.rsplit(".", 1)[-1]
        if self.type == PROPERTY_ADDED:
            return f"{'Required' if self.new == 'required' else 'Optional'} property {prop} was added"
        text = _SIMPLE_TEXT.get(self.type) or _LIMIT_TEXT.get(self.type)
        if text is None:
            return f"Unknown change to {self.path}"
        return text.format(prop=prop, old=self.old, new=self.new)


@dataclass
class Report:
    breaking: list[Change] = field(default_factory=list)
    non_breaking: list[Change] = field(default_factory=list)

    @property
    def has_breaking_changes(self) -> bool:
        return bool(self.breaking)

    @property
    def has_changes(self) -> bool:
        return bool(self.breaking or self.non_breaking)

    def __str__(self) -> str:
        """kro's summary: the first three breaking changes, then how many more."""
        if not self.breaking:
            return "no breaking changes"
        parts = [c.description() for c in self.breaking[:SUMMARY_LIMIT]]
        if len(self.breaking) > SUMMARY_LIMIT:
            parts.append(f"and {len(self.breaking) - SUMMARY_LIMIT} more changes")
        return "; ".join(parts)

    def extend(self, other: Report) -> None:
        self.breaking.extend(other.breaking)
        self.non_breaking.extend(other.non_breaking)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _number(value: Any) -> str:
    """A limit as Go's ``strconv.FormatFloat(f, 'f', -1, 64)`` prints it (no exponent, no trailing ``.0``)."""
    number = float(value)
    if number.is_integer():
        return str(int(number))
    return format(Decimal(repr(number)), "f")


def _has_default(schema: Mapping[str, Any]) -> bool:
    return "default" in schema and schema["default"] is not None


def _props(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    props = schema.get("properties")
    return props if isinstance(props, Mapping) else {}


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def compare_schemas(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, path: str = "") -> Report:
    """Changes from ``old`` to ``new`` (two openAPIV3Schema nodes), walking properties and array items."""
    report = Report()
    if old is None and new is None:
        return report
    if old is None:
        report.non_breaking.append(Change(path, PROPERTY_ADDED))
        return report
    if new is None:
        report.breaking.append(Change(path, PROPERTY_REMOVED))
        return report
    if old.get("description", "") != new.get("description", ""):
        report.non_breaking.append(Change(f"{path}.description", DESCRIPTION_CHANGED, str(old.get("description", "")),
                                          str(new.get("description", ""))))
    old_default = _json(old["default"]) if _has_default(old) else ""
    new_default = _json(new["default"]) if _has_default(new) else ""
    if old_default != new_default:
        report.non_breaking.append(Change(f"{path}.default", DEFAULT_CHANGED, old_default, new_default))
    if old.get("type", "") != new.get("type", ""):
        report.breaking.append(Change(f"{path}.type", TYPE_CHANGED, str(old.get("type", "")),
                                      str(new.get("type", ""))))
        return report
    _compare_pattern(path, str(old.get("pattern", "")), str(new.get("pattern", "")), report)
    for name, lower in _LIMITS:
        _compare_limit(f"{path}.{name}", name, old.get(name), new.get(name), lower, report)
    _compare_properties(path, old, new, report)
    _compare_required(path, old, new, report)
    _compare_enum(path, old.get("enum"), new.get("enum"), report)
    _compare_items(path, old, new, report)
    return report


def _compare_pattern(path: str, old: str, new: str, report: Report) -> None:
    if old == new:
        return
    if not old:
        report.breaking.append(Change(f"{path}.pattern", PATTERN_ADDED, "", new))
    elif not new:
        report.non_breaking.append(Change(f"{path}.pattern", PATTERN_REMOVED, old, ""))
    else:
        report.breaking.append(Change(f"{path}.pattern", PATTERN_CHANGED, old, new))


def _compare_limit(path: str, name: str, old: Any, new: Any, lower: bool, report: Report) -> None:
    added, removed, tightened, relaxed = _limit_types(name)
    if old is None and new is None:
        return
    if old is None:
        report.breaking.append(Change(path, added, "", _number(new)))
    elif new is None:
        report.non_breaking.append(Change(path, removed, _number(old), ""))
    elif float(old) != float(new):
        tighter = float(new) > float(old) if lower else float(new) < float(old)
        (report.breaking if tighter else report.non_breaking).append(
            Change(path, tightened if tighter else relaxed, _number(old), _number(new)))


def _compare_properties(path: str, old: Mapping[str, Any], new: Mapping[str, Any], report: Report) -> None:
    old_props, new_props = _props(old), _props(new)
    for name in sorted(old_props):
        prop_path = f"{path}.properties.{name}"
        if name not in new_props:
            report.breaking.append(Change(prop_path, PROPERTY_REMOVED))
        else:
            report.extend(compare_schemas(old_props[name], new_props[name], prop_path))
    required = set(_strings(new.get("required")))
    for name in sorted(set(new_props) - set(old_props)):
        prop_path = f"{path}.properties.{name}"
        if name in required and not _has_default(new_props[name]):
            report.breaking.append(Change(prop_path, PROPERTY_ADDED, "required=false", "required=true"))
        else:
            report.non_breaking.append(Change(prop_path, PROPERTY_ADDED))


def _compare_required(path: str, old: Mapping[str, Any], new: Mapping[str, Any], report: Report) -> None:
    """Only properties that existed before count here; new ones were judged with their property."""
    old_required, new_required = set(_strings(old.get("required"))), set(_strings(new.get("required")))
    existing = set(_props(old))
    for name in sorted(new_required):
        if name in existing and name not in old_required:
            report.breaking.append(Change(f"{path}.required", REQUIRED_ADDED, "", name))
    for name in sorted(old_required - new_required):
        report.non_breaking.append(Change(f"{path}.required", REQUIRED_REMOVED, name, ""))
    old_props, new_props = _props(old), _props(new)
    for name in sorted(new_required & old_required & existing):
        if name in new_props and _has_default(old_props[name]) and not _has_default(new_props[name]):
            report.breaking.append(Change(f"{path}.required", REQUIRED_DEFAULT_REMOVED, name, ""))


def _compare_enum(path: str, old: Any, new: Any, report: Report) -> None:
    """An enum appearing or disappearing entirely is not compared (kro skips when either side is empty)."""
    if not isinstance(old, list) or not isinstance(new, list) or not old or not new:
        return
    old_values, new_values = {_json(v) for v in old}, {_json(v) for v in new}
    for value in sorted(old_values - new_values):
        report.breaking.append(Change(f"{path}.enum", ENUM_RESTRICTED, value, ""))
    for value in sorted(new_values - old_values):
        report.non_breaking.append(Change(f"{path}.enum", ENUM_EXPANDED, "", value))


def _compare_items(path: str, old: Mapping[str, Any], new: Mapping[str, Any], report: Report) -> None:
    if old.get("type") != "array" or new.get("type") != "array":
        return
    old_items, new_items = old.get("items"), new.get("items")
    old_has, new_has = isinstance(old_items, Mapping), isinstance(new_items, Mapping)
    if old_has and new_has:
        report.extend(compare_schemas(old_items, new_items, f"{path}.items"))
    elif old_has:
        report.breaking.append(Change(f"{path}.items", PROPERTY_REMOVED))
    elif new_has:
        report.non_breaking.append(Change(f"{path}.items", PROPERTY_ADDED))


def compare_versions(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> Report:
    """Compare the single version of two kro CRDs; raises ValueError (kro's text) when that shape is off."""
    if len(old) != 1 or len(new) != 1:
        raise ValueError(f"expected exactly one version in each CRD, got {len(old)} old and {len(new)} new versions")
    before, after = old[0], new[0]
    if before.get("name") != after.get("name"):
        return Report(breaking=[Change("version", TYPE_CHANGED, str(before.get("name")), str(after.get("name")))])
    schemas = []
    for label, version in (("old", before), ("new", after)):
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not isinstance(schema, Mapping):
            raise ValueError(f"{label} version {version.get('name')} has no schema")
        schemas.append(schema)
    report = compare_schemas(schemas[0], schemas[1])
    if before.get("served") and not after.get("served"):
        report.breaking.append(Change("version.served", TYPE_CHANGED, "true", "false"))
    if "status" in (before.get("subresources") or {}) and "status" not in (after.get("subresources") or {}):
        report.breaking.append(Change("version.subresources.status", PROPERTY_REMOVED))
    return report


def allows_breaking_changes(rgd: Mapping[str, Any]) -> bool:
    annotations = (rgd.get("metadata") or {}).get("annotations") or {}
    return annotations.get(ALLOW_BREAKING_ANNOTATION) == "true"


def update_refusal(existing: Mapping[str, Any], desired: Mapping[str, Any], *, allow_breaking: bool) -> str | None:
    """Why kro would refuse to update ``existing`` to ``desired`` (its error text), or None when it may."""
    name = (desired.get("metadata") or {}).get("name")
    try:
        report = compare_versions((existing.get("spec") or {}).get("versions") or [],
                                  (desired.get("spec") or {}).get("versions") or [])
    except ValueError as err:
        return f"failed to check schema compatibility: {err}"
    if report.has_breaking_changes and not allow_breaking:
        return f"cannot update CRD {name}: breaking changes detected: {report}"
    return None
