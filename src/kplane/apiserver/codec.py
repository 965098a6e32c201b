"""Request and response bodies: JSON, YAML and protobuf in; JSON (or a Table) out.

Kubernetes clients differ in what they send: kubectl's typed ``create`` commands send protobuf, the
Python client may send no Content-Type at all, ``kubectl apply --server-side`` sends
``application/apply-patch+yaml``. Decoding all of it in one place keeps handlers working on plain dicts.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import yaml

from kplane.api import status

MAX_REQUEST_BYTES = 3 * 1024 * 1024  # upstream's request body limit (3 MiB)
MAX_OBJECT_BYTES = int(1.5 * 1024 * 1024)  # etcd's default request size limit, which the real server hits

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)


def media_type(content_type: str) -> str:
    """The bare media type of a Content-Type header (parameters such as charset dropped)."""
    return content_type.split(";", 1)[0].strip().lower()


def too_large(limit: int) -> status.StatusError:
    return status.StatusError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def decode_object(body: bytes, content_type: str) -> dict[str, Any]:
    """Decode a create/update body into a JSON object, as the real server would accept it."""
    if len(body) > MAX_REQUEST_BYTES:
        raise too_large(MAX_REQUEST_BYTES)
    kind = media_type(content_type) or JSON
    if kind == PROTOBUF:
        from kplane.apiserver.protobuf import decode_protobuf_object

        return decode_protobuf_object(body)
    if kind in (JSON, "*/*", "application/json-patch+json"):
        value = decode_json(body)
    elif kind in (YAML, "application/x-yaml", "text/yaml"):
        value = decode_yaml(body)
    else:
        raise status.unsupported_media_type(content_type)
    if not isinstance(value, dict):
        raise status.bad_request(_not_an_object(value))
    return value


def decode_json(body: bytes) -> Any:
    if not body.strip():
        raise status.bad_request("the request body is empty; an object is required")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise status.bad_request(f"the body of the request could not be decoded as JSON: {err}") from None


def duplicate_fields(body: bytes, content_type: str, decoded: Any = None) -> list[str]:
    """Paths of the fields a JSON body names more than once, as strict decoding reports them
    (``duplicate field "spec.replicas"``); the last value is the one decoded, as in Go. Other media types
    give none (YAML duplicates already fail to decode; protobuf has no such thing).

    Most bodies are compact JSON, for which the number of ``":`` in the body equals that of the decoded
    object written out again unless a key was dropped, so the exact walk runs only when the counts differ.
    ``decoded``: the body as the caller already decoded it (and has not changed yet), to save decoding it
    again."""
    if media_type(content_type) not in (JSON, "*/*", "application/merge-patch+json",
                                          "application/strategic-merge-patch+json") or not body.strip():
        return []
    if decoded is None:
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            return []
    if body.count(b'":') == orjson.dumps(decoded).count(b'":'):
        return []
    found: list[str] = []
    _find_duplicates(json.loads(body, object_pairs_hook=_Pairs), "", found)
    return found


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as the key/value pairs it was written with, duplicates included."""


def _find_duplicates(value: Any, path: str, found: list[str]) -> None:
    if isinstance(value, _Pairs):
        seen: set[str] = set()
        for key, item in value:
            child = f"{path}.{key}" if path else key
            if key in seen and child not in found:
                found.append(child)
            seen.add(key)
            _find_duplicates(item, child, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _find_duplicates(item, f"{path}[{index}]", found)


def decode_yaml(body: bytes) -> Any:
    try:
        return yaml.load(body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        line = str(err).replace("\n", " ")
        raise status.bad_request(f"the body of the request could not be decoded as YAML: {line}") from None


def _not_an_object(value: Any) -> str:
    found = "array" if isinstance(value, list) else type(value).__name__
    return f"the body of the request must be a JSON object, found {found}"


def encode(value: Any) -> bytes:
    return orjson.dumps(value)


def wants_table(accept: str) -> tuple[bool, str]:
    """Whether the client asked for a ``meta.k8s.io`` Table (kubectl get does), and the apiVersion to use."""
    if "as=Table" not in accept:
        return False, ""
    for clause in accept.split(","):
        params = dict(
            p.strip().split("=", 1) for p in clause.split(";")[1:] if "=" in p
        )
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return True, f"meta.k8s.io/{params.get('v', 'v1')}"
    return False, ""


def include_object_policy(value: str) -> str:
    if value in ("", "Metadata"):
        return "Metadata"
    if value in ("None", "Object"):
        return value
    raise status.bad_request(
        f'includeObject: unsupported value "{value}": supported values: "None", "Metadata", "Object"')
