"""Server-side apply: merge an applied configuration into the live object and move field ownership.

Semantics of sigs.k8s.io/structured-merge-diff (typed/merge.go, typed/remove.go, merge/update.go) wrapped
the way kube-apiserver wraps them (k8s.io/apimachinery/pkg/util/managedfields/internal: structuredmerge.go,
lastappliedmanager.go, lastappliedupdater.go, versioncheck.go, stripmeta.go):

1. merge: the config wins for scalars and atomic values; granular maps merge key by key; list-map and set
   items merge by key, keeping the live-only items in place;
2. prune: what this manager applied last time and no longer applies is removed, unless another manager
   (or this manager's new config) still owns it;
3. ownership: other managers lose the fields whose values the apply changed; without ``force`` that is a
   409 conflict instead.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kplane.api.fieldcompare import compare
from kplane.api.fieldset import (
    ATOMIC,
    LIST,
    MAP,
    SCALAR,
    FieldSet,
    PathElement,
    TypedError,
    child_schema,
    ensure_named_fields_are_members,
    freeze,
    go_json,
    item_element,
    item_schema,
    reject_duplicates,
    shape,
    typed_fieldset,
)
from kplane.api.managedfields import (
    APPLY,
    Conflicts,
    Managed,
    ManagerKey,
    Owned,
    conflict_error,
    decode_managed_fields,
    set_managed_fields,
    strip_meta,
    take_ownership,
    validate_field_manager,
    without_managed_fields,
)
from kplane.api.schema import Schema
from kplane.api.status import Cause, StatusError, bad_request, invalid

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
KUBECTL = "kubectl"  # the only manager whose apply may take over client-side-apply fields (upstream)

_ABSENT: Any = object()


# --- merging ---------------------------------------------------------------------------------------

def merge(lhs: Any, rhs: Any, schema: Schema | None) -> Any:
    """``rhs`` (the applied config) merged onto ``lhs`` (the live object)."""
    if rhs is _ABSENT:
        return copy.deepcopy(lhs)
    if lhs is _ABSENT:
        return copy.deepcopy(rhs)
    kind = shape(schema, rhs)
    if shape(schema, lhs) != kind and lhs is not None and rhs is not None:
        kind = ATOMIC
    if kind in (SCALAR, ATOMIC) or (not lhs and not rhs):
        return copy.deepcopy(rhs)
    if kind == MAP:
        left = lhs if isinstance(lhs, Mapping) else {}
        right = rhs if isinstance(rhs, Mapping) else {}
        return {name: merge(left.get(name, _ABSENT), right.get(name, _ABSENT), child_schema(schema, name))
                for name in {**left, **right}}
    assert schema is not None
    return _merge_items(lhs if isinstance(lhs, list) else [], rhs if isinstance(rhs, list) else [], schema)


def _merge_items(lhs: list[Any], rhs: list[Any], schema: Schema) -> list[Any]:
    """Merge associative lists: config order for shared items, live-only items kept where they stood.

    The interleaving (a shared live item waits until it is the next shared item in config order) is the
    ordering structured-merge-diff's ``mergingWalker.visitListItems`` produces; kubectl users see it.
    """
    sub = item_schema(schema)
    r_pes = [item_element(schema, item, (("i", i),)) for i, item in enumerate(rhs)]
    l_pes = [item_element(schema, item, (("i", i),)) for i, item in enumerate(lhs)]
    r_items = dict(zip(r_pes, rhs, strict=True))
    l_items: dict[PathElement, Any] = {}
    for pe, item in zip(l_pes, lhs, strict=True):
        l_items[pe] = _ABSENT if pe in l_items else item  # a duplicated live key merges as if absent
    shared = iter([pe for pe in r_pes if pe in l_items])
    next_shared = next(shared, None)
    out: list[Any] = []
    done: set[PathElement] = set()
    li = ri = 0
    while li < len(l_pes) or ri < len(r_pes):
        if li < len(l_pes) and ri < len(r_pes):
            pe = l_pes[li]
            if pe == r_pes[ri]:
                out.append(merge(l_items[pe], r_items[pe], sub))
                done.add(pe)
                li, ri = li + 1, ri + 1
                next_shared = next(shared, None)
                continue
            if pe in r_items and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < len(l_pes):
            pe = l_pes[li]
            if pe not in r_items:
                out.append(copy.deepcopy(lhs[li]))
                li += 1
                continue
            if pe in done:
                li += 1
        if ri < len(r_pes):
            pe = r_pes[ri]
            done.add(pe)
            out.append(merge(l_items.get(pe, _ABSENT), r_items[pe], sub))
            ri += 1
            if next_shared == pe:
                next_shared = next(shared, None)
    return out


# --- removing --------------------------------------------------------------------------------------

def remove_items(v: Any, fs: FieldSet, schema: Schema | None) -> Any:
    """``v`` without the paths in ``fs`` (whole subtrees); a container emptied this way becomes null."""
    kind = shape(schema, v)
    if kind in (SCALAR, ATOMIC) or not v:
        return v if kind in (SCALAR, ATOMIC) else None
    if kind == MAP:
        out = {}
        for name, sub in v.items():
            pe = ("f", name)
            if pe in fs.members:
                continue
            below = fs.with_prefix(pe)
            out[name] = remove_items(sub, below, child_schema(schema, name)) if below else sub
        return out or None
    assert schema is not None
    items = []
    for i, item in enumerate(v):
        pe = item_element(schema, item, (("i", i),))
        if pe in fs.members:
            continue
        below = fs.with_prefix(pe)
        items.append(remove_items(item, below, item_schema(schema)) if below else item)
    return items or None


def _named(fs: FieldSet, schema: Schema) -> FieldSet:
    return ensure_named_fields_are_members(fs, schema)


def prune(merged: Any, managed: Managed, applier: ManagerKey, last: FieldSet, schema: Schema) -> Any:
    """Remove what ``applier`` owned before and no longer applies, unless someone still owns it.

    Composed as upstream's ``Updater.prune``: remove the last-applied items, add back whatever any
    manager owns, then only drop what the applier itself used to own (so unowned items survive).
    """
    if not last:
        return merged
    last_named = _named(last, schema)
    first_cut = remove_items(merged, last_named, schema)
    owned = FieldSet()
    for entry in managed.values():
        owned = owned.union(entry.fields)
    merged_set = _named(typed_fieldset(merged, schema), schema)
    keep = _named(typed_fieldset(first_cut, schema), schema).union(_named(owned, schema))
    second_cut = remove_items(merged, merged_set.difference(keep), schema)
    lost = merged_set.difference(_named(typed_fieldset(second_cut, schema), schema))
    return remove_items(merged, lost.intersection(last_named), schema)


# --- one apply -------------------------------------------------------------------------------------

def _apply_once(live: dict[str, Any], config: dict[str, Any], managed: Managed, key: ManagerKey, *,
                schema: Schema, api_version: str, force: bool, now: str,
                reset_fields: FieldSet | None) -> tuple[dict[str, Any], Managed]:
    merged = merge(live, config, schema) or {}
    previous = managed.get(key)
    applied_set = typed_fieldset(config, schema)
    if reset_fields is not None:
        applied_set = applied_set.recursive_difference(reset_fields)
    managers = {**managed, key: Owned(applied_set, api_version, previous.time if previous else None)}
    result = prune(merged, managers, key, previous.fields if previous else FieldSet(), schema) or {}
    managers, _ = take_ownership(live, result, schema, managers, actor=key, force=force,
                                 reset_fields=reset_fields)
    managers = strip_meta(managers, key)
    if freeze(result) == freeze(live):
        return copy.deepcopy(live), managers
    if key in managers:
        managers[key] = replace(managers[key], time=now)
    return result, managers


def _allowed_by_last_applied(live: dict[str, Any], schema: Schema, api_version: str) -> FieldSet | None:
    """Fields whose live values still match the client-side-apply annotation (``lastappliedmanager.go``)."""
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return None
    try:
        last = json.loads(text)
        if not isinstance(last, dict) or last.get("apiVersion") != api_version:
            return None
        cmp = compare(last, live, schema)
        mine = typed_fieldset(last, schema)
        return mine.difference(cmp.modified).difference(cmp.added).difference(cmp.removed)
    except (ValueError, TypedError):
        return None


def _sync_last_applied(result: dict[str, Any], config: Mapping[str, Any]) -> None:
    """Keep an existing last-applied annotation in step with kubectl's server-side applies."""
    annotations = (result.get("metadata") or {}).get("annotations") or {}
    if not annotations.get(LAST_APPLIED):
        return
    snapshot = copy.deepcopy(dict(config))
    applied_annotations = (snapshot.get("metadata") or {}).get("annotations")
    if isinstance(applied_annotations, dict):
        applied_annotations.pop(LAST_APPLIED, None)
    annotations[LAST_APPLIED] = go_json(snapshot) + "\n"


def _drop_nulls(v: Any, schema: Schema | None) -> Any:
    """Nulls vanish as they do when the merged object becomes a typed one, except for nullable fields."""
    kind = shape(schema, v)
    if kind == MAP and isinstance(v, dict):
        out = {}
        for name, sub in v.items():
            sub_schema = child_schema(schema, name)
            if sub is None and not (sub_schema is not None and sub_schema.get("nullable")):
                continue
            out[name] = _drop_nulls(sub, sub_schema)
        return out
    if kind == LIST and isinstance(v, list):
        return [_drop_nulls(item, item_schema(schema)) for item in v]
    return v


def _gvk(obj: Mapping[str, Any]) -> str:
    api_version = str(obj.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}, Kind={obj.get('kind', '')}"


def _typed_failure(what: str, obj: Mapping[str, Any], err: TypedError) -> StatusError:
    meta = obj.get("metadata") or {}
    where = f"{meta.get('namespace', '')}/{meta.get('name', '')}; {_gvk(obj)}"
    return StatusError(500, "", f"failed to create typed {what} object ({where}): {err}")


def _check_request(applied: Any, live: Mapping[str, Any] | None, manager: str, api_version: str) -> None:
    if not manager:
        cause = Cause("FieldValueRequired", "Required value: is required for apply patch", "fieldManager")
        raise invalid("PatchOptions", "meta.k8s.io", "", [cause])
    causes = validate_field_manager(manager, "fieldManager")
    if causes:
        raise invalid("PatchOptions", "meta.k8s.io", "", causes)
    if not isinstance(applied, Mapping):
        raise bad_request("the body of the apply patch must be an object")
    kind = live.get("kind") if live else applied.get("kind")
    if applied.get("apiVersion") != api_version or applied.get("kind") != kind:
        raise bad_request(f"invalid object type: {_gvk(applied)}")
    meta = applied.get("metadata")
    if isinstance(meta, Mapping) and meta.get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")


def server_side_apply(live: dict[str, Any] | None, applied: dict[str, Any], *, manager: str, schema: Schema,
                      force: bool, api_version: str, now: str, subresource: str = "",
                      reset_fields: FieldSet | None = None) -> dict[str, Any]:
    """The object after ``manager`` applies ``applied`` (not stored yet), with managedFields updated.

    ``live`` is ``None`` when the apply creates the object. ``reset_fields`` are the paths the endpoint
    ignores (upstream ``GetResetFields``: ``status`` on the main resource, the rest on ``/status``).
    """
    _check_request(applied, live, manager, api_version)
    try:
        managed = decode_managed_fields(((live or {}).get("metadata") or {}).get("managedFields"))
    except ValueError as err:
        raise StatusError(500, "", f"failed to decode managed fields: {err}") from None
    base = without_managed_fields(live)
    config = copy.deepcopy(dict(applied))
    try:
        reject_duplicates(config, schema)
    except TypedError as err:
        raise _typed_failure("patch", config, err) from None
    try:
        typed_fieldset(base, schema)
    except TypedError as err:
        raise _typed_failure("live", base, err) from None
    key = ManagerKey(manager, APPLY, "", subresource)

    def attempt(forced: bool) -> tuple[dict[str, Any], Managed]:
        return _apply_once(base, config, managed, key, schema=schema, api_version=api_version, force=forced,
                           now=now, reset_fields=reset_fields)

    try:
        result, managed = attempt(force)
    except Conflicts as conflicts:
        allowed = _allowed_by_last_applied(base, schema, api_version) if manager == KUBECTL else None
        if allowed is None:
            raise conflict_error(conflicts.conflicts) from None
        remaining = [c for c in conflicts.conflicts if c.path not in allowed]
        if remaining:
            raise conflict_error(remaining) from None
        result, managed = attempt(True)
    result = _drop_nulls(result, schema)
    if manager == KUBECTL:
        _sync_last_applied(result, applied)
    return set_managed_fields(result, managed)
