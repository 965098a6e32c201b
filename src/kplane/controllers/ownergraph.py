"""The ownership graph and the garbage collector's decisions, as pure data and functions.

Semantics follow kube-controller-manager's garbage collector (`pkg/controller/garbagecollector/`,
garbagecollector.go `attemptToDeleteItem`, `processDeletingDependentsItem`, `attemptToOrphanWorker`, and
graph_builder.go `processGraphChanges`):
- a dependent whose owners are all gone is deleted (background);
- an owner being deleted with the `foregroundDeletion` finalizer keeps it until every dependent that has
  `blockOwnerDeletion: true` is gone; its dependents are deleted meanwhile (foreground);
- an owner being deleted with the `orphan` finalizer first has its reference removed from each dependent,
  then loses the finalizer (orphan);
- a dependent that still has a live owner only loses the references to owners that are gone or waiting.
The graph is keyed by uid, so an owner recreated under the same name is a different owner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from kplane.runtime.objects import OwnerRef

Obj = dict[str, Any]

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
BACKGROUND_POLICY = "Background"
FOREGROUND_POLICY = "Foreground"
ORPHAN_POLICY = "Orphan"


@dataclass(frozen=True)
class ObjectId:
    """Where an object lives: its resource (`plural.group`), namespace ("" if cluster-scoped) and name."""

    resource: str
    namespace: str
    name: str


@dataclass(frozen=True)
class Node:
    uid: str
    ident: ObjectId
    kind: str
    owners: tuple[OwnerRef, ...] = ()
    deleting: bool = False
    finalizers: tuple[str, ...] = ()

    @property
    def deleting_dependents(self) -> bool:
        return self.deleting and FOREGROUND in self.finalizers

    @property
    def orphaning(self) -> bool:
        return self.deleting and ORPHAN in self.finalizers


def owner_refs(meta: Mapping[str, Any]) -> tuple[OwnerRef, ...]:
    return tuple(
        OwnerRef(api_version=str(ref.get("apiVersion") or ""), kind=str(ref.get("kind") or ""),
                 name=str(ref.get("name") or ""), uid=str(ref.get("uid") or ""),
                 controller=bool(ref.get("controller")), block_owner_deletion=bool(ref.get("blockOwnerDeletion")))
        for ref in meta.get("ownerReferences") or []
        if isinstance(ref, Mapping)
    )


def node_from(resource: str, obj: Mapping[str, Any]) -> Node | None:
    """The graph node for an object as the API serves it; None if it has no uid (nothing to track)."""
    meta = obj.get("metadata") or {}
    uid = meta.get("uid")
    if not uid:
        return None
    return Node(uid=str(uid), ident=ObjectId(resource, str(meta.get("namespace") or ""), str(meta.get("name") or "")),
                kind=str(obj.get("kind") or ""), owners=owner_refs(meta),
                deleting=bool(meta.get("deletionTimestamp")),
                finalizers=tuple(str(f) for f in meta.get("finalizers") or []))


@dataclass
class OwnerGraph:
    """Objects by uid, and for each owner uid the uids that name it (whether or not the owner is known)."""

    _nodes: dict[str, Node] = field(default_factory=dict)
    _dependents: dict[str, set[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, uid: object) -> bool:
        return uid in self._nodes

    def get(self, uid: str) -> Node | None:
        return self._nodes.get(uid)

    def dependents(self, uid: str) -> list[Node]:
        return [self._nodes[d] for d in sorted(self._dependents.get(uid, ())) if d in self._nodes]

    def nodes_of(self, resource: str) -> list[Node]:
        return [node for node in self._nodes.values() if node.ident.resource == resource]

    def upsert(self, node: Node) -> set[str]:
        """Record `node`; the uids the collector must now look at.

        That is the node itself when it names an owner not in the graph (it may be dangling) or is being
        deleted with a finalizer the collector handles, and any owner, old or new, that waits for its
        dependents (a changed dependent may unblock it).
        """
        old = self._nodes.get(node.uid)
        old_owners = {ref.uid for ref in old.owners} if old is not None else set()
        new_owners = {ref.uid for ref in node.owners}
        for uid in old_owners - new_owners:
            self._unlink(uid, node.uid)
        for uid in new_owners:
            self._dependents.setdefault(uid, set()).add(node.uid)
        self._nodes[node.uid] = node
        work = self._waiting_owners(old_owners | new_owners)
        if any(uid not in self._nodes for uid in new_owners) or node.deleting_dependents or node.orphaning:
            work.add(node.uid)
        return work

    def remove(self, uid: str) -> set[str]:
        """Forget a deleted object; its dependents (their owner is gone) and waiting owners need a look."""
        node = self._nodes.pop(uid, None)
        if node is None:
            return set()
        owners = {ref.uid for ref in node.owners}
        for owner in owners:
            self._unlink(owner, uid)
        return self._waiting_owners(owners) | set(self._dependents.get(uid, ()))

    def remove_resource(self, resource: str) -> set[str]:
        """Forget every object of a resource that is no longer served (a deleted CRD)."""
        work: set[str] = set()
        for node in self.nodes_of(resource):
            work |= self.remove(node.uid)
        return {uid for uid in work if uid in self._nodes}

    def _unlink(self, owner: str, dependent: str) -> None:
        dependents = self._dependents.get(owner)
        if dependents is None:
            return
        dependents.discard(dependent)
        if not dependents:
            del self._dependents[owner]

    def _waiting_owners(self, uids: Iterable[str]) -> set[str]:
        return {uid for uid in uids if (owner := self._nodes.get(uid)) is not None and owner.deleting_dependents}


class OwnerState(Enum):
    SOLID = "solid"  # exists and is not waiting for its dependents
    DANGLING = "dangling"  # gone, or replaced by another object of the same name
    WAITING = "waiting"  # being deleted in the foreground


def owner_state(owner: Node | None, ref: OwnerRef, dependent: Node, owner_namespaced: bool) -> OwnerState | None:
    """What the graph says of one owner; None when the graph does not know (ask the server).

    A namespaced owner must be in the dependent's namespace; one elsewhere is not the owner named.
    """
    if owner is None:
        return None
    expected_namespace = dependent.ident.namespace if owner_namespaced else ""
    if owner.ident.name != ref.name or owner.kind != ref.kind or owner.ident.namespace != expected_namespace:
        return None
    return OwnerState.WAITING if owner.deleting_dependents else OwnerState.SOLID


@dataclass(frozen=True)
class Decision:
    """What to do with a dependent: nothing, delete it with `policy`, or drop the references `remove_uids`."""

    delete_policy: str | None = None
    remove_uids: tuple[str, ...] = ()

    @property
    def nothing(self) -> bool:
        return self.delete_policy is None and not self.remove_uids


NOTHING = Decision()


def own_policy(node: Node) -> str:
    """The propagation policy an object's own finalizers ask for; Background by default."""
    if ORPHAN in node.finalizers:
        return ORPHAN_POLICY
    if FOREGROUND in node.finalizers:
        return FOREGROUND_POLICY
    return BACKGROUND_POLICY


def plan_dependent(node: Node, states: Mapping[str, OwnerState], has_dependents: bool) -> Decision:
    """Decide for a dependent given the state of each owner (by uid).

    A dependent already being deleted is left to whoever finishes that deletion. With a live owner it
    stays and only loses the references to owners that are gone or waiting; with only waiting owners it is
    deleted in the foreground when it has dependents of its own (so that the owner keeps waiting for
    them too), otherwise with its own policy.
    """
    if node.deleting or not node.owners:
        return NOTHING
    solid = [ref.uid for ref in node.owners if states.get(ref.uid) is OwnerState.SOLID]
    dangling = [ref.uid for ref in node.owners if states.get(ref.uid) is OwnerState.DANGLING]
    waiting = [ref.uid for ref in node.owners if states.get(ref.uid) is OwnerState.WAITING]
    if len(solid) + len(dangling) + len(waiting) != len(node.owners):
        raise ValueError(f"no state for some owners of {node.ident}")
    if solid:
        return Decision(remove_uids=tuple(dangling + waiting)) if dangling or waiting else NOTHING
    if waiting and has_dependents:
        return Decision(delete_policy=FOREGROUND_POLICY)
    return Decision(delete_policy=own_policy(node))


def blocking_dependents(owner: Node, dependents: Iterable[Node]) -> list[Node]:
    """The dependents a foreground deletion of `owner` waits for: those that block it."""
    return [dep for dep in dependents
            if any(ref.uid == owner.uid and ref.block_owner_deletion for ref in dep.owners)]


def json_patch_without_finalizer(obj: Mapping[str, Any], finalizer: str) -> list[Obj] | None:
    """A JSON patch removing `finalizer`, guarded by uid and resourceVersion; None when it is not there."""
    meta = obj.get("metadata") or {}
    finalizers = [str(f) for f in meta.get("finalizers") or []]
    if finalizer not in finalizers:
        return None
    return [*_guards(meta),
            {"op": "replace", "path": "/metadata/finalizers", "value": [f for f in finalizers if f != finalizer]}]


def json_patch_without_owners(obj: Mapping[str, Any], uids: Iterable[str]) -> list[Obj] | None:
    """A JSON patch dropping the ownerReferences with these uids (all other fields of the list kept as
    they are), guarded by uid and resourceVersion; None when none of them is there."""
    meta = obj.get("metadata") or {}
    drop = set(uids)
    refs = [ref for ref in meta.get("ownerReferences") or [] if isinstance(ref, Mapping)]
    kept = [dict(ref) for ref in refs if ref.get("uid") not in drop]
    if len(kept) == len(refs):
        return None
    change: Obj = ({"op": "replace", "path": "/metadata/ownerReferences", "value": kept} if kept
                   else {"op": "remove", "path": "/metadata/ownerReferences"})
    return [*_guards(meta), change]


def _guards(meta: Mapping[str, Any]) -> list[Obj]:
    guards: list[Obj] = [{"op": "test", "path": "/metadata/uid", "value": meta.get("uid")}]
    if meta.get("resourceVersion"):
        guards.append({"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]})
    return guards
