"""Building a kro graph from a ResourceGraphDefinition: resources, dependencies, order, types, CRD.

The steps follow kro's builder (``pkg/graph/builder.go``, v0.9): validate names and shapes, turn the
SimpleSchema into the instance CRD, resolve each resource's kind to an OpenAPI schema, extract ``${…}``
expressions, infer dependencies from the identifiers they read, order the DAG (declaration order breaks
ties), then type-check every expression against the field it lands in and infer the status schema. Author
conditions under ``status.conditions`` are taken out first and checked on their own
(:mod:`kplane.graphs.customconditions`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from kplane.api.schema import Schema
from kplane.cel import CelError, Program
from kplane.graphs import celast, celenv, crd, dag, simpleschema
from kplane.graphs import customconditions as cc
from kplane.graphs import typecheck as tc
from kplane.graphs import validation as v
from kplane.graphs.expressions import ExpressionError, Field, standalone_expression, walk_fields
from kplane.graphs.validation import GraphError
from kplane.versions import builtin_resources, builtin_schemas

DEFAULT_GROUP = "kro.run"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


@dataclass(frozen=True)
class KindSchema:
    """What the builder needs to know about a kind: its OpenAPI schema and whether it is namespaced."""

    schema: Schema
    namespaced: bool = True


SchemaLookup = Callable[[str, str, str], KindSchema | None]
"""``(group, version, kind) -> KindSchema | None`` for kinds that are not built in (CRDs)."""


def no_crds(group: str, version: str, kind: str) -> KindSchema | None:
    return None


def crd_schemas(crds: Iterable[Mapping[str, Any]]) -> SchemaLookup:
    """A lookup over CustomResourceDefinition objects (every version that carries a schema)."""
    table: dict[tuple[str, str, str], KindSchema] = {}
    for obj in crds:
        spec = obj.get("spec") or {}
        for version in spec.get("versions") or []:
            raw = ((version.get("schema") or {}).get("openAPIV3Schema")) or {}
            key = (spec.get("group", ""), version.get("name", ""), (spec.get("names") or {}).get("kind", ""))
            table[key] = KindSchema(Schema(raw), spec.get("scope", "Namespaced") == "Namespaced")
    return lambda group, version, kind: table.get((group, version, kind))


@dataclass(frozen=True)
class Resource:
    """One node of the graph, with everything the renderer and the instance controller need."""

    id: str
    index: int
    api_version: str
    kind: str
    namespaced: bool
    template: Mapping[str, Any] | None
    external_ref: Mapping[str, Any] | None
    fields: tuple[Field, ...]
    dependencies: tuple[str, ...]
    include_when: tuple[str, ...] = ()
    ready_when: tuple[str, ...] = ()
    for_each: tuple[tuple[str, str], ...] = ()

    @property
    def is_collection(self) -> bool:
        return bool(self.for_each)

    @property
    def is_external(self) -> bool:
        return self.external_ref is not None

    @property
    def is_external_collection(self) -> bool:
        return self.external_ref is not None and (self.external_ref.get("metadata") or {}).get("selector") is not None


@dataclass(frozen=True)
class Graph:
    """A validated RGD: the instance CRD and GVK, resources in topological order, status expressions."""

    name: str
    group: str
    version: str
    kind: str
    scope: str
    crd: Mapping[str, Any]
    resources: Mapping[str, Resource]
    order: tuple[str, ...]
    status_fields: tuple[Field, ...]
    programs: Mapping[str, Program] = field(repr=False)
    conditions: tuple[cc.AuthorCondition, ...] = ()
    """The author's ``status.conditions`` entries; when any, they replace kro's built-ins on the wire."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def spec_schema(self) -> Mapping[str, Any]:
        return self.crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]

    def ordered(self) -> list[Resource]:
        return [self.resources[rid] for rid in self.order]

    def deletion_layers(self) -> list[list[str]]:
        """Waves to delete children in: dependents first (kro's ReverseTopologicalLayers)."""
        ids = [r.id for r in sorted(self.resources.values(), key=lambda r: r.index)]
        return dag.reverse_layers(ids, {rid: self.resources[rid].dependencies for rid in ids})

    def program(self, source: str) -> Program:
        return self.programs[source]


# Cluster-scoped built-in kinds (``kubectl api-resources --namespaced=false`` on Kubernetes 1.36), for kinds
# whose schema is bundled but which kplane does not serve itself.
CLUSTER_SCOPED_KINDS = frozenset({
    "APIService", "CertificateSigningRequest", "ClusterRole", "ClusterRoleBinding", "ClusterTrustBundle",
    "ComponentStatus", "CSIDriver", "CSINode", "CustomResourceDefinition", "DeviceClass", "DeviceTaintRule",
    "FlowSchema", "IngressClass", "IPAddress", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding",
    "MutatingWebhookConfiguration", "Namespace", "Node", "PersistentVolume", "PriorityClass",
    "PriorityLevelConfiguration", "ResourceSlice", "RuntimeClass", "SelfSubjectAccessReview",
    "SelfSubjectReview", "SelfSubjectRulesReview", "ServiceCIDR", "StorageClass", "StorageVersion",
    "StorageVersionMigration", "SubjectAccessReview", "TokenReview", "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding", "ValidatingWebhookConfiguration", "VolumeAttachment",
    "VolumeAttributesClass",
})


@cache
def _kinds(minor: int) -> Mapping[tuple[str, str, str], bool]:
    return {(r.group, r.version, r.kind): r.namespaced for r in builtin_resources.builtin_resources(minor)}


def _object_meta(minor: int, cluster: bool = False) -> Mapping[str, Any]:
    meta = builtin_schemas.definitions(minor)[OBJECT_META]
    if cluster:
        return {**meta, "properties": {k: p for k, p in meta["properties"].items() if k != "namespace"}}
    return {"$ref": builtin_schemas.REF_PREFIX + OBJECT_META}


def _with_meta(raw: Mapping[str, Any], minor: int, cluster: bool = False) -> Schema:
    """A kind's schema with the full ObjectMeta under ``metadata`` (CRD schemas say only ``type: object``)."""
    props = {**(raw.get("properties") or {}), "metadata": _object_meta(minor, cluster)}
    return Schema({**raw, "type": "object", "properties": props}, builtin_schemas.definitions(minor))


def resolve_kind(api_version: str, kind: str, schemas: SchemaLookup, minor: int) -> KindSchema | None:
    group, version = v.split_api_version(api_version)
    if builtin_schemas.definition_name(minor, group, version, kind) is not None:
        namespaced = _kinds(minor).get((group, version, kind), kind not in CLUSTER_SCOPED_KINDS)
        return KindSchema(builtin_schemas.schema_for_kind(minor, group, version, kind), namespaced)
    found = schemas(group, version, kind)
    if found is None:
        return None
    return KindSchema(_with_meta(found.schema.raw, minor), found.namespaced)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _keys_quoted(source: str) -> str:
    """The text analysed: kro's ``newCondition`` macro applies to every expression, so its bare keys are not
    identifiers the expression reads (the call itself is refused outside ``status.conditions``)."""
    try:
        return cc.expand_new_condition(source)
    except ValueError:
        return source


class _Expressions:
    """Expressions by text: syntax trees for analysis (kro's inspector), compiled programs for evaluation."""

    def __init__(self, variables: Iterable[str]) -> None:
        self.variables = tuple(sorted(set(variables)))
        self.trees: dict[str, celast.Node | None] = {}
        self.programs: dict[str, Program] = {}

    def tree(self, source: str) -> celast.Node | None:
        """The syntax tree, or ``None`` for CEL this parser does not know but the engine compiles."""
        if source not in self.trees:
            try:
                self.trees[source] = celast.parse(_keys_quoted(source))
            except celast.ParseError:
                self.program(source)
                self.trees[source] = None
        return self.trees[source]

    def program(self, source: str) -> Program:
        if source not in self.programs:
            try:
                self.programs[source] = celenv.compile_expression(source, self.variables)
            except CelError as err:
                raise GraphError(f"failed to compile expression \"{source}\": {self._reword(source, err)}") from None
        return self.programs[source]

    def _reword(self, source: str, err: CelError) -> str:
        tree = self.trees.get(source)
        undeclared = set(re.findall(r"undeclared reference to '([^']+)'", str(err)))
        unknown = sorted(undeclared & celast.function_names(tree)) if tree is not None else []
        return f"uses unknown functions: [{' '.join(unknown)}]" if unknown else str(err)

    def identifiers(self, source: str) -> set[str]:
        tree = self.tree(source)
        if tree is None:
            return {name for name in _IDENT.findall(source) if name in self.variables}
        return celast.root_identifiers(tree)

    def infer(self, source: str, env: Mapping[str, tc.Ty]) -> tc.Ty:
        self.program(source)
        tree = self.tree(source)
        return tc.DYN if tree is None else tc.infer(tree, env)


def _unknown(names: Iterable[str]) -> str:
    return f"references unknown identifiers: [{' '.join(sorted(names))}]"


@dataclass
class _Node:
    rid: str
    index: int
    api_version: str
    kind: str
    kind_schema: KindSchema
    template: Mapping[str, Any] | None
    external_ref: Mapping[str, Any] | None
    fields: list[Field]
    include_when: list[str]
    ready_when: list[str]
    for_each: list[tuple[str, str]]
    deps: set[str] = field(default_factory=set)


def _standalone(rid: str, what: str, texts: Any) -> list[str]:
    if texts is None:
        return []
    if not isinstance(texts, list):
        raise GraphError(f"resource {rid}: {what} must be a list")
    try:
        return [standalone_expression(t) for t in texts]
    except ExpressionError as err:
        raise GraphError(f"resource {rid}: {what}: {err}") from None


def _parse_node(index: int, spec: Mapping[str, Any], ids: list[str], schemas: SchemaLookup, minor: int,
                cluster_instance: bool) -> _Node:
    rid = str(spec["id"])
    template, ref = spec.get("template"), spec.get("externalRef")
    if (template is None) == (ref is None):
        raise GraphError(f"resource {rid}: exactly one of template or externalRef must be set")
    for_each_raw = spec.get("forEach") or []
    if ref is not None and for_each_raw:
        raise GraphError(f"resource {rid}: cannot use externalRef with forEach")
    if template is not None:
        api_version, kind = v.validate_object_structure(rid, template)
        v.validate_metadata_keys(rid, template["metadata"])
        body: Mapping[str, Any] = template
    else:
        api_version, kind = v.validate_external_ref(rid, ref)
        body = {"metadata": ref.get("metadata") if isinstance(ref, Mapping) else None}
    resolved = resolve_kind(api_version, kind, schemas, minor)
    if resolved is None:
        raise GraphError(f"resource {rid}: failed to get schema for {api_version}, Kind={kind}: schema not found")
    namespace = (body.get("metadata") or {}).get("namespace")
    if not resolved.namespaced and namespace:
        raise GraphError(f"resource {rid}: {kind} is cluster-scoped and must not set metadata.namespace")
    selector_ref = ref is not None and body["metadata"].get("selector") is not None
    if cluster_instance and resolved.namespaced and not namespace and not selector_ref:
        raise GraphError(f"resource {rid}: {kind} is namespaced and must set metadata.namespace when the "
                         "instance CRD is cluster-scoped")
    try:
        fields = list(walk_fields(body))
    except ExpressionError as err:
        raise GraphError(f"resource {rid}: {err}") from None
    if kind == "CustomResourceDefinition" and any(f.path[0] != "metadata" for f in fields):
        raise GraphError(f"resource {rid}: CEL expressions in CRDs are only supported for metadata fields")
    for_each = []
    for name, text in v.validate_for_each(rid, for_each_raw, ids):
        try:
            for_each.append((name, standalone_expression(text)))
        except ExpressionError as err:
            raise GraphError(f"resource {rid}: forEach dimension \"{name}\": {err}") from None
    return _Node(rid, index, api_version, kind, resolved, template, ref, fields,
                 _standalone(rid, "includeWhen", spec.get("includeWhen")),
                 _standalone(rid, "readyWhen", spec.get("readyWhen")), for_each)


def _dependencies(node: _Node, ids: set[str], exprs: _Expressions) -> None:
    iterators = [name for name, _ in node.for_each]
    for name, source in node.for_each:
        used = exprs.identifiers(source)
        others = used & set(iterators)
        if others:
            raise GraphError(f"resource {node.rid}: forEach dimension \"{name}\" cannot reference other "
                             f"iterators: [{' '.join(sorted(others))}]")
        _add_edges(node, used, ids, exprs, source)
    for f in node.fields:
        for source in f.expressions:
            _add_edges(node, exprs.identifiers(source) - set(iterators), ids, exprs, source)
    for source in node.include_when:
        _add_edges(node, exprs.identifiers(source), ids, exprs, source)
    if node.rid in node.deps:
        raise GraphError(f"resource {node.rid}: failed to build dependency graph: self references are not allowed")
    allowed = {"each"} if node.for_each else {node.rid}
    for source in node.ready_when:
        unknown = exprs.identifiers(source) - allowed
        if unknown:
            raise GraphError(f"resource \"{node.rid}\" readyWhen: {_unknown(unknown)}")
    if node.for_each:
        identity = [f for f in node.fields if f.path[:2] in (("metadata", "name"), ("metadata", "namespace"))
                    and (f.path[1] == "name" or node.kind_schema.namespaced)]
        used = set().union(*(exprs.identifiers(s) for f in identity for s in f.expressions))
        missing = [name for name in iterators if name not in used]
        if missing:
            raise GraphError(f"resource {node.rid}: all forEach dimensions must be used to produce a unique "
                             f"resource identity, missing: [{' '.join(missing)}]")


def _add_edges(node: _Node, used: set[str], ids: set[str], exprs: _Expressions, source: str) -> None:
    if cc.RUNTIME in used:
        raise GraphError(f"resource {node.rid}: expression \"{source}\": {cc.OUTSIDE}")
    unknown = used - ids - {"schema"}
    if unknown:
        raise GraphError(f"resource {node.rid}: expression \"{source}\" {_unknown(unknown)}")
    node.deps |= used & ids


def _resource_type(node: _Node) -> tc.Ty:
    """How other expressions see the node: its kind's type, or a list of it for collections."""
    t = tc.from_schema(node.kind_schema.schema)
    selector = node.external_ref is not None and node.external_ref["metadata"].get("selector") is not None
    return tc.list_of(t) if node.for_each or selector else t


def _check_node(node: _Node, env: dict[str, tc.Ty], exprs: _Expressions, item_type: tc.Ty) -> None:
    local = dict(env)
    for name, source in node.for_each:
        t = _infer(node.rid, source, local, exprs)
        if t.kind not in ("list", "dyn"):
            raise GraphError(f"resource {node.rid}: forEach dimension \"{name}\" must return a list, got {t}")
        local[name] = (t.elem or tc.DYN) if t.kind == "list" else tc.DYN
    body = node.template if node.template is not None else {"metadata": (node.external_ref or {})["metadata"]}
    try:
        expected = tc.walk_template(body, node.kind_schema.schema if node.template is not None else None)
    except tc.TypeCheckError as err:
        raise GraphError(f"resource {node.rid}: {err}") from None
    for f in node.fields:
        output = tc.STRING
        if f.standalone:
            output = _infer(node.rid, f.source, local, exprs)
        else:
            for source in f.expressions:
                _infer(node.rid, source, local, exprs)
            exprs.program(f.source)
        reason = tc.mismatch(output, tc.from_schema(expected.get(f.path)))
        if reason:
            raise GraphError(f"type mismatch in resource \"{node.rid}\" at path \"{f.path_text}\": "
                             f"expression \"{f.source}\" {reason}")
    for what, sources, scope in (("includeWhen", node.include_when, env),
                                 ("readyWhen", node.ready_when, {**env, node.rid: item_type, "each": item_type})):
        for source in sources:
            t = _infer(node.rid, source, scope, exprs)
            if t.kind not in ("bool", "dyn") and not (t.kind == "optional" and t.elem in (tc.BOOL, tc.DYN)):
                raise GraphError(f"resource {node.rid}: {what} expression \"{source}\" must return bool, got {t}")


def _infer(rid: str, source: str, env: Mapping[str, tc.Ty], exprs: _Expressions) -> tc.Ty:
    try:
        return exprs.infer(source, env)
    except tc.TypeCheckError as err:
        raise GraphError(f"resource {rid}: failed to type-check expression \"{source}\": {err}") from None


def _status(status: Any, ids: set[str], env: Mapping[str, tc.Ty], exprs: _Expressions,
            ) -> tuple[list[Field], dict[str, Any]]:
    if status is None:
        return [], {}
    if not isinstance(status, Mapping):
        raise GraphError("status must be a map")
    try:
        fields = list(walk_fields(status))
    except ExpressionError as err:
        raise GraphError(f"status: {err}") from None
    _check_status_leaves(status)
    schema: dict[str, Any] = {}
    for f in fields:
        used: set[str] = set()
        for source in f.expressions:
            used |= exprs.identifiers(source)
        unknown = used - ids - {"schema"}
        if unknown:
            raise GraphError(f"status field {f.path_text}: {_unknown(unknown)}")
        if not used:
            raise GraphError(f"status field {f.path_text}: instance status field must refer to a resource or schema")
        if f.standalone:
            t = _infer("status", f.source, env, exprs)
        else:
            for source in f.expressions:
                part = _infer("status", source, env, exprs)
                if part.kind not in ("string", "dyn"):
                    raise GraphError(f"status field {f.path_text}: string template parts must be strings, "
                                     f"expression \"{source}\" returns type \"{part}\"")
            exprs.program(f.source)
            t = tc.STRING
        _place(schema, f.path, tc.schema_of(t))
    return fields, schema


def _check_status_leaves(value: Any, path: str = "status") -> None:
    if isinstance(value, Mapping):
        for key, child in value.items():
            _check_status_leaves(child, f"{path}.{key}")
    elif isinstance(value, list):
        for i, child in enumerate(value):
            _check_status_leaves(child, f"{path}[{i}]")
    elif not (isinstance(value, str) and "${" in value):
        raise GraphError(f"{path}: status fields without expressions are not supported")


def _place(properties: dict[str, Any], path: tuple[str | int, ...], leaf: dict[str, Any]) -> None:
    """Put a leaf schema at ``path`` in a status ``properties`` map, creating objects and arrays on the way."""
    node: dict[str, Any] = {"type": "object", "properties": properties}
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(part, int):
            node["type"] = "array"
            node.pop("properties", None)
            node["items"] = leaf if last else node.get("items") or {"type": "object", "properties": {}}
            node = node["items"]
        else:
            props = node.setdefault("properties", {})
            nxt = path[i + 1] if not last else None
            props[part] = leaf if last else props.get(part) or (
                {"type": "array"} if isinstance(nxt, int) else {"type": "object", "properties": {}})
            node = props[part]


def build_graph(rgd: Mapping[str, Any], *, schemas: SchemaLookup = no_crds, kube_minor: int = 36) -> Graph:
    """Validate an RGD and compile it; :class:`GraphError` (kro's message) when kro would refuse it."""
    if not isinstance(rgd, Mapping) or not isinstance(rgd.get("spec"), Mapping):
        raise GraphError("ResourceGraphDefinition must have a spec")
    spec = rgd["spec"]
    schema_spec = spec.get("schema")
    if not isinstance(schema_spec, Mapping):
        raise GraphError("spec.schema is required")
    kind = v.validate_kind(schema_spec.get("kind"))
    version = v.validate_api_version(schema_spec.get("apiVersion"))
    group = str(schema_spec.get("group") or DEFAULT_GROUP)
    scope = str(schema_spec.get("scope") or "Namespaced")
    if scope not in ("Namespaced", "Cluster"):
        raise GraphError(f"invalid scope {scope!r}: must be Namespaced or Cluster")
    raw_resources = spec.get("resources") or []
    if not isinstance(raw_resources, list) or not all(isinstance(r, Mapping) for r in raw_resources):
        raise GraphError("spec.resources must be a list of objects")
    ids = v.validate_ids(raw_resources)
    try:
        spec_schema = simpleschema.to_openapi(schema_spec.get("spec"), schema_spec.get("types"))
    except simpleschema.SchemaError as err:
        raise GraphError(f"failed to build OpenAPI schema for instance: {err}") from None
    cluster = scope == "Cluster"
    nodes = [_parse_node(i, r, ids, schemas, kube_minor, cluster) for i, r in enumerate(raw_resources)]
    iterators = {name for n in nodes for name, _ in n.for_each}
    exprs = _Expressions({*ids, "schema", "each", *iterators})
    id_set = set(ids)
    for node in nodes:
        _dependencies(node, id_set, exprs)
    try:
        order = dag.topological_order(ids, {n.rid: sorted(n.deps) for n in nodes})
    except dag.CycleError as err:
        raise GraphError(f"failed to build dependency graph: {err}") from None
    instance = _with_meta({"properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                          "spec": spec_schema}}, kube_minor, cluster)
    env: dict[str, tc.Ty] = {"schema": tc.from_schema(instance)}
    items = {n.rid: _resource_type(n) for n in nodes}
    env.update(items)
    by_id = {n.rid: n for n in nodes}
    for rid in order:
        node = by_id[rid]
        item = (items[rid].elem or tc.DYN) if items[rid].kind == "list" else items[rid]
        _check_node(node, env, exprs, item)
    status, condition_entries = cc.extract(schema_spec.get("status"))
    status_fields, status_schema = _status(status, id_set, env, exprs)
    conditions, condition_programs = cc.build_conditions(condition_entries, ids, env)
    meta = schema_spec.get("metadata") or {}
    instance_crd = crd.instance_crd(
        kind=kind, group=group, version=version, scope=scope, spec=spec_schema, status=status_schema,
        rgd_name=str((rgd.get("metadata") or {}).get("name") or ""),
        printer_columns=schema_spec.get("additionalPrinterColumns") or (),
        short_names=schema_spec.get("shortNames") or (), categories=schema_spec.get("categories") or (),
        labels=meta.get("labels"), annotations=meta.get("annotations"))
    resources = {
        n.rid: Resource(
            id=n.rid, index=n.index, api_version=n.api_version, kind=n.kind, namespaced=n.kind_schema.namespaced,
            template=n.template, external_ref=n.external_ref, fields=tuple(n.fields),
            dependencies=tuple(sorted(n.deps, key=ids.index)), include_when=tuple(n.include_when),
            ready_when=tuple(n.ready_when), for_each=tuple(n.for_each))
        for n in nodes
    }
    return Graph(name=str((rgd.get("metadata") or {}).get("name") or ""), group=group, version=version, kind=kind,
                 scope=scope, crd=instance_crd, resources=resources, order=tuple(order),
                 status_fields=tuple(status_fields), programs={**exprs.programs, **condition_programs},
                 conditions=conditions)
