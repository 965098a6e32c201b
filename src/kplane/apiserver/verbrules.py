"""Pure rules the REST verbs share: an object's served and stored forms, continue tokens, no-op writes,
pending finalizers and grace periods. Nothing here touches the store or a request."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from kplane.api import status
from kplane.api.resources import ResourceType
from kplane.apiserver import codec

Obj = dict[str, Any]


def pending_finalizers(rtype: ResourceType, obj: Obj) -> bool:
    """Whether anything still holds the object: metadata finalizers, or a Namespace's spec finalizers."""
    if obj.get("metadata", {}).get("finalizers"):
        return True
    return rtype.kind == "Namespace" and not rtype.group and bool((obj.get("spec") or {}).get("finalizers"))


def present(rtype: ResourceType, obj: Obj) -> Obj:
    """An object as seen through the requested version: stored objects of every version share keys."""
    if obj.get("apiVersion") == rtype.api_version and obj.get("kind") == rtype.kind:
        return obj
    out = dict(obj)
    out["apiVersion"] = rtype.api_version
    out["kind"] = rtype.kind
    return out


def to_storage_version(rtype: ResourceType, obj: Obj) -> None:
    """Keep objects in the storage version (conversion ``None`` only rewrites apiVersion), so a write
    through another served version neither reads as a change nor leaves the store mixed, as upstream."""
    if rtype.storage_version and rtype.storage_version != rtype.version:
        obj["apiVersion"] = f"{rtype.group}/{rtype.storage_version}" if rtype.group else rtype.storage_version


def unsupported_patch_type(rtype: ResourceType) -> status.StatusError:
    """415 naming the patch types this resource takes (patch.go: ``NewUnsupportedMediaTypeError(patchTypes)``);
    custom resources take no strategic merge patch."""
    accepted = [t for t in codec.PATCH_TYPES if not (rtype.crd_name and t == codec.STRATEGIC_PATCH)]
    return status.StatusError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                              "accepted media types include: " + ", ".join(accepted))


def as_decode_error(err: status.StatusError, body: Obj, rtype: ResourceType) -> status.StatusError:
    """Create and update decode their body, so upstream reports strict-decoding failures through
    ``transformDecodeError`` (endpoints/handlers/rest.go) with the body's kind and version; patches do not."""
    if err.reason != "BadRequest" or not err.message.startswith("strict decoding error"):
        return err
    kind = str(body.get("kind") or rtype.kind)
    version = str(body.get("apiVersion") or rtype.api_version).rsplit("/", 1)[-1]
    return status.bad_request(f'{kind} in version "{version}" cannot be handled as a {rtype.kind}: {err.message}')


def encode_continue(revision: int, key: str) -> str:
    token = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": key})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise status.bad_request("continue key is not valid: the continue token could not be decoded") from None


def unchanged(old: Obj, new: Obj) -> bool:
    """A write that changes nothing (managedFields timestamps aside) is not stored, as upstream. Compared
    field by field, so that the usual answer (changed) comes from the first differing field, with no
    copies made."""
    def same(a: Obj, b: Obj, skip: str) -> bool:
        if len(a) - (skip in a) != len(b) - (skip in b):
            return False
        return all(k == skip or (k in a and a[k] == v) for k, v in b.items())

    old_meta, new_meta = old.get("metadata", {}), new.get("metadata", {})
    if not (same(old, new, "metadata") and same(old_meta, new_meta, "managedFields")):
        return False
    old_fields, new_fields = old_meta.get("managedFields") or [], new_meta.get("managedFields") or []
    return len(old_fields) == len(new_fields) and all(
        dict(a, time="") == dict(b, time="") for a, b in zip(old_fields, new_fields, strict=True))


def graceful_seconds(rtype: ResourceType, obj: Obj, options: Obj) -> int:
    """Pods bound to a node terminate gracefully (the node agent finishes the deletion); others at once."""
    if rtype.kind != "Pod" or rtype.group or not obj.get("spec", {}).get("nodeName"):
        return 0
    if obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    requested = options.get("gracePeriodSeconds")
    if requested is not None:
        try:
            return max(int(requested), 0)
        except (TypeError, ValueError):
            raise status.bad_request("gracePeriodSeconds must be an integer") from None
    return int(obj.get("spec", {}).get("terminationGracePeriodSeconds", 30) or 0)
