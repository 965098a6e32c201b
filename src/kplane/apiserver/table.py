"""``meta.k8s.io/v1`` Table output, the form ``kubectl get`` asks for.

Three convertors, as in the real server:
- built-in kinds print the columns of kubectl's server-side printers (``pkg/printers/internalversion/
  printers.go``), always in their wide form: the server sends every column and kubectl hides priority 1;
- custom resources use the CRD's ``additionalPrinterColumns`` evaluated with JSONPath
  (``apiextensions-apiserver/pkg/registry/customresource/tableconvertor``), ``date`` cells shown as ages;
- anything else gets the default convertor: Name and "Created At" (``apiserver/pkg/registry/rest/table.go``).
Column descriptions quote the upstream SwaggerDoc texts (first sentence where they are long).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kplane.api import jsonpath
from kplane.api.resources import PrinterColumn, ResourceType
from kplane.apiserver.printers import (
    BUILTIN_PRINTERS,
    CREATED_DESC,
    NAME_COLUMN,
    Column,
    Printer,
    Row,
    human_duration,
    object_meta,
    object_name,
    parse_time,
    pod_conditions,
)


def _column_def(col: Column) -> dict[str, Any]:
    name, kind, desc, priority = col
    return {"name": name, "type": kind, "format": "name" if name == "Name" else "", "description": desc,
            "priority": priority}


# --- custom resources and the default convertor ------------------------------------------------------

DEFAULT_CR_COLUMNS = (PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp",
                                    description=CREATED_DESC),)


def _cr_cell(column: PrinterColumn, obj: Mapping[str, Any], now: datetime) -> Any:
    """One cell as the CRD table convertor fills it: first JSONPath result, typed by the column."""
    try:
        results = jsonpath.evaluate(column.json_path, obj)
    except ValueError:
        return None
    if not results or results[0] is None:
        return None
    value = results[0]
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if column.type == "string":
        return jsonpath.format_value(value)
    if column.type == "integer" and numeric:
        return int(value)
    if column.type == "number" and numeric:
        return float(value)
    if column.type == "boolean" and isinstance(value, bool):
        return value
    if column.type == "date" and isinstance(value, str):
        when = parse_time(value)
        return "<invalid>" if when is None else human_duration((now - when).total_seconds())
    return None


def _cr_columns(rtype: ResourceType) -> tuple[list[dict[str, Any]], Printer]:
    columns = rtype.printer_columns or DEFAULT_CR_COLUMNS
    defs = [_column_def(NAME_COLUMN)] + [
        {"name": c.name, "type": c.type, "format": c.format,
         "description": c.description
         or f"Custom resource definition column (in JSONPath format): {c.json_path}",
         "priority": c.priority} for c in columns]

    def printer(obj: Mapping[str, Any], now: datetime) -> Row:
        return [object_name(obj), *(_cr_cell(c, obj, now) for c in columns)]

    return defs, printer


def _default_row(obj: Mapping[str, Any], now: datetime) -> Row:
    created = parse_time(object_meta(obj).get("creationTimestamp"))
    stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created else "0001-01-01T00:00:00Z"
    return [object_name(obj), stamp]


_DEFAULT_DEFS = [_column_def(NAME_COLUMN), {"name": "Created At", "type": "date", "format": "",
                                      "description": CREATED_DESC, "priority": 0}]


def _convertor(rtype: ResourceType) -> tuple[list[dict[str, Any]], Printer]:
    builtin = BUILTIN_PRINTERS.get((rtype.group, rtype.plural))
    if builtin is not None and not rtype.crd_name:
        columns, printer = builtin
        return [_column_def(c) for c in columns], printer
    if rtype.crd_name or rtype.printer_columns:
        return _cr_columns(rtype)
    return _DEFAULT_DEFS, _default_row


def _row_object(obj: Mapping[str, Any], include_object: str) -> dict[str, Any] | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return dict(obj)
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": dict(object_meta(obj))}


def to_table(rtype: ResourceType, objects: Sequence[Mapping[str, Any]], *, list_meta: Mapping[str, Any],
             include_object: str = "Metadata", now: datetime | None = None) -> dict[str, Any]:
    """Render ``objects`` (a list's items, or one object for get/watch) as a ``meta.k8s.io/v1`` Table.

    ``include_object`` is the TableOptions value: ``Metadata`` (the default, also for ""), ``Object`` or
    ``None``. ``list_meta`` supplies resourceVersion/continue/remainingItemCount.
    """
    if include_object not in ("", "Metadata", "Object", "None"):
        raise ValueError(f"unsupported includeObject value {include_object!r}: "
                         "must be None, Metadata or Object")
    moment = now or datetime.now(UTC)
    defs, printer = _convertor(rtype)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": printer(obj, moment)}
        if (rtype.group, rtype.plural) == ("", "pods") and not rtype.crd_name:
            conditions = pod_conditions(obj)
            if conditions:
                row["conditions"] = conditions
        embedded = _row_object(obj, include_object or "Metadata")
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    metadata = {k: list_meta[k] for k in ("resourceVersion", "continue", "remainingItemCount")
                if list_meta.get(k) not in (None, "")}
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
            "columnDefinitions": defs, "rows": rows}

