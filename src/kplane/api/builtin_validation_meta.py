"""Object metadata, labels, annotations and label selectors: the checks every built-in kind shares.

Mirrors ``apimachinery/pkg/api/validation/objectmeta.go`` and ``metav1/validation``: the same field paths, the
same message per problem, one cause per message. The cause helpers here add the ``field.Error`` flavours
that :mod:`kplane.api.status` lacks (Required with a detail, Duplicate, TooLong, TooMany) and render bad
values the way Go's ``%#v`` does for the maps upstream reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from kplane.api import names
from kplane.api.status import Cause, field_forbidden, field_invalid, field_required

NameFn = Callable[[str, bool], list[str]]

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
FIELD_IMMUTABLE = "field is immutable"


def required(path: str, detail: str = "") -> Cause:
    if not detail:
        return field_required(path)
    return Cause("FieldValueRequired", f"Required value: {detail}", path)


def duplicate(path: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {go_value(value)}", path)


def too_long(path: str, limit: int) -> Cause:
    unit = "byte" if limit == 1 else "bytes"
    return Cause("FieldValueTooLong", f"Too long: may not be more than {limit} {unit}", path)


def too_many(path: str, actual: int, limit: int) -> Cause:
    return Cause("FieldValueTooMany", f"Too many: {actual}: must have at most {limit} items", path)


def invalid_raw(path: str, rendered: str, detail: str) -> Cause:
    """FieldValueInvalid with a value already rendered in Go's style."""
    return Cause("FieldValueInvalid", f"Invalid value: {rendered}: {detail}", path)


def go_value(value: Any) -> str:
    """How ``field.Error`` prints a bad value: strings quoted, scalars bare, string maps as ``%#v``."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values()):
        inner = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(value.items()))
        return "map[string]string{" + inner + "}"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def int_or_string(value: Any) -> str:
    """``intstr.IntOrString`` is a Stringer: field errors print it bare, ``25%`` or ``3``."""
    return str(value)


def key_path(base: str, key: str) -> str:
    """``field.Path.Key``: ``data[key.name]``."""
    return f"{base}[{key}]"


def nonnegative(path: str, value: Any) -> list[Cause]:
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return [field_invalid(path, value, "must be greater than or equal to 0")]
    return []


def immutable(path: str, new: Any, old: Any) -> list[Cause]:
    if new == old:
        return []
    return [invalid_raw(path, go_value(new), FIELD_IMMUTABLE)]


def validate_label_name(path: str, key: str) -> list[Cause]:
    return [field_invalid(path, key, msg) for msg in names.is_qualified_name(key)]


def validate_labels(path: str, labels: Any) -> list[Cause]:
    if not isinstance(labels, Mapping):
        return []
    causes: list[Cause] = []
    for key, value in labels.items():
        causes += validate_label_name(path, key)
        for msg in names.is_valid_label_value(str(value)):
            causes.append(field_invalid(path, value, msg))
    return causes


def validate_annotations(path: str, annotations: Any) -> list[Cause]:
    if not isinstance(annotations, Mapping):
        return []
    causes: list[Cause] = []
    for key in annotations:
        causes += [field_invalid(path, key, msg) for msg in names.is_qualified_name(key.lower())]
    size = sum(len(k) + len(str(v)) for k, v in annotations.items())
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return causes


def _validate_owner_references(path: str, refs: Any) -> list[Cause]:
    causes: list[Cause] = []
    controllers = []
    for i, ref in enumerate(refs if isinstance(refs, list) else []):
        here = f"{path}[{i}]"
        version = str(ref.get("apiVersion", "")).rsplit("/", 1)[-1]
        for field, value, what in (("apiVersion", version, "version"), ("kind", ref.get("kind", ""), "kind"),
                                   ("name", ref.get("name", ""), "name"), ("uid", ref.get("uid", ""), "uid")):
            if not value:
                causes.append(field_invalid(f"{here}.{field}", value, f"{what} must not be empty"))
        if ref.get("controller"):
            controllers.append(f"{ref.get('kind', '')}/{ref.get('name', '')}")
    if len(controllers) > 1:
        listed = ", ".join(controllers)
        causes.append(field_invalid(path, refs, "Only one reference can have Controller set to true. "
                                                f"Found \"true\" in references for {listed}"))
    return causes


def validate_object_meta(obj: Mapping[str, Any], namespaced: bool, name_fn: NameFn,
                         path: str = "metadata") -> list[Cause]:
    """``ValidateObjectMeta``: name or generateName, namespace, labels, annotations, owners, finalizers."""
    meta = obj.get("metadata") or {}
    causes: list[Cause] = []
    name, generate = meta.get("name") or "", meta.get("generateName") or ""
    if generate:
        causes += [field_invalid(f"{path}.generateName", generate, m) for m in name_fn(generate, True)]
    if not name:
        if not generate:
            causes.append(required(f"{path}.name", "name or generateName is required"))
    else:
        causes += [field_invalid(f"{path}.name", name, m) for m in name_fn(name, False)]
    namespace = meta.get("namespace") or ""
    if namespaced:
        if not namespace:
            causes.append(required(f"{path}.namespace"))
        else:
            causes += [field_invalid(f"{path}.namespace", namespace, m)
                       for m in names.is_dns1123_label(namespace)]
    elif namespace:
        causes.append(field_forbidden(f"{path}.namespace", "not allowed on this type"))
    causes += validate_labels(f"{path}.labels", meta.get("labels"))
    causes += validate_annotations(f"{path}.annotations", meta.get("annotations"))
    causes += _validate_owner_references(f"{path}.ownerReferences", meta.get("ownerReferences"))
    for i, finalizer in enumerate(meta.get("finalizers") or []):
        causes += [field_invalid(f"{path}.finalizers[{i}]", finalizer, m)
                   for m in names.is_qualified_name(str(finalizer))]
    return causes


def validate_template_meta(meta: Any, path: str) -> list[Cause]:
    """Pod template metadata: only labels and annotations matter (the template has no name)."""
    if not isinstance(meta, Mapping):
        return []
    return validate_labels(f"{path}.labels", meta.get("labels")) + \
        validate_annotations(f"{path}.annotations", meta.get("annotations"))


def validate_label_selector(path: str, selector: Any) -> list[Cause]:
    """``metav1validation.ValidateLabelSelector``."""
    if not isinstance(selector, Mapping):
        return []
    causes = validate_labels(f"{path}.matchLabels", selector.get("matchLabels"))
    for i, req in enumerate(selector.get("matchExpressions") or []):
        here = f"{path}.matchExpressions[{i}]"
        op, values = req.get("operator"), req.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                causes.append(required(f"{here}.values",
                                       "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                detail = "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                causes.append(field_forbidden(f"{here}.values", detail))
        else:
            causes.append(field_invalid(f"{here}.operator", op, "not a valid selector operator"))
        causes += validate_label_name(f"{here}.key", str(req.get("key", "")))
    return causes


def selector_is_empty(selector: Any) -> bool:
    if not isinstance(selector, Mapping):
        return True
    return not (selector.get("matchLabels") or selector.get("matchExpressions"))


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.get("matchExpressions") or []:
        key, op, values = req.get("key"), req.get("operator"), req.get("values") or []
        present = key in labels
        if (op == "In" and (not present or labels[key] not in values)) \
                or (op == "NotIn" and present and labels[key] in values) \
                or (op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
    return True
