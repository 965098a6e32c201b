"""GraphRevisions (kro v0.9, KREP-013): immutable, numbered snapshots of an RGD's spec, the pure part.

Sources: ``kubernetes-sigs/kro:pkg/graph/hash/hash.go`` (spec hash), ``pkg/controller/resourcegraphdefinition/
controller_reconcile.go`` (naming, issue, adoption, retention), ``controller_status.go`` (the
``GraphRevisionsResolved`` condition and the root ``Ready`` over four conditions), ``pkg/apis/condition_set.go``
(how ``Ready`` mirrors the most unhealthy part), ``pkg/controller/graphrevision/controller_status.go``
(a revision's own ``GraphVerified`` condition) and ``api/internal.kro.run/v1alpha1/graphrevision_types.go``.

kro compiles revisions in a separate controller into an in-memory registry that instance controllers read;
kplane compiles in the RGD controller and keeps the compiled graphs in :class:`RevisionRegistry`, so the
``WaitingForGraphRevision…`` states pass within one reconcile.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from kplane.graphs import applyset as aps
from kplane.graphs.conditions import (
    CONTROLLER_READY,
    GRAPH_ACCEPTED,
    KIND_READY,
    READY,
    Condition,
    render_conditions,
)
from kplane.graphs.crd import KRO_VERSION
from kplane.graphs.graph import Graph

GROUP, VERSION, KIND, PLURAL = "internal.kro.run", "v1alpha1", "GraphRevision", "graphrevisions"
API_VERSION = f"{GROUP}/{VERSION}"
CRD_NAME = f"{PLURAL}.{GROUP}"
HASH_LABEL = "kro.run/graph-revision-hash"
SNAPSHOT_NAME_FIELD = "spec.snapshot.name"
DEFAULT_MAX_REVISIONS = 5  # kro's --rgd-max-graph-revisions
MAX_NAME = 253

GRAPH_REVISIONS_RESOLVED = "GraphRevisionsResolved"
GRAPH_VERIFIED = "GraphVerified"
# kro's order of the root Ready's parts (rgdConditionTypes).
RGD_READY_PARTS = (GRAPH_REVISIONS_RESOLVED, GRAPH_ACCEPTED, KIND_READY, CONTROLLER_READY)
AWAITING_COMPILATION = "WaitingForGraphRevisionCompilation"

_FNV64_OFFSET, _FNV64_PRIME = 0xCBF29CE484222325, 0x100000001B3
_FNV32_OFFSET, _FNV32_PRIME = 0x811C9DC5, 0x01000193


def _fnv1a(data: bytes, offset: int, prime: int, bits: int) -> int:
    mask = (1 << bits) - 1
    value = offset
    for byte in data:
        value = ((value ^ byte) * prime) & mask
    return value


def normalized_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with the API's defaults filled in and order-insensitive lists sorted (resources by id,
    ``readyWhen``, ``includeWhen``), so reordering YAML or a server default issues no new revision."""
    out = copy.deepcopy(dict(spec))
    schema = out.get("schema")
    if isinstance(schema, dict):
        schema["group"] = schema.get("group") or "kro.run"
        schema["scope"] = schema.get("scope") or "Namespaced"
        schema.setdefault("additionalPrinterColumns", [])
        if isinstance(schema.get("metadata"), dict):
            schema["metadata"].setdefault("labels", {})
            schema["metadata"].setdefault("annotations", {})
    resources = [r for r in out.get("resources") or [] if isinstance(r, dict)]
    for resource in resources:
        resource["readyWhen"] = sorted(str(e) for e in resource.get("readyWhen") or [])
        resource["includeWhen"] = sorted(str(e) for e in resource.get("includeWhen") or [])
        resource.setdefault("forEach", [])
    out["resources"] = sorted(resources, key=lambda r: str(r.get("id", "")))
    return out


def spec_hash(spec: Mapping[str, Any]) -> str:
    """FNV-64a of the normalized spec as canonical JSON, in hex: the revision's identity for dedup."""
    data = orjson.dumps(normalized_spec(spec), option=orjson.OPT_SORT_KEYS)
    return f"{_fnv1a(data, _FNV64_OFFSET, _FNV64_PRIME, 64):016x}"


def revision_name(rgd_name: str, revision: int) -> str:
    """``<rgd>-r00001``; a name that would pass 253 characters is cut and suffixed with the FNV-32a of the
    whole RGD name, so two long names with one prefix stay apart."""
    suffix = f"-r{revision:05d}"
    if len(rgd_name) + len(suffix) <= MAX_NAME:
        return rgd_name + suffix
    suffix = f"-r{revision:05d}-{_fnv1a(rgd_name.encode(), _FNV32_OFFSET, _FNV32_PRIME, 32):08x}"
    prefix = rgd_name[: MAX_NAME - len(suffix)].rstrip(".-") or "gr"
    return prefix + suffix


def owner_reference(rgd_name: str, rgd_uid: str) -> dict[str, Any]:
    return {"apiVersion": "kro.run/v1alpha1", "kind": "ResourceGraphDefinition", "name": rgd_name,
            "uid": rgd_uid, "controller": True}


def graph_revision(rgd: Mapping[str, Any], revision: int, hash_: str) -> dict[str, Any]:
    """The GraphRevision object kro creates for ``revision`` of ``rgd`` (owned by it, labelled with the hash)."""
    meta = rgd.get("metadata") or {}
    name = str(meta.get("name", ""))
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": revision_name(name, revision),
            "labels": {aps.OWNED: "true", aps.KRO_VERSION_LABEL: KRO_VERSION, aps.RGD_NAME: name, HASH_LABEL: hash_},
            "ownerReferences": [owner_reference(name, str(meta.get("uid", "")))],
        },
        "spec": {"revision": revision,
                 "snapshot": {"name": name, "generation": int(meta.get("generation") or 0),
                              "spec": copy.deepcopy(rgd.get("spec") or {})}},
    }


def revision_of(gr: Mapping[str, Any]) -> int:
    value = (gr.get("spec") or {}).get("revision")
    return value if isinstance(value, int) else 0


def snapshot_rgd(gr: Mapping[str, Any], rgd: Mapping[str, Any]) -> dict[str, Any]:
    """The RGD as it was when ``gr`` was issued (its current metadata, the snapshot's spec), for compiling."""
    return {**rgd, "spec": ((gr.get("spec") or {}).get("snapshot") or {}).get("spec") or {}}


def split_live(revisions: Iterable[Mapping[str, Any]], rgd_name: str) -> tuple[list[dict[str, Any]], bool]:
    """This RGD's revisions that are not being deleted, oldest first, and whether any are being deleted."""
    live, terminating = [], False
    for gr in revisions:
        if ((gr.get("spec") or {}).get("snapshot") or {}).get("name") != rgd_name:
            continue
        if (gr.get("metadata") or {}).get("deletionTimestamp"):
            terminating = True
        else:
            live.append(dict(gr))
    return sorted(live, key=revision_of), terminating


def is_owned_by(gr: Mapping[str, Any], rgd_uid: str) -> bool:
    return any(ref.get("uid") == rgd_uid and ref.get("kind") == "ResourceGraphDefinition" and ref.get("controller")
               for ref in (gr.get("metadata") or {}).get("ownerReferences") or [])


def adopted_owners(gr: Mapping[str, Any], rgd_name: str, rgd_uid: str) -> list[dict[str, Any]]:
    """The owner references after adoption: a stale RGD owner (an RGD deleted and recreated) is replaced."""
    desired = owner_reference(rgd_name, rgd_uid)
    refs = [dict(r) for r in (gr.get("metadata") or {}).get("ownerReferences") or []]
    for i, ref in enumerate(refs):
        if ref.get("kind") == "ResourceGraphDefinition" and ref.get("apiVersion") == "kro.run/v1alpha1":
            refs[i] = desired
            return refs
    return [*refs, desired]


def issued(last_issued: Any, latest: int) -> int:
    """The highest revision number handed out: the status' ``lastIssuedRevision`` or the newest that exists."""
    return max(last_issued if isinstance(last_issued, int) else 0, latest)


def next_revision(last_issued: Any, latest: int) -> int:
    """Numbers are never reused, even for a revision retention has since deleted."""
    return issued(last_issued, latest) + 1


def to_prune(revisions: Sequence[Mapping[str, Any]], keep: int) -> list[str]:
    """Names of the revisions older than the newest ``keep`` (none when ``keep`` is 0 or below: no limit)."""
    if keep <= 0 or len(revisions) <= keep:
        return []
    floor = sorted(revision_of(gr) for gr in revisions)[-keep]
    return [str((gr.get("metadata") or {}).get("name")) for gr in revisions if revision_of(gr) < floor]


def resolved(revision: int) -> Condition:
    return Condition(GRAPH_REVISIONS_RESOLVED, "True", "Resolved", f"revision {revision} compiled and active")


def compiling(revision: int) -> Condition:
    return Condition(GRAPH_REVISIONS_RESOLVED, "Unknown", AWAITING_COMPILATION,
                     f"graph revision {revision} issued and awaiting compilation")


def settling() -> Condition:
    return Condition(GRAPH_REVISIONS_RESOLVED, "Unknown", "WaitingForGraphRevisionSettlement",
                     "waiting for terminating graph revisions to settle")


def unresolved(message: str) -> Condition:
    return Condition(GRAPH_REVISIONS_RESOLVED, "False", "Failed", message)


def compile_failed(revision: int) -> str:
    return f"latest graph revision {revision} failed compilation"


def awaiting(condition_type: str) -> Condition:
    """How kro initialises a condition nobody has set yet."""
    return Condition(condition_type, "Unknown", "AwaitingReconciliation",
                     f'condition "{condition_type}" is awaiting reconciliation')


def complete(conditions: Sequence[Condition], parts: Sequence[str] = RGD_READY_PARTS) -> list[Condition]:
    """``conditions`` with every part present (missing ones awaiting reconciliation), in ``parts`` order."""
    by_type = {c.type: c for c in conditions}
    return [by_type.get(part) or awaiting(part) for part in parts]


def with_ready(conditions: Sequence[Condition], parts: Sequence[str] = RGD_READY_PARTS) -> list[Condition]:
    """Append the root ``Ready``: True when every part is True, else the first False part (False trumps
    Unknown), else the first part that is Unknown or missing."""
    by_type = {c.type: c for c in conditions}
    states = [by_type.get(part) or awaiting(part) for part in parts]
    worst = next((c for c in states if c.status == "False"), None) or \
        next((c for c in states if c.status != "True"), None)
    root = Condition(READY, "True", READY, "") if worst is None else \
        Condition(READY, worst.status, worst.reason, worst.message)
    return [*conditions, root]


def verified() -> Condition:
    return Condition(GRAPH_VERIFIED, "True", "Verified", "graph revision compiled and verified")


def invalid_graph(message: str) -> Condition:
    return Condition(GRAPH_VERIFIED, "False", "InvalidGraph", message)


def revision_status(entry: Entry, old: Any, generation: Any, now: str) -> dict[str, Any]:
    """A GraphRevision's status: ``GraphVerified`` and ``Ready``, and for a compiled graph its order and
    the resources that have dependencies (kro's GraphRevision controller)."""
    verdict = verified() if entry.graph is not None else invalid_graph(entry.error or "")
    old_conditions = old.get("conditions") if isinstance(old, Mapping) else None
    status: dict[str, Any] = {"conditions": render_conditions(
        with_ready([verdict], (GRAPH_VERIFIED,)), old_conditions, generation if isinstance(generation, int) else None,
        now)}
    if entry.graph is not None:
        status["topologicalOrder"] = list(entry.graph.order)
        resources = [{"id": r.id, "dependencies": [{"id": d} for d in r.dependencies]}
                     for r in entry.graph.ordered() if r.dependencies]
        if resources:
            status["resources"] = resources
    return status


@dataclass(frozen=True)
class Entry:
    """A compiled revision: its spec hash and graph, or the compile error (kro's Failed state)."""

    revision: int
    hash: str
    graph: Graph | None
    error: str | None = None


class RevisionRegistry:
    """Compiled revisions per RGD name (kro's in-memory ``revisions.Registry``)."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[int, Entry]] = {}

    def get(self, rgd_name: str, revision: int) -> Entry | None:
        return self._entries.get(rgd_name, {}).get(revision)

    def put(self, rgd_name: str, entry: Entry) -> None:
        self._entries.setdefault(rgd_name, {})[entry.revision] = entry

    def retain(self, rgd_name: str, revisions: Iterable[int]) -> None:
        """Forget the revisions of ``rgd_name`` that no longer exist."""
        keep = set(revisions)
        entries = self._entries.get(rgd_name)
        if entries is None:
            return
        for revision in [r for r in entries if r not in keep]:
            del entries[revision]
        if not entries:
            del self._entries[rgd_name]

    def revisions(self, rgd_name: str) -> list[int]:
        return sorted(self._entries.get(rgd_name, {}))
