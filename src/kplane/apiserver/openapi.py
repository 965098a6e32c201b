"""OpenAPI v3 documents (``/openapi/v3`` and ``/openapi/v3/<gv>``) for built-in kinds and CRDs.

kubectl downloads the root and then each group-version document on every invocation: ``apply``/``create``
validate against it, ``explain`` reads ``components.schemas``, and client-go's QueryParamVerifierV3 decides
that the server validates fields itself when the PATCH operation of the kind's item path (found through the
operation's ``x-kubernetes-group-version-kind``) lists a ``fieldValidation`` query parameter. The shape
follows the documents a real server publishes (kubernetes/kubernetes ``api/openapi-spec/v3``): inline
parameters, ``$ref`` with sibling ``description``, operations tagged with ``x-kubernetes-action`` and a
GVK map.

Documents are pure functions of their inputs; :class:`OpenAPIDocuments` caches them keyed by those inputs.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from kplane.api.resources import ResourceType
from kplane.versions import builtin_schemas
from kplane.versions.builtin_schemas import REF_PREFIX

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
OBJECT_META = META + "ObjectMeta"
LIST_META = META + "ListMeta"
DELETE_OPTIONS = META + "DeleteOptions"
STATUS = META + "Status"
PATCH = META + "Patch"
SCALE = "io.k8s.api.autoscaling.v1.Scale"
BINDING = "io.k8s.api.core.v1.Binding"

PATCH_TYPES_BUILTIN = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
# Custom resources have no Go struct tags, so the server rejects strategic merge for them.
PATCH_TYPES_CUSTOM = PATCH_TYPES_BUILTIN[:3]
_RESPONSE_TYPES = ("application/json", "application/yaml")

_API_VERSION_DESC = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
    "recognized schemas to the latest internal value, and may reject unrecognized values. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
)
_KIND_DESC = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer this "
    "from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)
_METADATA_DESC = (
    "Standard object's metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_FIELD_VALIDATION_DESC = (
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) "
    "containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict"
)


# --- paths of a group-version -----------------------------------------------------------------------------


def parse_gv_path(gv_path: str) -> tuple[str, str]:
    """``"api/v1"`` → ``("", "v1")``; ``"apis/apps/v1"`` → ``("apps", "v1")``; anything else: ValueError."""
    parts = gv_path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "api" and parts[1]:
        return "", parts[1]
    if len(parts) == 3 and parts[0] == "apis" and parts[1] and parts[2]:
        return parts[1], parts[2]
    raise ValueError(f"not a group-version path: {gv_path!r}")


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF_PREFIX + name}


def _query(name: str, typ: str, description: str = "") -> dict[str, Any]:
    param: dict[str, Any] = {"in": "query", "name": name, "schema": {"type": typ, "uniqueItems": True}}
    if description:
        param["description"] = description
    return param


def _path_param(name: str, description: str) -> dict[str, Any]:
    schema = {"type": "string", "uniqueItems": True}
    return {"description": description, "in": "path", "name": name, "required": True, "schema": schema}


_DRY_RUN = _query("dryRun", "string", "When present, indicates that modifications should not be persisted.")
_FIELD_MANAGER = _query(
    "fieldManager", "string", "fieldManager is a name associated with the actor making changes."
)
_FIELD_VALIDATION = _query("fieldValidation", "string", _FIELD_VALIDATION_DESC)
_FORCE = _query("force", "boolean", 'Force is going to "force" Apply requests.')
_PRETTY = _query("pretty", "string", "If 'true', then the output is pretty printed.")
_WRITE_PARAMS = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
_PATCH_PARAMS = [_DRY_RUN, _FORCE, _FIELD_MANAGER, _FIELD_VALIDATION]
_DELETE_PARAMS = [
    _query("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted."),
    _query("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy."),
    _query("propagationPolicy", "string", "Whether and how garbage collection will be performed."),
    _DRY_RUN,
]
_LIST_PARAMS = [
    _query("allowWatchBookmarks", "boolean"),
    _query("continue", "string"),
    _query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields."),
    _query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels."),
    _query("limit", "integer"),
    _query("resourceVersion", "string"),
    _query("resourceVersionMatch", "string"),
    _query("sendInitialEvents", "boolean"),
    _query("timeoutSeconds", "integer"),
    _query("watch", "boolean"),
]


def _op_group_name(group: str) -> str:
    """The group as operation ids spell it: ``apps`` as ``Apps``, ``stable.example.com`` as
    ``StableExampleCom``."""
    if not group:
        return "Core"
    return "".join(part[:1].upper() + part[1:] for part in group.removesuffix(".k8s.io").split(".") if part)


@dataclass(frozen=True)
class _Target:
    """What the operations of one resource refer to."""

    rt: ResourceType
    kind_schema: str
    list_schema: str

    @property
    def gvk(self) -> dict[str, str]:
        return {"group": self.rt.group, "kind": self.rt.kind, "version": self.rt.version}

    @property
    def patch_types(self) -> tuple[str, ...]:
        return PATCH_TYPES_CUSTOM if self.rt.crd_name else PATCH_TYPES_BUILTIN

    def op_id(self, action: str, suffix: str = "", namespaced: bool | None = None) -> str:
        rt = self.rt
        scope = "Namespaced" if (rt.namespaced if namespaced is None else namespaced) else ""
        return f"{action}{_op_group_name(rt.group)}{rt.version.capitalize()}{scope}{rt.kind}{suffix}"


def _responses(schema: str, codes: Iterable[tuple[str, str]]) -> dict[str, Any]:
    content = {media: {"schema": _ref(schema)} for media in _RESPONSE_TYPES}
    return {code: {"content": content, "description": text} for code, text in codes}


def _operation(
    t: _Target,
    action: str,
    op_id: str,
    description: str,
    response: str,
    codes: Iterable[tuple[str, str]] = (("200", "OK"),),
    params: list[dict[str, Any]] | None = None,
    body: tuple[str, tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"description": description, "operationId": op_id}
    if params:
        op["parameters"] = params
    if body is not None:
        schema, media_types = body
        op["requestBody"] = {"content": {m: {"schema": _ref(schema)} for m in media_types}, "required": True}
    op["responses"] = _responses(response, codes)
    op["tags"] = [f"{_op_group_name(t.rt.group).lower()}_{t.rt.version}"]
    op["x-kubernetes-action"] = action
    op["x-kubernetes-group-version-kind"] = t.gvk
    return op


def _item_ops(t: _Target, kind_schema: str, suffix: str, verbs: Iterable[str]) -> dict[str, Any]:
    """get/put/patch/delete on an object (or one of its subresources, ``suffix`` = "Status" / "Scale")."""
    kind, ops = t.rt.kind, {}
    what = f"{suffix.lower()} of the specified {kind}" if suffix else f"the specified {kind}"
    created = (("200", "OK"), ("201", "Created"))
    if "get" in verbs:
        ops["get"] = _operation(t, "get", t.op_id("read", suffix), f"read {what}", kind_schema)
    if "update" in verbs:
        ops["put"] = _operation(
            t,
            "put",
            t.op_id("replace", suffix),
            f"replace {what}",
            kind_schema,
            created,
            _WRITE_PARAMS,
            (kind_schema, ("application/json", "application/yaml")),
        )
    if "patch" in verbs:
        ops["patch"] = _operation(
            t,
            "patch",
            t.op_id("patch", suffix),
            f"partially update {what}",
            kind_schema,
            created,
            _PATCH_PARAMS,
            (PATCH, t.patch_types),
        )
    if "delete" in verbs and not suffix:
        ops["delete"] = _operation(
            t,
            "delete",
            t.op_id("delete"),
            f"delete a {kind}",
            STATUS,
            (("200", "OK"), ("202", "Accepted")),
            _DELETE_PARAMS,
            (DELETE_OPTIONS, ("application/json",)),
        )
    return ops


def _collection_ops(t: _Target) -> dict[str, Any]:
    rt, ops = t.rt, {}
    if "list" in rt.verbs:
        ops["get"] = _operation(
            t, "list", t.op_id("list"), f"list or watch objects of kind {rt.kind}", t.list_schema
        )
    if "create" in rt.verbs:
        ops["post"] = _operation(
            t,
            "post",
            t.op_id("create"),
            f"create a {rt.kind}",
            t.kind_schema,
            (("200", "OK"), ("201", "Created"), ("202", "Accepted")),
            _WRITE_PARAMS,
            (t.kind_schema, ("application/json", "application/yaml")),
        )
    if "deletecollection" in rt.verbs:
        ops["delete"] = _operation(
            t,
            "deletecollection",
            t.op_id("delete", namespaced=rt.namespaced).replace("delete", "deleteCollection", 1),
            f"delete collection of {rt.kind}",
            STATUS,
            params=_DELETE_PARAMS + _LIST_PARAMS,
            body=(DELETE_OPTIONS, ("application/json",)),
        )
    return ops


def _resource_paths(t: _Target) -> dict[str, Any]:
    rt = t.rt
    base = "/" + gv_path(rt.group, rt.version)
    ns_param = _path_param("namespace", "object name and auth scope, such as for teams and projects")
    name_param = _path_param("name", f"name of the {rt.kind}")
    scope_params = [ns_param] if rt.namespaced else []
    collection = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
    paths: dict[str, Any] = {}
    ops = _collection_ops(t)
    if ops:
        list_params = _LIST_PARAMS if "list" in rt.verbs else []
        paths[collection] = {**ops, "parameters": [*scope_params, _PRETTY, *list_params]}
    item_params = [name_param, *scope_params, _PRETTY]
    ops = _item_ops(t, t.kind_schema, "", rt.verbs)
    if ops:
        paths[f"{collection}/{{name}}"] = {**ops, "parameters": item_params}
    for sub in sorted(rt.subresources):
        if sub in ("status", "scale"):
            schema = SCALE if sub == "scale" else t.kind_schema
            ops = _item_ops(t, schema, sub.capitalize(), ("get", "patch", "update"))
        elif sub == "binding":
            ops = {
                "post": _operation(
                    t,
                    "post",
                    t.op_id("create", "Binding"),
                    f"create binding of a {rt.kind}",
                    BINDING,
                    (("200", "OK"), ("201", "Created"), ("202", "Accepted")),
                    _WRITE_PARAMS,
                    (BINDING, ("application/json", "application/yaml")),
                )
            }
        else:
            continue
        paths[f"{collection}/{{name}}/{sub}"] = {**ops, "parameters": item_params}
    if rt.namespaced and "list" in rt.verbs:
        all_ns = {
            "get": _operation(
                t,
                "list",
                t.op_id("list", "ForAllNamespaces", namespaced=False),
                f"list or watch objects of kind {rt.kind}",
                t.list_schema,
            )
        }
        paths[f"{base}/{rt.plural}"] = {**all_ns, "parameters": [_PRETTY, *_LIST_PARAMS]}
    return paths


# --- schemas ----------------------------------------------------------------------------------------------


def crd_definition_name(group: str, version: str, kind: str) -> str:
    """Name of a custom kind's schema: the group reversed, as the apiextensions server publishes it."""
    return ".".join([*reversed(group.split(".")), version, kind])


def _type_meta_props() -> dict[str, Any]:
    return {
        "apiVersion": {"description": _API_VERSION_DESC, "type": "string"},
        "kind": {"description": _KIND_DESC, "type": "string"},
    }


def crd_kind_schema(group: str, version: str, kind: str, schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """A custom kind's published schema: its ``openAPIV3Schema`` with TypeMeta and ObjectMeta filled in."""
    base: dict[str, Any] = dict(schema) if schema else {"x-kubernetes-preserve-unknown-fields": True}
    props = dict(base.get("properties") or {})
    props.update(_type_meta_props())
    props["metadata"] = {"$ref": REF_PREFIX + OBJECT_META, "description": _METADATA_DESC}
    base["properties"] = props
    base["type"] = "object"
    base["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind, "version": version}]
    return base


def list_schema(item_schema: str, group: str, version: str, kind: str) -> dict[str, Any]:
    """The ``<Kind>List`` schema for a kind whose item schema is ``item_schema``."""
    return {
        "description": f"{kind}List is a list of {kind}",
        "properties": {
            **_type_meta_props(),
            "items": {
                "description": f"List of {kind.lower()}s.",
                "items": _ref(item_schema),
                "type": "array",
            },
            "metadata": {"$ref": REF_PREFIX + LIST_META, "description": "Standard list metadata."},
        },
        "required": ["items"],
        "type": "object",
        "x-kubernetes-group-version-kind": [{"group": group, "kind": kind + "List", "version": version}],
    }


def _collect_refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            out.add(ref[len(REF_PREFIX) :])
        for value in node.values():
            _collect_refs(value, out)
    elif isinstance(node, list):
        for item in node:
            _collect_refs(item, out)


@cache
def _closure(minor: int, name: str) -> frozenset[str]:
    """``name`` and every built-in definition it reaches through ``$ref``."""
    defs = builtin_schemas.definitions(minor)
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen or current not in defs:
            continue
        seen.add(current)
        refs: set[str] = set()
        _collect_refs(defs[current], refs)
        todo.extend(refs - seen)
    return frozenset(seen)


def _add_builtin(schemas: dict[str, Any], minor: int, name: str) -> None:
    defs = builtin_schemas.definitions(minor)
    for dep in _closure(minor, name):
        schemas.setdefault(dep, defs[dep])


def _target(
    rt: ResourceType,
    minor: int,
    crd_schemas: Mapping[tuple[str, str, str], Mapping[str, Any]],
    schemas: dict[str, Any],
) -> _Target:
    builtin_name = (
        None if rt.crd_name else builtin_schemas.definition_name(minor, rt.group, rt.version, rt.kind)
    )
    if builtin_name is not None:
        list_name = builtin_schemas.definition_name(minor, rt.group, rt.version, rt.list_kind)
        _add_builtin(schemas, minor, builtin_name)
        if list_name is None:
            list_name = builtin_name + "List"
            schemas[list_name] = list_schema(builtin_name, rt.group, rt.version, rt.kind)
        else:
            _add_builtin(schemas, minor, list_name)
        return _Target(rt, builtin_name, list_name)
    name = crd_definition_name(rt.group, rt.version, rt.kind)
    schemas[name] = crd_kind_schema(
        rt.group, rt.version, rt.kind, crd_schemas.get((rt.group, rt.version, rt.kind))
    )
    schemas[name + "List"] = list_schema(name, rt.group, rt.version, rt.kind)
    return _Target(rt, name, name + "List")


def openapi_group_version(
    gv_path: str,
    resources: Sequence[ResourceType],
    builtin_minor: str,
    crd_schemas: Mapping[tuple[str, str, str], Mapping[str, Any]],
) -> dict[str, Any]:
    """The OpenAPI 3.0 document of one group-version. ValueError for a malformed path, LookupError when
    nothing is served there. ``crd_schemas`` maps (group, version, kind) to a CRD's ``openAPIV3Schema``."""
    group, version = parse_gv_path(gv_path)
    chosen = sorted(
        (rt for rt in resources if rt.group == group and rt.version == version), key=lambda r: r.plural
    )
    if not chosen:
        raise LookupError(f"no resources are served at {gv_path}")
    minor = builtin_schemas.normalize_minor(builtin_minor)
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for rt in chosen:
        paths.update(_resource_paths(_target(rt, minor, crd_schemas, schemas)))
    for common in (DELETE_OPTIONS, STATUS, PATCH, OBJECT_META, LIST_META):
        _add_builtin(schemas, minor, common)
    if any("scale" in rt.subresources for rt in chosen):
        _add_builtin(schemas, minor, SCALE)
    if any("binding" in rt.subresources for rt in chosen):
        _add_builtin(schemas, minor, BINDING)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": f"v1.{minor}.0"},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def served_gv_paths(resources: Iterable[ResourceType]) -> list[str]:
    """Every group-version path with at least one resource, in first-seen order."""
    return list(dict.fromkeys(gv_path(rt.group, rt.version) for rt in resources))


def openapi_root(resources: Sequence[ResourceType], doc_hash: Callable[[str], str]) -> dict[str, Any]:
    """``/openapi/v3``: one entry per served group-version, its URL pinned to the document's content hash."""
    return {
        "paths": {
            path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={doc_hash(path)}"}
            for path in served_gv_paths(resources)
        }
    }


# --- cache ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenAPIDocument:
    """A built document: the JSON body to send and its content hash (the ``?hash=`` of the root)."""

    body: bytes
    hash: str


def content_hash(body: bytes) -> str:
    """Upper-case SHA-512 hex, the form a real server puts in ``?hash=``."""
    return hashlib.sha512(body).hexdigest().upper()


class OpenAPIDocuments:
    """Builds documents lazily and keeps them while their inputs are unchanged.

    The key is the document's inputs (the group-version's resource types and the CRD schemas among them), so
    a CRD change rebuilds only its own group-version and callers need no version counter.
    """

    def __init__(self, builtin_minor: str, max_entries: int = 256) -> None:
        self.builtin_minor = builtin_minor
        self._max = max_entries
        self._docs: OrderedDict[tuple[Any, ...], OpenAPIDocument] = OrderedDict()

    def _key(
        self, path: str, resources: Sequence[ResourceType], crd_schemas: Mapping[tuple[str, str, str], Any]
    ) -> tuple[Any, ...]:
        group, version = parse_gv_path(path)
        chosen = tuple(rt for rt in resources if rt.group == group and rt.version == version)
        custom = sorted((k, v) for k, v in crd_schemas.items() if k[0] == group and k[1] == version)
        return (path, chosen, orjson.dumps(custom, option=orjson.OPT_SORT_KEYS) if custom else b"")

    def document(
        self, path: str, resources: Sequence[ResourceType], crd_schemas: Mapping[tuple[str, str, str], Any]
    ) -> OpenAPIDocument:
        """The document at ``path`` (``api/v1``, ``apis/<g>/<v>``); raises like openapi_group_version."""
        key = self._key(path, resources, crd_schemas)
        doc = self._docs.get(key)
        if doc is not None:
            self._docs.move_to_end(key)
            return doc
        body = orjson.dumps(openapi_group_version(path, resources, self.builtin_minor, crd_schemas))
        doc = OpenAPIDocument(body, content_hash(body))
        self._docs[key] = doc
        if len(self._docs) > self._max:
            self._docs.popitem(last=False)
        return doc

    def root(
        self, resources: Sequence[ResourceType], crd_schemas: Mapping[tuple[str, str, str], Any]
    ) -> dict[str, Any]:
        return openapi_root(resources, lambda path: self.document(path, resources, crd_schemas).hash)
