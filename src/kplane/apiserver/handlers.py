"""The REST verbs on one resource: get, list, create, update, patch, delete, deletecollection.

Handlers are thin: they decode, hand the object to :mod:`kplane.api` rules (metadata, patching, apply,
admission) and to the store, and map store errors to the ``Status`` responses clients expect. Watches
live in :mod:`kplane.apiserver.watch`.
"""

from __future__ import annotations

from typing import Any

import orjson

from kplane.api import meta, status
from kplane.api.apply import server_side_apply
from kplane.api.fieldset import FieldSet, fieldset_of, make_path
from kplane.api.managedfields import manager_from_user_agent, record_update
from kplane.api.patch import apply_json_patch, apply_merge_patch, apply_strategic_merge_patch
from kplane.api.resources import ResourceType
from kplane.api.schema import Schema
from kplane.api.selectors import parse_field_selector, parse_label_selector
from kplane.apiserver import codec
from kplane.apiserver.admission import Admission
from kplane.apiserver.context import RequestContext, Response
from kplane.apiserver.registry import Registry
from kplane.apiserver.table import to_table
from kplane.apiserver.verbrules import (
    as_decode_error,
    decode_continue,
    encode_continue,
    graceful_seconds,
    pending_finalizers,
    present,
    to_storage_version,
    unchanged,
    unsupported_patch_type,
)
from kplane.storage import (
    CompactedError,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    RevisionConflictError,
    Store,
)

Obj = dict[str, Any]
PATCH_RETRIES = 20  # upstream retries conflicts of unconditional patches inside GuaranteedUpdate
BASE_FIELD_SELECTORS = ("metadata.name", "metadata.namespace")


class ResourceService:
    """Implements the verbs for every resource type, built-in or custom."""

    def __init__(self, store: Store, registry: Registry, admission: Admission) -> None:
        self.store = store
        self.registry = registry
        self.admission = admission

    # --- helpers -----------------------------------------------------------------------------------

    def _not_found(self, rtype: ResourceType, name: str) -> status.StatusError:
        return status.not_found(rtype.plural, rtype.group, name)

    def _key(self, ctx: RequestContext, name: str | None = None) -> str:
        return ctx.rtype.key(ctx.path.namespace, name if name is not None else ctx.path.name)

    def _current(self, ctx: RequestContext) -> Obj:
        obj = self.store.get(self._key(ctx))
        if obj is None:
            raise self._not_found(ctx.rtype, ctx.path.name)
        return obj

    def _latest(self, ctx: RequestContext) -> Obj:
        """The object a patch builds on: the newest staged state, so that concurrent patches of one object
        queue up behind each other instead of conflicting (see `Store.latest`)."""
        obj = self.store.latest(self._key(ctx))
        if obj is None:
            raise self._not_found(ctx.rtype, ctx.path.name)
        return obj

    @staticmethod
    def _duplicates(ctx: RequestContext, decoded: Obj | None = None) -> list[str]:
        """Fields the request body names twice; not looked for when field validation is off."""
        if ctx.field_validation() == "Ignore":
            return []
        return codec.duplicate_fields(ctx.body, ctx.content_type, decoded)

    def _manager(self, ctx: RequestContext) -> str:
        return ctx.query.get("fieldManager") or manager_from_user_agent(ctx.user_agent)

    def _check_namespace(self, ctx: RequestContext) -> None:
        if not ctx.rtype.namespaced:
            return
        ns_type = self.registry.resolve("", "v1", "namespaces")
        assert ns_type is not None
        namespace = self.store.get(ns_type.key(None, ctx.path.namespace or ""))
        if namespace is None:
            raise status.not_found("namespaces", "", ctx.path.namespace or "")
        if namespace.get("metadata", {}).get("deletionTimestamp"):
            raise status.StatusError(
                403, "Forbidden",
                f"{ctx.rtype.plural} \"{ctx.path.name or ''}\" is forbidden: unable to create new content in "
                f"namespace {ctx.path.namespace} because it is being terminated",
                kind=ctx.rtype.plural, group=ctx.rtype.group,
                causes=[status.Cause("NamespaceTerminating", f"namespace {ctx.path.namespace} is being terminated",
                                     "metadata.namespace")])

    def _check_body_identity(self, ctx: RequestContext, obj: Obj, *, name_required: bool) -> None:
        """apiVersion/kind default from the URL; a mismatch, a foreign namespace or name is a 400."""
        rtype = ctx.rtype
        api_version = obj.setdefault("apiVersion", rtype.api_version)
        kind = obj.setdefault("kind", rtype.kind)
        if kind != rtype.kind or api_version != rtype.api_version:
            group, _, version = api_version.rpartition("/")
            served = self.registry.resolve(group, version, rtype.plural)
            if not (kind == rtype.kind and served is not None and group == rtype.group):
                raise status.bad_request(
                    f"the API version in the data ({api_version}) does not match the expected API version "
                    f"({rtype.api_version})" if kind == rtype.kind else
                    f"the kind in the data ({kind}) does not match the expected kind ({rtype.kind})")
        metadata = meta.metadata(obj)
        if rtype.namespaced:
            namespace = metadata.get("namespace")
            if namespace and namespace != ctx.path.namespace:
                raise status.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request")
            metadata["namespace"] = ctx.path.namespace
        else:
            metadata.pop("namespace", None)
        if name_required and metadata.get("name", ctx.path.name) != ctx.path.name:
            raise status.bad_request(
                f"the name of the object ({metadata.get('name')}) does not match the name on the URL "
                f"({ctx.path.name})")

    def _size_check(self, obj: Obj) -> None:
        if len(orjson.dumps(obj)) > codec.MAX_OBJECT_BYTES:
            raise status.StatusError(413, "RequestEntityTooLarge", "etcdserver: request is too large")

    def _respond(self, ctx: RequestContext, code: int, obj: Obj) -> Response:
        return Response(code, present(ctx.rtype, obj))

    # --- reads -------------------------------------------------------------------------------------

    async def get(self, ctx: RequestContext) -> Response:
        obj = self._current(ctx)
        table, _ = codec.wants_table(ctx.accept)
        if table:
            return Response(200, to_table(ctx.rtype, [present(ctx.rtype, obj)], list_meta={
                "resourceVersion": obj.get("metadata", {}).get("resourceVersion", "")},
                include_object=codec.include_object_policy(ctx.query.get("includeObject"))))
        return self._respond(ctx, 200, obj)

    def selector_predicate(self, ctx: RequestContext) -> tuple[Any, str | None]:
        labels = parse_label_selector(ctx.query.get("labelSelector"))
        fields = parse_field_selector(
            ctx.query.get("fieldSelector"), BASE_FIELD_SELECTORS + tuple(ctx.rtype.selectable_fields))

        def matches(obj: Obj) -> bool:
            return labels.matches(obj.get("metadata", {}).get("labels") or {}) and fields.matches(obj)

        if labels.empty and not fields.requirements:
            return None, None
        return matches, fields.exact_name()

    async def list(self, ctx: RequestContext) -> Response:
        rtype = ctx.rtype
        predicate, _ = self.selector_predicate(ctx)
        limit = ctx.query.integer("limit") or None
        token = ctx.query.get("continue")
        rv = ctx.query.get("resourceVersion")
        match = ctx.query.get("resourceVersionMatch")
        if match and match not in ("Exact", "NotOlderThan"):
            raise status.bad_request(f'resourceVersionMatch: unsupported value "{match}"')
        if match and not rv:
            raise status.invalid("ListOptions", "meta.k8s.io", "", [status.field_forbidden(
                "resourceVersionMatch", "resourceVersionMatch is forbidden unless resourceVersion is provided")])
        revision: int | None = None
        start: str | None = None
        if token:
            if rv:
                raise status.bad_request("specifying resource version is not allowed when using continue")
            revision, start = decode_continue(token)
        elif rv and match == "Exact":
            revision = self._parse_rv(rv)
        elif rv and rv != "0":
            wanted = self._parse_rv(rv)
            if wanted > self.store.revision:
                raise status.StatusError(504, "Timeout", f"Too large resource version: {wanted}, current: "
                                         f"{self.store.revision}")
        if rv == "0" and not token:
            limit = None
        prefix = rtype.key_prefix(ctx.path.namespace)
        try:
            result = self.store.list(prefix, start_after=start, limit=limit, revision=revision, predicate=predicate)
        except CompactedError:
            raise status.gone("The provided continue parameter is too old to display a consistent list result. "
                              "You can start a new list without the continue parameter, or use the continue "
                              "token in this response to retrieve the remainder of the results.") from None
        except FutureRevisionError:
            raise status.StatusError(504, "Timeout", "Too large resource version") from None
        list_meta: Obj = {"resourceVersion": str(result.revision)}
        if result.continue_key is not None:
            list_meta["continue"] = encode_continue(result.revision, result.continue_key)
            if result.remaining:
                list_meta["remainingItemCount"] = result.remaining
        items = [present(rtype, item) for item in result.items]
        table, _ = codec.wants_table(ctx.accept)
        if table:
            return Response(200, to_table(rtype, items, list_meta=list_meta,
                                          include_object=codec.include_object_policy(ctx.query.get("includeObject"))))
        return Response(200, {"kind": rtype.list_kind, "apiVersion": rtype.api_version,
                              "metadata": list_meta, "items": items})

    @staticmethod
    def _parse_rv(rv: str) -> int:
        try:
            value = int(rv)
        except ValueError:
            raise status.bad_request(f'invalid resource version "{rv}"') from None
        if value < 0:
            raise status.bad_request(f'invalid resource version "{rv}"')
        return value

    # --- writes ------------------------------------------------------------------------------------

    async def create(self, ctx: RequestContext, obj: Obj | None = None) -> Response:
        rtype = ctx.rtype
        duplicates: list[str] = []
        if obj is None:
            obj = codec.decode_object(ctx.body, ctx.content_type)
            duplicates = self._duplicates(ctx, obj)
        self._check_body_identity(ctx, obj, name_required=False)
        metadata = meta.metadata(obj)
        if not metadata.get("name"):
            if metadata.get("generateName"):
                metadata["name"] = meta.generated_name(str(metadata["generateName"]))
            else:
                raise status.invalid(rtype.kind, rtype.group, "", [status.Cause(
                    "FieldValueRequired", "Required value: name or generateName is required", "metadata.name")])
        ctx.path.name = str(metadata["name"])
        self._check_namespace(ctx)
        meta.prepare_create(obj)
        if "status" in rtype.subresources and rtype.kind not in ("Node",):
            obj.pop("status", None)
        try:
            admitted = self.admission.admit(rtype, obj, None, field_validation=ctx.field_validation(), owned=True,
                                            duplicates=duplicates)
        except status.StatusError as err:
            raise as_decode_error(err, obj, rtype) from None
        ctx.warnings.extend(admitted.warnings)
        obj = admitted.obj
        now = meta.now_rfc3339()
        if not ctx.query.get("_skipManagedFields"):
            obj = record_update(None, obj, manager=self._manager(ctx), schema=self.admission.schema(rtype),
                                api_version=rtype.api_version, now=now)
        meta.strip_empty_metadata(obj)
        to_storage_version(rtype, obj)
        self._size_check(obj)
        if ctx.dry_run:
            if self.store.get(self._key(ctx)) is not None:
                raise status.already_exists(rtype.plural, rtype.group, ctx.path.name)
            return self._respond(ctx, 201, obj)
        try:
            stored = await self.store.create(self._key(ctx), obj)
        except KeyExistsError:
            raise status.already_exists(rtype.plural, rtype.group, ctx.path.name) from None
        return self._respond(ctx, 201, stored)

    async def update(self, ctx: RequestContext) -> Response:
        obj = codec.decode_object(ctx.body, ctx.content_type)
        self._check_body_identity(ctx, obj, name_required=True)
        meta.metadata(obj).setdefault("name", ctx.path.name)
        rv = str(obj.get("metadata", {}).get("resourceVersion", "") or "")
        old = self.store.get(self._key(ctx))
        if old is None:
            raise self._not_found(ctx.rtype, ctx.path.name)
        if not rv and ctx.rtype.crd_name:
            raise status.invalid(ctx.rtype.kind, ctx.rtype.group, ctx.path.name, [status.Cause(
                "FieldValueInvalid", "Invalid value: 0x0: must be specified for an update",
                "metadata.resourceVersion")])
        expected = self._parse_rv(rv) if rv else None
        body = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind")}
        try:
            code, stored = await self._write_update(ctx, old, obj, expected)
        except status.StatusError as err:
            raise as_decode_error(err, body, ctx.rtype) from None
        return self._respond(ctx, code, stored)

    def _merge_subresource(self, ctx: RequestContext, old: Obj, new: Obj) -> Obj:
        """Main-resource writes keep the old status; ``/status`` writes keep everything but status."""
        sub = ctx.path.subresource
        if sub == "finalize":
            merged = meta.deep_copy(old)
            merged.setdefault("spec", {})["finalizers"] = (new.get("spec") or {}).get("finalizers") or []
            return merged
        if sub == "status":
            merged = meta.deep_copy(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new_meta, merged_meta = new.get("metadata", {}), meta.metadata(merged)
            for key in ("labels", "annotations", "resourceVersion"):
                if key in new_meta:
                    merged_meta[key] = new_meta[key]
            merged_meta["managedFields"] = new_meta.get("managedFields", merged_meta.get("managedFields"))
            return merged
        if "status" in ctx.rtype.subresources:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        return new

    async def _write_update(self, ctx: RequestContext, old: Obj, new: Obj, expected: int | None,
                            *, record: bool = True) -> tuple[int, Obj]:
        rtype = ctx.rtype
        if expected is not None and str(expected) != old["metadata"].get("resourceVersion"):
            raise status.conflict(rtype.plural, rtype.group, ctx.path.name, status.MODIFIED)
        new = self._merge_subresource(ctx, old, new)
        meta.carry_over_update(old, new, status_is_subresource="status" in rtype.subresources)
        self._check_finalizers(ctx, old, new)
        admitted = self.admission.admit(rtype, new, old, field_validation=ctx.field_validation(),
                                        subresource=ctx.path.subresource,
                                        duplicates=self._duplicates(ctx) if record else ())
        ctx.warnings.extend(admitted.warnings)
        new = admitted.obj
        if record:
            new = record_update(old, new, manager=self._manager(ctx), schema=self.admission.schema(rtype),
                                api_version=rtype.api_version, now=meta.now_rfc3339(),
                                subresource=ctx.path.subresource)
        meta.strip_empty_metadata(new)
        new["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
        to_storage_version(rtype, new)
        if unchanged(old, new):
            return 200, await self._committed(ctx, old)
        self._size_check(new)
        finished = new["metadata"].get("deletionTimestamp") and not pending_finalizers(rtype, new)
        if ctx.dry_run:
            return 200, new
        revision = int(old["metadata"]["resourceVersion"])
        try:
            if finished:
                return 200, await self.store.delete(self._key(ctx), expected_revision=revision)
            return 200, await self.store.update(self._key(ctx), new, expected_revision=revision)
        except RevisionConflictError:
            raise status.conflict(rtype.plural, rtype.group, ctx.path.name, status.MODIFIED) from None
        except KeyNotFoundError:
            raise self._not_found(rtype, ctx.path.name) from None

    async def _committed(self, ctx: RequestContext, obj: Obj) -> Obj:
        """`obj` once it is committed. A no-op write answers with the object it was based on, which may be
        a staged write (`_latest`) that no reader may see before its commit; should that commit fail, the
        caller's base is gone, which is a conflict (retried by unconditional patches and deletes)."""
        key = ctx.rtype.key(obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if self.store.get(key) is obj:
            return obj
        await self.store.settled(key)
        committed = self.store.get(key)
        version = obj["metadata"].get("resourceVersion")
        if committed is None or committed["metadata"].get("resourceVersion") != version:
            raise status.conflict(ctx.rtype.plural, ctx.rtype.group, obj["metadata"]["name"], status.MODIFIED)
        return committed

    @staticmethod
    def _check_finalizers(ctx: RequestContext, old: Obj, new: Obj) -> None:
        if not old["metadata"].get("deletionTimestamp"):
            return
        added = set(new["metadata"].get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
        if added:
            raise status.invalid(ctx.rtype.kind, ctx.rtype.group, ctx.path.name, [status.field_forbidden(
                "metadata.finalizers", "no new finalizers can be added if the object is being deleted")])

    async def patch(self, ctx: RequestContext) -> Response:
        patch_type = codec.media_type(ctx.content_type)
        if patch_type not in codec.PATCH_TYPES:
            raise unsupported_patch_type(ctx.rtype)
        if len(ctx.body) > codec.MAX_REQUEST_BYTES:
            raise codec.too_large(codec.MAX_REQUEST_BYTES)
        if patch_type == codec.STRATEGIC_PATCH and ctx.rtype.crd_name:
            raise unsupported_patch_type(ctx.rtype)
        if patch_type == codec.APPLY_PATCH:
            return await self._apply(ctx)
        for _ in range(PATCH_RETRIES):
            old = self._latest(ctx)
            # Every patcher returns a new object sharing nothing with its input, so the shared stored
            # object is handed over as it is rather than copied first.
            current = present(ctx.rtype, old)
            if patch_type == codec.JSON_PATCH:
                patched = apply_json_patch(current, ctx.body)
            elif patch_type == codec.MERGE_PATCH:
                patched = apply_merge_patch(current, ctx.body)
            else:
                patched = apply_strategic_merge_patch(current, ctx.body, self.admission.schema(ctx.rtype))
            self._check_body_identity(ctx, patched, name_required=True)
            rv = str(patched.get("metadata", {}).get("resourceVersion", "") or "")
            precondition = rv != old["metadata"].get("resourceVersion")
            expected = self._parse_rv(rv) if rv else int(old["metadata"]["resourceVersion"])
            try:
                code, stored = await self._write_update(ctx, old, patched, expected)
            except status.StatusError as err:
                if err.reason == "Conflict" and not precondition:
                    continue
                raise
            return self._respond(ctx, code, stored)
        raise status.conflict(ctx.rtype.plural, ctx.rtype.group, ctx.path.name, status.MODIFIED)

    async def _apply(self, ctx: RequestContext) -> Response:
        rtype = ctx.rtype
        manager = ctx.query.get("fieldManager")
        applied = codec.decode_object(ctx.body, codec.YAML)
        self._check_body_identity(ctx, applied, name_required=True)
        force = ctx.query.flag("force")
        schema = self.admission.schema(rtype)
        for _ in range(PATCH_RETRIES):
            old = self.store.latest(self._key(ctx))
            now = meta.now_rfc3339()
            live = present(rtype, meta.deep_copy(old)) if old is not None else None
            merged = server_side_apply(live, applied, manager=manager, schema=schema, force=force,
                                       api_version=rtype.api_version, now=now, subresource=ctx.path.subresource,
                                       reset_fields=self._reset_fields(ctx, applied, schema))
            if old is None:
                if ctx.path.subresource:
                    raise self._not_found(rtype, ctx.path.name)
                ctx.query.values["_skipManagedFields"] = "1"
                return await self.create(ctx, merged)
            try:
                code, stored = await self._write_update(ctx, old, merged,
                                                        int(old["metadata"]["resourceVersion"]), record=False)
            except status.StatusError as err:
                if err.reason == "Conflict" and not err.causes:
                    continue
                raise
            return self._respond(ctx, code, stored)
        raise status.conflict(rtype.plural, rtype.group, ctx.path.name, status.MODIFIED)

    @staticmethod
    def _reset_fields(ctx: RequestContext, applied: Obj, schema: Schema) -> FieldSet | None:
        """Fields an endpoint ignores (upstream ``GetResetFields``): status on the main resource, the rest
        on ``/status``; apply must neither own nor conflict on them."""
        if "status" not in ctx.rtype.subresources:
            return None
        status_only = FieldSet.from_paths([make_path("status")])
        if ctx.path.subresource == "status":
            return fieldset_of(applied, schema).difference(fieldset_of({"status": applied.get("status")}, schema))
        return status_only

    async def bind(self, ctx: RequestContext) -> Response:
        """``pods/binding``: the scheduler's only way to set ``spec.nodeName`` (updates may not change it)."""
        binding = codec.decode_object(ctx.body, ctx.content_type)
        target = binding.get("target")
        node = str(target.get("name") or "") if isinstance(target, dict) else ""
        if not node:
            raise status.invalid("Binding", "", ctx.path.name, [status.field_required("target.name")])
        for _ in range(PATCH_RETRIES):
            old = self._current(ctx)
            if old["metadata"].get("deletionTimestamp"):
                raise status.conflict("pods", "", ctx.path.name, "pod is being deleted, cannot be assigned to a host")
            current_node = (old.get("spec") or {}).get("nodeName")
            if current_node:
                raise status.conflict("pods", "", ctx.path.name,
                                      f"pod {ctx.path.name} is already assigned to node \"{current_node}\"")
            new = meta.deep_copy(old)
            new.setdefault("spec", {})["nodeName"] = node
            conditions = [c for c in new.setdefault("status", {}).get("conditions") or []
                          if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                               "lastTransitionTime": meta.now_rfc3339()})
            new["status"]["conditions"] = conditions
            if ctx.dry_run:
                break
            try:
                await self.store.update(self._key(ctx), new, expected_revision=int(old["metadata"]["resourceVersion"]))
            except RevisionConflictError:
                continue
            break
        return Response(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})

    # --- deletes -----------------------------------------------------------------------------------

    def _delete_options(self, ctx: RequestContext) -> Obj:
        options: Obj = {}
        if ctx.body.strip():
            decoded = codec.decode_json(ctx.body)
            if not isinstance(decoded, dict):
                raise status.bad_request("the body of the request must be a DeleteOptions object")
            options = decoded
        for key in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents"):
            if ctx.query.get(key) and key not in options:
                options[key] = ctx.query.get(key)
        if ctx.query.get("dryRun"):
            options["dryRun"] = [ctx.query.get("dryRun")]
        policy = options.get("propagationPolicy")
        if policy not in (None, "Foreground", "Background", "Orphan"):
            raise status.invalid("DeleteOptions", "meta.k8s.io", "", [status.field_unsupported(
                "propagationPolicy", policy, ["Foreground", "Background", "Orphan", "nil"])])
        return options

    async def delete(self, ctx: RequestContext) -> Response:
        options = self._delete_options(ctx)
        old = self._current(ctx)
        code, obj = await self._delete_one(ctx, old, options)
        return self._respond(ctx, code, obj)

    async def _delete_one(self, ctx: RequestContext, old: Obj, options: Obj) -> tuple[int, Obj]:
        """Delete with the object as last read; a concurrent write (a status update racing the delete) makes
        it read again and retry, as upstream's GuaranteedUpdate does, on the newest staged state so that it
        queues behind that write (see `_latest`). Preconditions are checked on every read."""
        key = ctx.rtype.key(old["metadata"].get("namespace"), old["metadata"]["name"])
        for _ in range(PATCH_RETRIES):
            try:
                return await self._delete_attempt(ctx, old, options)
            except RevisionConflictError:
                current = self.store.latest(key)
                if current is None:
                    await self.store.settled(key)
                    raise self._not_found(ctx.rtype, old["metadata"]["name"]) from None
                old = current
        raise status.conflict(ctx.rtype.plural, ctx.rtype.group, old["metadata"]["name"], status.MODIFIED)

    async def _delete_attempt(self, ctx: RequestContext, old: Obj, options: Obj) -> tuple[int, Obj]:
        rtype = ctx.rtype
        name = old["metadata"]["name"]
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"].get("uid"):
            raise status.conflict(rtype.plural, rtype.group, name,
                                  f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                                  f"{old['metadata'].get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"].get("resourceVersion"):
            raise status.conflict(rtype.plural, rtype.group, name,
                                  f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                                  f"ResourceVersion in object meta: {old['metadata'].get('resourceVersion')}")
        dry_run = "All" in (options.get("dryRun") or [])
        finalizers = list(old["metadata"].get("finalizers") or [])
        policy = options.get("propagationPolicy")
        if policy is None and str(options.get("orphanDependents", "")).lower() == "true":
            policy = "Orphan"
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        graceful = graceful_seconds(rtype, old, options)
        pending = finalizers or pending_finalizers(rtype, {**old, "metadata": {}})
        if not pending and graceful == 0:
            if dry_run:
                return 200, await self._committed(ctx, old)
            key = rtype.key(old["metadata"].get("namespace"), name)
            try:
                return 200, await self.store.delete(key, expected_revision=int(old["metadata"]["resourceVersion"]))
            except KeyNotFoundError:
                raise self._not_found(rtype, name) from None
        if old["metadata"].get("deletionTimestamp") and finalizers == old["metadata"].get("finalizers", []):
            return 202 if graceful else 200, await self._committed(ctx, old)
        new = meta.deep_copy(old)
        new["metadata"]["finalizers"] = finalizers
        new["metadata"].setdefault("deletionTimestamp", meta.now_rfc3339())
        new["metadata"]["deletionGracePeriodSeconds"] = graceful
        if rtype.kind == "Namespace" and not rtype.group:
            new.setdefault("status", {})["phase"] = "Terminating"
        if dry_run:
            return 200, new
        key = rtype.key(old["metadata"].get("namespace"), name)
        try:
            stored = await self.store.update(key, new, expected_revision=int(old["metadata"]["resourceVersion"]))
        except KeyNotFoundError:
            raise self._not_found(rtype, name) from None
        return 200, stored

    async def delete_collection(self, ctx: RequestContext) -> Response:
        options = self._delete_options(ctx)
        predicate, _ = self.selector_predicate(ctx)
        result = self.store.list(ctx.rtype.key_prefix(ctx.path.namespace), predicate=predicate)
        deleted = []
        for item in result.items:
            try:
                _, obj = await self._delete_one(ctx, item, options)
            except status.StatusError as err:
                if err.code == 404:
                    continue
                raise
            deleted.append(present(ctx.rtype, obj))
        return Response(200, {"kind": ctx.rtype.list_kind, "apiVersion": ctx.rtype.api_version,
                              "metadata": {"resourceVersion": str(self.store.revision)}, "items": deleted})
