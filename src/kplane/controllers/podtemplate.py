"""Pod templates and pods as plain dicts: template hashing, building owned pods, and reading pod state.

Workload controllers plan on dicts (the JSON shape the API serves), which keeps planning pure and testable
without a server. Facts follow kube-controller-manager: `pkg/controller/controller_utils.go`
(ComputeHash, GetPodFromTemplate, FilterActivePods, ActivePods ordering) and
`pkg/api/v1/pod/util.go` (IsPodReady, IsPodAvailable).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from typing import Any

import orjson

Obj = dict[str, Any]

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"

# k8s.io/apimachinery/pkg/util/rand: SafeEncodeString maps bytes onto an alphabet without vowels (no words)
# and without look-alike characters.
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


def fnv32a(data: bytes) -> int:
    value = _FNV32_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in text)


def template_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    """A short, stable name suffix for a pod template, as upstream's ComputeHash does in spirit.

    Upstream hashes the Go struct dump with FNV-32a, mixes in the collision count and safe-encodes the
    decimal value; here the struct dump is canonical JSON (sorted keys), so equal templates hash equally.
    """
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    if collision_count:
        data += str(collision_count).encode()
    return safe_encode(str(fnv32a(data)))


def controller_ref(owner: Mapping[str, Any]) -> Obj:
    """The ownerReference a controller puts on what it creates: controller=true, blockOwnerDeletion=true."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_from_template(
    template: Mapping[str, Any],
    owner: Mapping[str, Any],
    *,
    name: str | None = None,
    generate_name: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> Obj:
    """A pod for `owner` from its template: template labels, annotations and spec, plus the owner reference."""
    tmeta = template.get("metadata") or {}
    meta: Obj = {
        "namespace": owner["metadata"].get("namespace", ""),
        "labels": {**(tmeta.get("labels") or {}), **(extra_labels or {})},
        "ownerReferences": [controller_ref(owner)],
    }
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    if name is not None:
        meta["name"] = name
    else:
        # upstream trims the prefix so that generated names stay within 63 characters
        meta["generateName"] = (generate_name or f"{owner['metadata']['name']}-")[:58]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})}


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_condition(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return None


def phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_terminating(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def is_active(pod: Mapping[str, Any]) -> bool:
    """Counts towards a controller's replicas: not finished and not being deleted (FilterActivePods)."""
    return phase(pod) not in ("Succeeded", "Failed") and not is_terminating(pod)


def is_ready(pod: Mapping[str, Any]) -> bool:
    condition = pod_condition(pod, "Ready")
    return condition is not None and condition.get("status") == "True"


def is_available(pod: Mapping[str, Any], min_ready_seconds: int, now: dt.datetime) -> bool:
    """Ready for at least minReadySeconds (IsPodAvailable)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time((pod_condition(pod, "Ready") or {}).get("lastTransitionTime"))
    return since is not None and since + dt.timedelta(seconds=min_ready_seconds) <= now


def labels_match(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in wanted.items())


def deletion_rank(pod: Mapping[str, Any]) -> tuple[int, int, int, str]:
    """Sort key putting the pods to delete first: unscheduled, then pending, then not ready, then newest.

    A simplified form of upstream's ActivePods ordering (controller_utils.go), which goes on to compare
    restart counts and ready times.
    """
    scheduled = 1 if (pod.get("spec") or {}).get("nodeName") else 0
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(phase(pod), 1)
    created = str((pod.get("metadata") or {}).get("creationTimestamp") or "")
    # newer pods go first: invert the timestamp ordering by negating each character code
    newest_first = "".join(chr(0x10FFFF - ord(ch)) for ch in created)
    return (scheduled, phase_rank, 1 if is_ready(pod) else 0, newest_first)


def set_condition(conditions: list[Obj], new: Obj, now: str) -> list[Obj]:
    """Replace or add a condition; lastTransitionTime moves only when the status changes (as upstream)."""
    result: list[Obj] = []
    found = False
    for condition in conditions:
        if condition.get("type") != new["type"]:
            result.append(condition)
            continue
        found = True
        merged = {**new}
        unchanged = condition.get("status") == new["status"]
        merged["lastTransitionTime"] = condition.get("lastTransitionTime", now) if unchanged else now
        if "lastUpdateTime" in new and unchanged and condition.get("reason") == new.get("reason"):
            merged["lastUpdateTime"] = condition.get("lastUpdateTime", now)
        result.append(merged)
    if not found:
        result.append({**new, "lastTransitionTime": now})
    return result


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> Obj | None:
    """A merge patch turning status `old` into `new` (dropped fields become null), or None if equal."""
    if dict(old) == dict(new):
        return None
    patch: Obj = {key: value for key, value in new.items() if old.get(key) != value}
    for key in old:
        if key not in new:
            patch[key] = None
    return patch
