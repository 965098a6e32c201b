"""JSON patch (RFC 6902) and JSON merge patch (RFC 7386) for the PATCH verb.

Both are pure functions over decoded JSON objects: the caller's object is never mutated, and failures are
raised as the same ``Status`` errors kube-apiserver sends, because clients branch on the code (kopf relies on
a failed JSON-patch ``test`` answering 422; kubectl prints the message). Sources for the codes and texts:
k8s.io/apiserver pkg/endpoints/handlers/patch.go (``applyJSPatch``, ``jsonPatcher``), k8s.io/apimachinery
pkg/api/errors ``NewGenericServerResponse``, and github.com/evanphx/json-patch ``MergePatch``.

The strategic merge algorithm lives in :mod:`kplane.api.strategic`; this module decodes its body too, so the
three patch types share one entry point and one set of decoding errors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonpatch
import jsonpointer
import orjson

from kplane.api.schema import Schema
from kplane.api.status import Cause, StatusError, bad_request, invalid
from kplane.api.strategic import strategic_merge, unprocessable

__all__ = [
    "MAX_JSON_PATCH_OPERATIONS",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "decode_patch_body",
    "go_json_kind",
    "unprocessable",
]

# patch.go: maxJSONPatchOperations; more operations than this answer 413.
MAX_JSON_PATCH_OPERATIONS = 10000

# evanphx/json-patch errBadJSONPatch; the handler maps exactly this error to 400.
_BAD_MERGE_PATCH = "Invalid JSON Patch"


def decode_patch_body(body: bytes) -> Any:
    """Decode a request body, raising 400 with Go's ``encoding/json`` wording when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise bad_request(_go_syntax_error(body, err.pos)) from None


def _go_syntax_error(body: bytes, pos: int) -> str:
    """Go's wording, approximately: it names the offending character (its context words may differ)."""
    text = body.decode("utf-8", "replace")
    if pos >= len(text.rstrip()):
        return "unexpected end of JSON input"
    char = text[pos]
    quoted = "'\\''" if char == "'" else f"'{char}'"
    return f"invalid character {quoted} looking for beginning of value"


def go_json_kind(value: Any) -> str:
    """The JSON kind as Go's ``UnmarshalTypeError`` names it (``object``, ``array``, ``number`` …)."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


def apply_json_patch(obj: Mapping[str, Any], body: bytes) -> dict[str, Any]:
    """Apply an RFC 6902 patch. Undecodable → 400; too many operations → 413; not applicable → 422."""
    ops = decode_patch_body(body)
    if ops is None:
        ops = []
    if not isinstance(ops, list):
        raise bad_request(f"json: cannot unmarshal {go_json_kind(ops)} into Go value of type jsonpatch.Patch")
    for op in ops:
        if not isinstance(op, dict):
            raise bad_request(
                f"json: cannot unmarshal {go_json_kind(op)} into Go value of type jsonpatch.Operation"
            )
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise StatusError(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: The allowed maximum operations in a JSON patch is "
            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}",
        )
    try:
        result = jsonpatch.JsonPatch(ops).apply(obj, in_place=False)
    except (
        jsonpatch.JsonPatchException,
        jsonpointer.JsonPointerException,
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
    ):
        # Upstream decodes operations lazily, so a malformed operation (unknown op, missing path) fails
        # at apply time and is reported like a failed test: 422.
        raise unprocessable() from None
    return _require_object(result)


def apply_merge_patch(obj: Mapping[str, Any], body: bytes) -> dict[str, Any]:
    """Apply an RFC 7386 merge patch: objects merge recursively, ``null`` deletes, anything else replaces."""
    try:
        patch = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request(_BAD_MERGE_PATCH) from None
    if isinstance(patch, list):
        # evanphx returns the array itself as the patched document; the handler then fails to decode it.
        raise _not_an_object(patch)
    if not isinstance(patch, dict):
        raise bad_request(_BAD_MERGE_PATCH)
    return _merge_object(orjson.loads(orjson.dumps(obj)), patch)


def apply_strategic_merge_patch(obj: Mapping[str, Any], body: bytes, schema: Schema) -> dict[str, Any]:
    """Apply a strategic merge patch; the body must be a JSON object (``null`` changes nothing)."""
    patch = decode_patch_body(body)
    if patch is None:
        patch = {}
    if not isinstance(patch, dict):
        raise bad_request(
            f"json: cannot unmarshal {go_json_kind(patch)} into Go value of type map[string]interface {{}}"
        )
    return strategic_merge(obj, patch, schema)


def _merge_object(target: Mapping[str, Any] | None, patch: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(target) if target is not None else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            result[key] = _merge_object(current if isinstance(current, dict) else None, value)
        else:
            result[key] = _prune_nulls(value)
    return result


def _prune_nulls(value: Any) -> Any:
    """Values copied in whole lose their null members, as evanphx ``pruneNulls`` does (arrays keep slots)."""
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) for v in value]
    return value


def _require_object(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise _not_an_object(result)
    return result


def _not_an_object(value: Any) -> StatusError:
    """A patch that turns the object into a non-object fails decoding: 422 on field ``patch`` (patch.go)."""
    text = orjson.dumps(value).decode()
    detail = f"json: cannot unmarshal {go_json_kind(value)} into Go value of type map[string]interface {{}}"
    cause = Cause(
        "FieldValueInvalid", f"Invalid value: {json.dumps(text, ensure_ascii=False)}: {detail}", "patch"
    )
    return invalid("", "", "", [cause])
