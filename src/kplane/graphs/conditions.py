"""Conditions and states of RGDs and instances, worded as kro words them.

RGD (``pkg/controller/resourcegraphdefinition/controller_status.go``, ``api/v1alpha1/conditions.go``):
``GraphAccepted``, ``KindReady``, ``ControllerReady`` and the root ``Ready`` (True only when all are True);
``state`` is ``Active`` exactly then, else ``Inactive``. Instance (``pkg/controller/instance/status.go``,
``state.go``): ``InstanceManaged``, ``GraphResolved``, ``ResourcesReady`` and ``Ready``; ``state`` is ``ERROR``
when a node failed, ``ACTIVE`` when every node is synced or skipped, else ``IN_PROGRESS``; ``DELETING`` while
children are removed. (``FAILED`` is kro's deprecated legacy state and is never written.)

When the RGD declares ``status.conditions``, the author's conditions are written instead of the built-ins
(``pkg/controller/instance/status.go`` ``updateStatus``, ``pkg/runtime/conditions.go``), evaluated after the
built-ins with ``schema.status.conditions`` bound to them; ``state`` stays kro's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kplane.graphs import customconditions as cc
from kplane.graphs.graph import Graph
from kplane.graphs.render import Pending, RenderError, RenderResult, evaluate_after, render

READY = "Ready"
GRAPH_ACCEPTED = "GraphAccepted"
KIND_READY = "KindReady"
CONTROLLER_READY = "ControllerReady"
RGD_CONDITIONS = (GRAPH_ACCEPTED, KIND_READY, CONTROLLER_READY)

INSTANCE_MANAGED = "InstanceManaged"
GRAPH_RESOLVED = "GraphResolved"
RESOURCES_READY = "ResourcesReady"
INSTANCE_CONDITIONS = (INSTANCE_MANAGED, GRAPH_RESOLVED, RESOURCES_READY)

ACTIVE, INACTIVE = "Active", "Inactive"
IN_PROGRESS, INSTANCE_ACTIVE, ERROR, DELETING = "IN_PROGRESS", "ACTIVE", "ERROR", "DELETING"

SYNCED, SKIPPED, WAITING, NODE_IN_PROGRESS, NODE_ERROR = (
    "SYNCED", "SKIPPED", "WAITING_FOR_READINESS", "IN_PROGRESS", "ERROR")


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str


def accepted() -> Condition:
    return Condition(GRAPH_ACCEPTED, "True", "Valid", "resource graph and schema are valid")


def invalid(message: str) -> Condition:
    return Condition(GRAPH_ACCEPTED, "False", "InvalidResourceGraph", message)


def kind_ready(kind: str) -> Condition:
    return Condition(KIND_READY, "True", "Ready", f"kind {kind} has been accepted and ready")


def kind_unready(message: str) -> Condition:
    return Condition(KIND_READY, "False", "Failed", message)


def controller_running() -> Condition:
    return Condition(CONTROLLER_READY, "True", "Running", "controller is running")


def controller_failed(message: str) -> Condition:
    return Condition(CONTROLLER_READY, "False", "FailedToStart", message)


def with_root(conditions: Sequence[Condition], parts: Sequence[str]) -> list[Condition]:
    """Add the root ``Ready``: True when every part is True, else mirroring the first part that is not."""
    by_type = {c.type: c for c in conditions}
    for part in parts:
        cond = by_type.get(part)
        if cond is None:
            return [*conditions, Condition(READY, "Unknown", "AwaitingReconciliation", f"{part} is not set")]
        if cond.status != "True":
            return [*conditions, Condition(READY, cond.status, cond.reason, cond.message)]
    return [*conditions, Condition(READY, "True", "Ready", "")]


def render_conditions(new: Iterable[Condition], old: Any, generation: int | None, now: str) -> list[dict[str, Any]]:
    """Conditions as the API stores them; ``lastTransitionTime`` only moves when a condition's status does."""
    previous = {c.get("type"): c for c in old or [] if isinstance(c, Mapping)}
    out = []
    for cond in new:
        before = previous.get(cond.type)
        since = before.get("lastTransitionTime") if before and before.get("status") == cond.status else None
        item: dict[str, Any] = {"type": cond.type, "status": cond.status, "reason": cond.reason,
                                "message": cond.message, "lastTransitionTime": since or now}
        if generation is not None:
            item["observedGeneration"] = generation
        out.append(item)
    return out


def rgd_state(conditions: Sequence[Condition]) -> str:
    return ACTIVE if all(c.status == "True" for c in conditions if c.type in RGD_CONDITIONS) else INACTIVE


def node_states(result: RenderResult, applied: Mapping[str, str | None]) -> dict[str, str]:
    """kro's node states from a render and what the pass applied (``applied[id]`` is an error or None)."""
    states = {}
    for rid, res in result.resources.items():
        if res.included is False:
            states[rid] = SKIPPED
        elif res.error or applied.get(rid):
            states[rid] = NODE_ERROR
        elif res.ready:
            states[rid] = SYNCED
        elif res.pending or res.waiting_for or res.included is None:
            states[rid] = NODE_IN_PROGRESS
        else:
            states[rid] = WAITING
    return states


def instance_state(states: Mapping[str, str]) -> str:
    if any(s == NODE_ERROR for s in states.values()):
        return ERROR
    if all(s in (SYNCED, SKIPPED) for s in states.values()):
        return INSTANCE_ACTIVE
    return IN_PROGRESS


def resources_condition(result: RenderResult, states: Mapping[str, str], applied: Mapping[str, str | None],
                        ) -> Condition:
    errors = [f"{rid}: {applied[rid] or result.resources[rid].error}" for rid, s in states.items() if s == NODE_ERROR]
    if errors:
        return Condition(RESOURCES_READY, "False", "NotReady",
                         "resource reconciliation failed: " + "; ".join(errors))
    waiting = [rid for rid, s in states.items() if s not in (SYNCED, SKIPPED)]
    if not waiting:
        return Condition(RESOURCES_READY, "True", "AllResourcesReady", "all resources are created and ready")
    blocked = [rid for rid in waiting if states[rid] == NODE_IN_PROGRESS]
    if blocked:
        return Condition(RESOURCES_READY, "False", "NotReady",
                         f"waiting for unresolved resource: [{' '.join(blocked)}]")
    return Condition(RESOURCES_READY, "False", "NotReady", f"awaiting resource readiness: [{' '.join(waiting)}]")


def managed() -> Condition:
    return Condition(INSTANCE_MANAGED, "True", "Managed", "instance is properly managed with finalizers and labels")


def resolved() -> Condition:
    return Condition(GRAPH_RESOLVED, "True", "Resolved", "runtime graph created and all resources resolved")


def resolution_failed(message: str) -> Condition:
    return Condition(GRAPH_RESOLVED, "False", "ResolutionFailed", message)


def suspended() -> Condition:
    return Condition(RESOURCES_READY, "False", "ReconciliationSuspended",
                     "reconciliation is suspended by the kro.run/reconcile annotation")


def under_deletion(remaining: int) -> Condition:
    return Condition(RESOURCES_READY, "Unknown", "UnderDeletion", f"deleting resources: {remaining} remaining")


@dataclass(frozen=True)
class Authored:
    """The author's conditions as one pass produced them. ``incomplete``: some entry produced nothing (its
    data is pending, or it failed), so conditions written earlier keep their place for the types missing;
    ``errors``: entries that failed or types produced twice, which make the state ``ERROR``."""

    conditions: tuple[Condition, ...]
    incomplete: bool = False
    errors: tuple[str, ...] = ()


def _as_maps(conditions: Sequence[Condition]) -> list[dict[str, str]]:
    return [{"type": c.type, "status": c.status, "reason": c.reason, "message": c.message} for c in conditions]


def evaluate_authored(graph: Graph, result: RenderResult, builtins: Sequence[Condition]) -> Authored:
    """Evaluate ``graph.conditions`` after a pass; ``builtins`` (root ``Ready`` included) are what
    ``runtime.condition(schema, …)`` reads, the instance's own status being hidden from it."""
    schema = {k: v for k, v in (result.activation.get("schema") or {}).items() if k != "status"}
    extra = {"schema": {**schema, "status": {"conditions": _as_maps(builtins)}}}
    produced: list[dict[str, str]] = []
    failures: list[str] = []
    incomplete = False
    for entry in graph.conditions:
        try:
            produced += cc.flatten(evaluate_after(graph, result, entry.source, extra), entry.text)
        except Pending:
            incomplete = True
        except (RenderError, ValueError) as err:
            failures.append(f"{cc.go_quote(entry.text)}: {err}")
    kept, duplicates = cc.without_duplicates(produced)
    if duplicates:
        failures.append(f"duplicate condition type(s) [{' '.join(duplicates)}] dropped")
    conditions = tuple(Condition(c["type"], c["status"], c["reason"], c["message"]) for c in kept)
    return Authored(conditions, incomplete or bool(failures), tuple(failures))


def authored(graph: Graph, instance: Mapping[str, Any], result: RenderResult | None,
             conditions: Sequence[Condition], state: str) -> Authored | None:
    """What the author's conditions are this pass; ``None`` when the RGD declares none. While deleting
    nothing is evaluated: kro shows its ``ResourcesReady`` over the conditions already written. Without a
    render (a suspended instance) they are evaluated as if no child were observed."""
    if not graph.conditions:
        return None
    rooted = with_root(conditions, INSTANCE_CONDITIONS)
    if state == DELETING:
        return Authored(tuple(c for c in rooted if c.type == RESOURCES_READY), incomplete=True)
    return evaluate_authored(graph, result if result is not None else render(graph, instance, {}), rooted)


def _wire_conditions(rooted: Sequence[Condition], authored: Authored | None, old: Any, generation: int | None,
                     now: str) -> list[dict[str, Any]]:
    if authored is None:
        return render_conditions(rooted, old, generation, now)
    wire = render_conditions(authored.conditions, old, generation, now)
    if authored.incomplete:
        have = {c.type for c in authored.conditions}
        wire += [dict(c) for c in old or [] if isinstance(c, Mapping) and c.get("type") not in have]
    return wire


def instance_status(result: RenderResult | None, conditions: Sequence[Condition], state: str,
                    old_status: Any, generation: int | None, now: str, authored: Authored | None = None,
                    ) -> dict[str, Any]:
    """The whole instance status, rebuilt from scratch as kro does (projected fields appear only once every
    expression in them evaluates; without a render, while deleting, the last projection is kept); a True root
    ``Ready`` makes the state ``ACTIVE``. With ``authored``, the author's conditions are written instead of
    the built-ins, and a failed entry makes the state ``ERROR``."""
    rooted = with_root(conditions, INSTANCE_CONDITIONS)
    if rooted[-1].status == "True" and state != DELETING:
        state = INSTANCE_ACTIVE
    if authored is not None and authored.errors:
        state = ERROR
    old = old_status if isinstance(old_status, Mapping) else {}
    status: dict[str, Any] = {"conditions": _wire_conditions(rooted, authored, old.get("conditions"), generation,
                                                             now),
                              "state": state}
    projected = result.status if result is not None else old
    status.update({k: v for k, v in projected.items() if k not in ("conditions", "state")})
    return status


def same_status(old: Any, new: Mapping[str, Any]) -> bool:
    return isinstance(old, Mapping) and dict(old) == dict(new)
