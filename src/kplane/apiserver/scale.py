"""The ``scale`` subresource: an ``autoscaling/v1`` Scale view of anything with replicas.

``kubectl scale`` and autoscalers use it. Built-in workloads keep replicas at ``.spec.replicas``; a CRD
names its paths in ``subresources.scale``. Writes change only the replica count of the parent object.
"""

from __future__ import annotations

from typing import Any

from kplane.api import meta, status
from kplane.api.jsonpath import evaluate
from kplane.api.patch import apply_json_patch, apply_merge_patch
from kplane.api.selectors import label_selector_from_dict
from kplane.apiserver import codec
from kplane.apiserver.context import RequestContext, Response
from kplane.apiserver.handlers import ResourceService

Obj = dict[str, Any]
DEFAULT_PATHS = (".spec.replicas", ".status.replicas", "")


def _paths(ctx: RequestContext) -> tuple[str, str, str]:
    return ctx.rtype.scale_paths or DEFAULT_PATHS


def _first(path: str, obj: Obj) -> Any:
    if not path:
        return None
    try:
        found = evaluate(path, obj)
    except ValueError:
        return None
    return found[0] if found else None


def to_scale(ctx: RequestContext, obj: Obj) -> Obj:
    spec_path, status_path, selector_path = _paths(ctx)
    metadata = obj.get("metadata", {})
    scale: Obj = {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: metadata[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in metadata},
        "spec": {"replicas": _first(spec_path, obj) or 0},
        "status": {"replicas": _first(status_path, obj) or 0},
    }
    if ctx.rtype.crd_name:
        selector = _first(selector_path, obj)
        if selector:
            scale["status"]["selector"] = selector
    else:
        selector_obj = obj.get("spec", {}).get("selector")
        if isinstance(selector_obj, dict):
            scale["status"]["selector"] = str(label_selector_from_dict(selector_obj))
    return scale


def _set_path(obj: Obj, path: str, value: int) -> None:
    parts = [p for p in path.split(".") if p]
    target = obj
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value


class ScaleService:
    def __init__(self, service: ResourceService) -> None:
        self.service = service

    async def get(self, ctx: RequestContext) -> Response:
        return Response(200, to_scale(ctx, self.service._current(ctx)))

    async def update(self, ctx: RequestContext) -> Response:
        scale = codec.decode_object(ctx.body, ctx.content_type)
        return await self._write(ctx, scale)

    async def patch(self, ctx: RequestContext) -> Response:
        current = to_scale(ctx, self.service._current(ctx))
        kind = codec.media_type(ctx.content_type)
        if kind == codec.JSON_PATCH:
            scale = apply_json_patch(current, ctx.body)
        elif kind in (codec.MERGE_PATCH, codec.STRATEGIC_PATCH):
            scale = apply_merge_patch(current, ctx.body)
        else:
            raise status.unsupported_media_type(ctx.content_type)
        return await self._write(ctx, scale)

    async def _write(self, ctx: RequestContext, scale: Obj) -> Response:
        replicas = scale.get("spec", {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise status.invalid("Scale", "autoscaling", ctx.path.name, [status.field_invalid(
                "spec.replicas", replicas, "must be greater than or equal to 0")])
        old = self.service._current(ctx)
        new = meta.deep_copy(old)
        _set_path(new, _paths(ctx)[0], replicas)
        rv = str(scale.get("metadata", {}).get("resourceVersion", "") or "")
        expected = int(rv) if rv.isdigit() else int(old["metadata"]["resourceVersion"])
        ctx.path.subresource = ""
        _, stored = await self.service._write_update(ctx, old, new, expected)
        ctx.path.subresource = "scale"
        return Response(200, to_scale(ctx, stored))
