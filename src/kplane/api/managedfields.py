"""``metadata.managedFields``: who owns which fields, recorded on every write.

Follows k8s.io/apimachinery/pkg/util/managedfields/internal (managedfields.go, fieldmanager.go,
managedfieldsupdater.go, capmanagers.go, stripmeta.go, buildmanagerinfo.go, conflict.go) and
sigs.k8s.io/structured-merge-diff merge/update.go. A manager is identified by name, operation, subresource
and, for ``Update`` only, apiVersion; so one client updating through two versions holds two entries while
an applier always holds one.
"""

from __future__ import annotations

import copy
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from kplane.api.fieldcompare import added_fields, compare
from kplane.api.fieldset import LIST, MAP, STRIPPED, FieldSet, Path, TypedError, child_schema, path_string, shape
from kplane.api.fieldsv1 import decode_cached, encode_cached
from kplane.api.meta import json_bytes
from kplane.api.schema import Schema
from kplane.api.status import Cause, StatusError, bad_request, field_invalid, invalid

APPLY, UPDATE = "Apply", "Update"
MAX_UPDATE_MANAGERS = 10  # upstream DefaultMaxUpdateManagers
ANCIENT_CHANGES = "ancient-changes"
FIELD_MANAGER_MAX_LENGTH = 128
MAX_SUBRESOURCE_NAME_LENGTH = 256
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True, order=True)
class ManagerKey:
    """Upstream's manager identifier: the entry minus its fields, time (and apiVersion, for appliers)."""

    manager: str
    operation: str
    api_version: str
    subresource: str = ""

    def describe(self) -> str:
        """As conflict messages name a manager: ``"kubectl" with subresource "status" using apps/v1``."""
        text = f'"{self.manager}"'
        if self.subresource:
            text += f' with subresource "{self.subresource}"'
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text


@dataclass(frozen=True)
class Owned:
    fields: FieldSet
    api_version: str
    time: str | None = None


Managed = dict[ManagerKey, Owned]


def key_for(manager: str, operation: str, api_version: str, subresource: str = "") -> ManagerKey:
    return ManagerKey(manager or "unknown", operation, "" if operation == APPLY else api_version, subresource)


# --- wire form -------------------------------------------------------------------------------------

class _Decodes:
    """Ownership decoded from recently seen entry lists, by their JSON text. Every write decodes the live
    object's entries (and a patch, the copy it sent back), which rarely differ from the last write's. A hit
    must also equal the list it was decoded from, which rules out values JSON text cannot tell apart (NaN
    and null); callers get a fresh dict, since :data:`Managed` maps are built upon."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._seen: OrderedDict[bytes, tuple[Any, Managed]] = OrderedDict()

    def decode(self, entries: Any) -> Managed:
        raw = json_bytes(entries) if type(entries) is list else None
        if raw is None:
            return _decode_entries(entries)
        hit = self._seen.get(raw)
        if hit is not None and hit[0] == entries:
            self._seen.move_to_end(raw)
            return dict(hit[1])
        managed = _decode_entries(entries)
        self._seen[raw] = (orjson.loads(raw), dict(managed))
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return managed


def decode_managed_fields(entries: Any) -> Managed:
    """Entries to ownership; ``ValueError`` with upstream's wording when one cannot be understood."""
    return _DECODES.decode(entries)


def _decode_entries(entries: Any) -> Managed:
    managed: Managed = {}
    for i, entry in enumerate(entries or []):
        if not isinstance(entry, Mapping):
            raise ValueError(f"managed fields entry {i} is not an object")
        operation = entry.get("operation")
        if operation not in (APPLY, UPDATE):
            raise ValueError("operation must be `Apply` or `Update`")
        api_version = entry.get("apiVersion") or ""
        if not api_version:
            raise ValueError("apiVersion must not be empty")
        fields_type = entry.get("fieldsType") or ""
        if fields_type == "":
            raise ValueError(f"missing fieldsType in managed fields entry {i}")
        if fields_type != "FieldsV1":
            raise ValueError(f'invalid fieldsType "{fields_type}" in managed fields entry {i}')
        try:
            fields = decode_cached(entry.get("fieldsV1") or {})
        except ValueError as err:
            raise ValueError(f"error decoding versioned set: error decoding set: {err}") from None
        key = ManagerKey(str(entry.get("manager") or ""), operation,
                         "" if operation == APPLY else api_version, str(entry.get("subresource") or ""))
        managed[key] = Owned(fields, api_version, entry.get("time"))
    return managed


_DECODES = _Decodes(4096)


def _seconds(time: str | None) -> int:
    if not time or not _RFC3339.match(time):
        return 0
    try:
        return int(datetime.fromisoformat(time.upper()).timestamp())
    except ValueError:
        return 0


def encode_managed_fields(managed: Managed) -> list[dict[str, Any]]:
    """Entries in upstream order: Apply first, then by time (seconds), manager, apiVersion, subresource."""
    entries = []
    for key, owned in managed.items():
        entry: dict[str, Any] = {"manager": key.manager, "operation": key.operation,
                                 "apiVersion": owned.api_version}
        if owned.time is not None:
            entry["time"] = owned.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = encode_cached(owned.fields)
        if key.subresource:
            entry["subresource"] = key.subresource
        entries.append(entry)
    if len(entries) > 1:
        entries.sort(key=lambda e: (e["operation"], _seconds(e.get("time")), e["manager"], e["apiVersion"],
                                    e.get("subresource", "")))
    return entries


def check_wire_shape(entries: Any, kind: str, api_version: str) -> None:
    """400 for managedFields a typed decoder would reject before any handler logic runs."""
    version = api_version.rsplit("/", 1)[-1]
    prefix = f'{kind} in version "{version}" cannot be handled as a {kind}: '

    def fail(detail: str) -> StatusError:
        return bad_request(prefix + detail)

    if entries is None:
        return
    if not isinstance(entries, list):
        raise fail(f"json: cannot unmarshal {_json_type(entries)} into Go struct field "
                   "ObjectMeta.metadata.managedFields of type []v1.ManagedFieldsEntry")
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise fail(f"json: cannot unmarshal {_json_type(entry)} into Go struct field "
                       "ObjectMeta.metadata.managedFields of type v1.ManagedFieldsEntry")
        for name in ("manager", "operation", "apiVersion", "fieldsType", "subresource"):
            if entry.get(name) is not None and not isinstance(entry[name], str):
                raise fail(f"json: cannot unmarshal {_json_type(entry[name])} into Go struct field "
                           f"ManagedFieldsEntry.metadata.managedFields.{name} of type string")
        time = entry.get("time")
        if time is not None and not (isinstance(time, str) and _RFC3339.match(time)):
            raise fail(f'parsing time "{time}" as "2006-01-02T15:04:05Z07:00": '
                       f'cannot parse "{time}" as "2006"')


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def validate_field_manager(manager: str, field_path: str) -> list[Cause]:
    """Upstream ``ValidateFieldManager``: at most 128 bytes, printable characters only."""
    causes = []
    if len(manager.encode()) > FIELD_MANAGER_MAX_LENGTH:
        causes.append(Cause("FieldValueTooLong",
                            f"Too long: may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes", field_path))
    for i, ch in enumerate("" if manager.isprintable() else manager):
        if not ch.isprintable():
            causes.append(field_invalid(field_path, manager,
                                        f"invalid character U+{ord(ch):04X} (at position {i})"))
    return causes


def validate_managed_fields(entries: Any) -> list[Cause]:
    """Upstream ``ValidateManagedFields``: operation, fieldsType, manager and subresource of each entry."""
    causes: list[Cause] = []
    for i, entry in enumerate(entries or []):
        at = f"metadata.managedFields[{i}]"
        operation = entry.get("operation", "")
        if operation not in (APPLY, UPDATE):
            causes.append(field_invalid(f"{at}.operation", operation, "must be `Apply` or `Update`"))
        fields_type = entry.get("fieldsType", "")
        if fields_type and fields_type != "FieldsV1":
            causes.append(field_invalid(f"{at}.fieldsType", fields_type, "must be `FieldsV1`"))
        causes += validate_field_manager(entry.get("manager", ""), f"{at}.manager")
        if len(entry.get("subresource", "")) > MAX_SUBRESOURCE_NAME_LENGTH:
            causes.append(Cause("FieldValueTooLong",
                                f"Too long: may not be more than {MAX_SUBRESOURCE_NAME_LENGTH} bytes",
                                f"{at}.subresource"))
    return causes


def manager_from_user_agent(ua: str) -> str:
    """A non-apply write's default manager: User-Agent up to its first ``/``, printable, ≤128 bytes."""
    out = ""
    for ch in ua.split("/", 1)[0]:
        if not ch.isprintable():
            continue
        if len((out + ch).encode()) > FIELD_MANAGER_MAX_LENGTH:
            break
        out += ch
    return out


# --- ownership transfer ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Conflict:
    manager: ManagerKey
    path: Path


class Conflicts(Exception):
    """Fields another manager owns that an apply would change."""

    def __init__(self, conflicts: list[Conflict]) -> None:
        self.conflicts = conflicts
        super().__init__(conflict_message(conflicts))


def conflict_message(conflicts: list[Conflict]) -> str:
    """Upstream's ``getConflictMessage`` wording."""
    if len(conflicts) == 1:
        c = conflicts[0]
        return f"Apply failed with 1 conflict: conflict with {c.manager.describe()}: {path_string(c.path)}"
    lines = []
    for manager in sorted({c.manager for c in conflicts}, key=lambda k: k.describe()):
        lines.append(f"conflicts with {manager.describe()}:")
        lines += [f"- {path_string(c.path)}" for c in conflicts if c.manager == manager]
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


def conflict_error(conflicts: list[Conflict]) -> StatusError:
    """409 Conflict with one ``FieldManagerConflict`` cause per field, as ``NewApplyConflict``."""
    causes = [Cause("FieldManagerConflict", f"conflict with {c.manager.describe()}", path_string(c.path))
              for c in conflicts]
    return StatusError(409, "Conflict", conflict_message(conflicts), causes=causes)


def take_ownership(live: Any, new: Any, schema: Schema, managed: Managed, *, actor: ManagerKey | None,
                   force: bool, reset_fields: FieldSet | None) -> tuple[Managed, FieldSet]:
    """Other managers lose the fields ``new`` changes or drops; returns them and what ``new`` changed.

    Without ``force`` a changed field another manager owns is a conflict (structured-merge-diff
    ``Updater.update``). Entries left empty disappear.
    """
    cmp = compare(live, new, schema)
    if reset_fields is not None:
        cmp = cmp.exclude(reset_fields)
    changed = cmp.modified.union(cmp.added)
    if not force:
        conflicts = [Conflict(key, path) for key in sorted(managed) if key != actor
                     for path in managed[key].fields.intersection(changed).paths()]
        if conflicts:
            raise Conflicts(conflicts)
    result: Managed = {}
    for key, owned in managed.items():
        fields = owned.fields if key == actor else owned.fields.difference(changed).difference(cmp.removed)
        if fields:
            result[key] = replace(owned, fields=fields)
    return result, changed


def cap_update_managers(managed: Managed, limit: int = MAX_UPDATE_MANAGERS) -> Managed:
    """Fold the oldest Update entries into per-version ``ancient-changes`` buckets beyond ``limit``."""
    updaters = [k for k in managed if k.operation == UPDATE]
    if len(updaters) <= limit:
        return managed
    updaters.sort(key=lambda k: (_seconds(managed[k].time), k))
    result = dict(managed)
    first_by_version: dict[str, ManagerKey] = {}
    count = len(updaters)
    for key in updaters:
        if count <= limit:
            break
        owned = result[key]
        bucket = ManagerKey(ANCIENT_CHANGES, UPDATE, owned.api_version)
        first = first_by_version.get(owned.api_version)
        if first is None:
            first_by_version[owned.api_version] = key
            continue
        if bucket not in result:
            result[bucket] = result.pop(first)
        merged = owned.fields.union(result[bucket].fields)
        result[bucket] = Owned(merged, owned.api_version, owned.time)
        del result[key]
        count -= 1
    return result


def strip_meta(managed: Managed, key: ManagerKey) -> Managed:
    """Drop identity and system metadata from one manager's set; drop the entry if nothing is left."""
    owned = managed.get(key)
    if owned is None:
        return managed
    result = dict(managed)
    fields = owned.fields.difference(STRIPPED)
    if fields:
        result[key] = replace(owned, fields=fields)
    else:
        del result[key]
    return result


# --- non-apply writes ------------------------------------------------------------------------------

def _entries(obj: Mapping[str, Any] | None) -> Any:
    meta = (obj or {}).get("metadata")
    return meta.get("managedFields") if isinstance(meta, Mapping) else None


def _is_reset(entries: Any) -> bool:
    """``[]`` or ``[{}]`` asks to clear managedFields (upstream ``isResetManagedFields``)."""
    return isinstance(entries, list) and (not entries or (len(entries) == 1 and entries[0] == {}))


def _decode_or_empty(entries: Any) -> Managed:
    try:
        return decode_managed_fields(entries)
    except ValueError:
        return {}


def _starting_ownership(old: Mapping[str, Any] | None, new: Mapping[str, Any], subresource: str) -> Managed:
    """The client's managedFields when it sent usable ones, else the live object's (``decodeLiveOrNew``)."""
    live = _decode_or_empty(_entries(old))
    if subresource:
        return live
    sent = _entries(new)
    if _is_reset(sent):
        return {}
    try:
        managed = decode_managed_fields(sent)
    except ValueError:
        return live
    return managed or live


def without_managed_fields(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(dict(obj or {}))
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return out


def set_managed_fields(obj: dict[str, Any], managed: Managed) -> dict[str, Any]:
    meta = obj.setdefault("metadata", {})
    entries = encode_managed_fields(managed)
    if entries:
        meta["managedFields"] = entries
    else:
        meta.pop("managedFields", None)
    return obj


def record_update(old: dict[str, Any] | None, new: dict[str, Any], *, manager: str, schema: Schema,
                  api_version: str, now: str, subresource: str = "",
                  reset_fields: FieldSet | None = None) -> dict[str, Any]:
    """``new`` with managedFields after a create, update or non-apply patch by ``manager``.

    The manager's Update entry gains what changed; others lose it. Bad managedFields sent by the client
    are ignored in favour of the live ones, as upstream does; only undecodable shapes are a 400 and entries
    that survive but break the metadata rules a 422.
    """
    sent = _entries(new)
    check_wire_shape(sent, str(new.get("kind", "")), api_version)
    if old is None and sent is None and reset_fields is None:
        created = _created(new, manager=manager, schema=schema, api_version=api_version, now=now,
                           subresource=subresource)
        if created is not None:
            return created
    managed = _starting_ownership(old, new, subresource)
    target = _shallow_without_managed_fields(new)
    key = key_for(manager, UPDATE, api_version, subresource)
    try:
        if old is None and reset_fields is None:
            managed, changed = _take_all(target, schema, managed)
        else:
            managed, changed = take_ownership(_shallow_without_managed_fields(old), target, schema, managed,
                                              actor=None, force=True, reset_fields=reset_fields)
    except TypedError:
        return _restore_live(new, old)
    changed = changed.difference(STRIPPED)
    if changed:
        previous = managed.get(key)
        fields = previous.fields.union(changed) if previous else changed
        managed = {**managed, key: Owned(fields, api_version, now)}
    result = set_managed_fields(target, cap_update_managers(managed))
    causes = validate_managed_fields(_entries(result))
    if causes:
        group = api_version.split("/", 1)[0] if "/" in api_version else ""
        raise invalid(str(new.get("kind", "")), group, str(new.get("metadata", {}).get("name", "")), causes)
    return result


class _NeedsGeneralWalk(Exception):
    """An associative list, or a key that is not text: :func:`_created_fields_v1` leaves it to the set code."""


_STRIPPED_META = frozenset(("name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
                            "generation", "managedFields", "resourceVersion"))
"""The ``metadata`` children of :data:`STRIPPED`; with ``apiVersion``, ``kind`` and ``metadata`` itself."""


def _created(new: dict[str, Any], *, manager: str, schema: Schema, api_version: str, now: str,
             subresource: str) -> dict[str, Any] | None:
    """:func:`record_update` for a create that sent no managedFields, without building field sets: the
    one Update entry owns every field ``new`` sets, written straight to ``fieldsV1``. ``None`` when the
    object holds an associative list (its keys need the general walk)."""
    try:
        fields_v1 = _created_fields_v1(new, schema)
    except _NeedsGeneralWalk:
        return None
    target = _shallow_without_managed_fields(new)
    if not fields_v1:
        target.setdefault("metadata", {}).pop("managedFields", None)
        return target
    key = key_for(manager, UPDATE, api_version, subresource)
    entry: dict[str, Any] = {"manager": key.manager, "operation": UPDATE, "apiVersion": api_version,
                             "time": now, "fieldsType": "FieldsV1", "fieldsV1": fields_v1}
    if subresource:
        entry["subresource"] = subresource
    target.setdefault("metadata", {})["managedFields"] = [entry]
    causes = validate_managed_fields([entry])
    if causes:
        group = api_version.split("/", 1)[0] if "/" in api_version else ""
        raise invalid(str(new.get("kind", "")), group, str(new.get("metadata", {}).get("name", "")), causes)
    return target


def _created_fields_v1(obj: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    """``to_fields_v1(added_fields(obj, schema).difference(STRIPPED))``, emitted in one walk: keys sort as
    upstream sorts field elements (by name), a member with children gets its ``"."`` entry, and the
    stripped paths lose their membership but keep any children, as the set difference would."""
    out: dict[str, Any] = {}
    for name in _text_keys(obj):
        value = obj[name]
        sub = None if type(value) in _SCALARS else child_schema(schema, name)
        inner: dict[str, Any] | None
        if name in ("apiVersion", "kind", "metadata"):
            stripped = _STRIPPED_META if name == "metadata" else frozenset()
            inner = _fields_of(value, sub, member=False, stripped=stripped) if _has_children(value, sub) else {}
        else:
            inner = _fields_of(value, sub, member=True) if _has_children(value, sub) else None
        if inner is None:
            out["f:" + name] = {}
        elif inner:
            out["f:" + name] = inner
    return out


def _text_keys(value: Mapping[str, Any]) -> list[str]:
    """The keys in upstream's order for field elements (by name); other key types need the general walk."""
    if any(type(name) is not str for name in value):
        raise _NeedsGeneralWalk
    return sorted(value)


_SCALARS = frozenset((str, int, float, bool, type(None)))
"""Types whose values are leaves under any schema (``shape`` calls them scalar or atomic)."""


def _has_children(value: Any, schema: Schema | None) -> bool:
    if type(value) in _SCALARS:
        return False
    kind = shape(schema, value)
    if kind == LIST and value:
        raise _NeedsGeneralWalk
    return kind == MAP and bool(value)


def _fields_of(value: Mapping[str, Any], schema: Schema | None, *, member: bool,
               stripped: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The ``fieldsV1`` of a non-empty granular map, as ``_emit`` writes the set ``_added`` builds."""
    out: dict[str, Any] = {".": {}} if member else {}
    for name in _text_keys(value):
        sub_value = value[name]
        if type(sub_value) not in _SCALARS and _has_children(sub_value, sub := child_schema(schema, name)):
            inner = _fields_of(sub_value, sub, member=name not in stripped)
            if inner:
                out["f:" + name] = inner
        elif name not in stripped:
            out["f:" + name] = {}
    return out


def _take_all(created: dict[str, Any], schema: Schema, managed: Managed) -> tuple[Managed, FieldSet]:
    """``take_ownership`` from nothing (a create, forced, nothing reset): every field of ``created`` is
    added, so no comparison is needed and others keep only what it does not set."""
    changed = added_fields(created, schema)
    result: Managed = {}
    for key, owned in managed.items():
        fields = owned.fields.difference(changed)
        if fields:
            result[key] = replace(owned, fields=fields)
    return result, changed


def _shallow_without_managed_fields(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    """``obj`` minus managedFields, copying only the top level and metadata: ownership is computed by
    reading the object, and the result's metadata is the only part written to afterwards."""
    out = dict(obj or {})
    meta = out.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return out


def _restore_live(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """When ownership cannot be computed, keep the live managedFields rather than lose them."""
    out = without_managed_fields(new)
    entries = _entries(old)
    if entries:
        out.setdefault("metadata", {})["managedFields"] = copy.deepcopy(entries)
    return out

