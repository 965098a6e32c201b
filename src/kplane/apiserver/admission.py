"""The write pipeline between decoding and storage: prune, default, validate.

Built-in kinds are checked against the OpenAPI schemas of the served Kubernetes level plus their semantic
rules; custom resources against their CRD's structural schema and ``x-kubernetes-validations`` rules. The
order follows the real server: unknown fields (``fieldValidation``), pruning, defaulting, validation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kplane.api import status
from kplane.api.builtin_defaults import apply_builtin_defaults
from kplane.api.builtin_validation import validate_builtin
from kplane.api.celrules import compile_rules, evaluate_rules
from kplane.api.crd import crd_schema, default_crd, validate_crd
from kplane.api.defaulting import apply_defaults_in_place, prune, unknown_fields
from kplane.api.meta import deep_copy
from kplane.api.names import name_is_dns_subdomain
from kplane.api.resources import ResourceType
from kplane.api.schema import ANY, Schema
from kplane.api.validation import validate, validate_update

METADATA_SCHEMA_KEYS = ("apiVersion", "kind", "metadata")


@dataclass
class Admitted:
    obj: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _with_envelope(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A CRD schema plus the apiVersion/kind/metadata every object carries (never pruned)."""
    raw = dict(schema)
    props = dict(raw.get("properties") or {})
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    props["metadata"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    raw["properties"] = props
    raw.setdefault("type", "object")
    return raw


def crd_rule_compile_errors(crd: Mapping[str, Any]) -> list[status.Cause]:
    """``x-kubernetes-validations`` rules that do not compile make the CRD itself invalid (422), as upstream."""
    causes: list[status.Cause] = []
    for index, version in enumerate((crd.get("spec") or {}).get("versions") or []):
        raw = ((version or {}).get("schema") or {}).get("openAPIV3Schema")
        if isinstance(raw, dict):
            rules = compile_rules(Schema(raw), path=f"spec.versions[{index}].schema.openAPIV3Schema")
            causes.extend(rules.all_causes())
    return causes


class Admission:
    """Decides what a write stores, given the schemas of the served level and the registered CRDs."""

    def __init__(
        self,
        builtin_schema: Callable[[ResourceType], Schema | None],
        crd_lookup: Callable[[str], Mapping[str, Any] | None],
    ) -> None:
        self._builtin_schema = builtin_schema
        self._crd_lookup = crd_lookup
        self._rules_cache: dict[tuple[str, str, str], Any] = {}
        self._builtin_schemas: dict[tuple[str, str, str], Schema] = {}
        self._crd_schemas: dict[tuple[str, str], tuple[str, Schema]] = {}

    def schema(self, rtype: ResourceType) -> Schema:
        """The same node for as long as the schema stands (a built-in kind's for good, a CRD's until the CRD
        changes), so that what walking objects teaches a node (``Schema.derived``) is reused."""
        if rtype.crd_name:
            crd = self._crd_lookup(rtype.crd_name)
            if not crd:
                return ANY
            rv = str(crd.get("metadata", {}).get("resourceVersion", ""))
            cached = self._crd_schemas.get((rtype.crd_name, rtype.version))
            if cached is not None and rv and cached[0] == rv:
                return cached[1]
            raw = crd_schema(crd, rtype.version)
            schema = Schema(_with_envelope(raw)) if raw else ANY
            self._crd_schemas[(rtype.crd_name, rtype.version)] = (rv, schema)
            return schema
        key = (rtype.group, rtype.version, rtype.kind)
        builtin = self._builtin_schemas.get(key)
        if builtin is None:
            builtin = self._builtin_schemas[key] = self._builtin_schema(rtype) or ANY
        return builtin

    def _rules(self, rtype: ResourceType, schema: Schema) -> Any:
        crd = self._crd_lookup(rtype.crd_name) or {}
        rv = str(crd.get("metadata", {}).get("resourceVersion", ""))
        key = (rtype.crd_name, rtype.version, rv)
        rules = self._rules_cache.get(key)
        if rules is None:
            rules = compile_rules(schema)
            self._rules_cache = {k: v for k, v in self._rules_cache.items() if k[0] != rtype.crd_name}
            self._rules_cache[key] = rules
        return rules

    def admit(
        self,
        rtype: ResourceType,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        *,
        field_validation: str,
        subresource: str = "",
        owned: bool = False,
        duplicates: Sequence[str] = (),
    ) -> Admitted:
        """``owned``: the caller hands ``obj`` over (a freshly decoded create body), so it is changed in
        place rather than copied first. ``old``: the stored object an update replaces (stored objects are
        plain JSON and never change), whose unchanged fields the schema walks may pass on sight."""
        warnings: list[str] = []
        schema = self.schema(rtype)
        unknown = unknown_fields(obj, schema, old)
        problems = [*(f'duplicate field "{path}"' for path in duplicates),
                    *(f'unknown field "{path}"' for path in unknown)]
        if problems:
            # Duplicates first, then unknown fields, as apimachinery's strict decoding lists them.
            if field_validation == "Strict":
                raise status.bad_request("strict decoding error: " + ", ".join(problems))
            if field_validation == "Warn":
                warnings.extend(problems)
        # Pruning drops a subset of what the unknown-field walk reports (that walk also enters metadata), so
        # with nothing reported there is nothing to prune and a copy (or nothing, for an owned object) does.
        if unknown:
            obj = prune(obj, schema)[0]
        elif not owned:
            obj = deep_copy(obj)
        obj = (apply_defaults_in_place(obj, schema) if rtype.crd_name
               else apply_builtin_defaults(rtype.group, rtype.kind, obj))
        causes: list[status.Cause] = []
        structural = validate(obj, schema) if old is None else validate_update(obj, old, schema)
        type_errors = [c for c in structural if c.reason == "FieldValueTypeInvalid"]
        if type_errors and not rtype.crd_name:
            first = type_errors[0]
            raise status.bad_request(f'{rtype.kind} in version "{rtype.version}" cannot be handled as a '
                                     f"{rtype.kind}: {first.field}: {first.message}")
        causes.extend(structural)
        if rtype.crd_name:
            name = str(obj.get("metadata", {}).get("name", ""))
            causes.extend(status.Cause("FieldValueInvalid", f'Invalid value: "{name}": {msg}', "metadata.name")
                          for msg in name_is_dns_subdomain(name))
            if not causes:
                causes.extend(evaluate_rules(self._rules(rtype, schema), obj, old))
        elif rtype.kind == "CustomResourceDefinition":
            obj = default_crd(obj)
            causes.extend(validate_crd(obj, old))
            causes.extend(crd_rule_compile_errors(obj))
        else:
            causes.extend(validate_builtin(rtype, obj, old))
        if causes:
            name = str(obj.get("metadata", {}).get("name", "") or obj.get("metadata", {}).get("generateName", ""))
            raise status.invalid(rtype.kind, rtype.group, name, causes)
        return Admitted(obj, warnings)
