"""Pod placement: kube-scheduler's filter and score phases as one pure function.

`place` checks every node with a chain of filters, scores the nodes that pass and picks the best; when none
passes it keeps each node's reasons, from which `PlacementResult.message` builds upstream's FitError text.
Filters run in the default plugin order (pkg/scheduler/apis/config/v1/default_plugins.go): NodeUnschedulable,
TaintToleration, NodeAffinity, NodeResourcesFit; a node stops at its first failing filter, as the framework's
RunFilterPlugins does. A filter is any `(PodInfo, NodeInfo) -> FilterStatus | None`, so claim allocation
(DRA) joins later as one more entry in `filters`.

Objects are plain JSON dicts (camelCase, as the API serves them); nothing here does I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache, partial
from itertools import chain
from typing import Any

from kplane.api.tolerations import tolerates
from kplane.scheduler.resources import (
    CPU,
    MEMORY,
    PODS,
    NodeUsage,
    Resources,
    node_allocatable,
    nonzero_requests,
    pod_requests,
)

Obj = Mapping[str, Any]

# Reasons, worded as the upstream plugins word them.
REASON_UNSCHEDULABLE = "node(s) were unschedulable"  # nodeunschedulable.ErrReasonUnschedulable
# tainttoleration.Filter; upstream stopped naming the taint's key and value in 1.33 (they may be sensitive).
REASON_UNTOLERATED_TAINT = "node(s) had untolerated taint(s)"
REASON_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"  # nodeaffinity.ErrReasonPod
REASON_TOO_MANY_PODS = "Too many pods"  # noderesources.fitsRequest
NO_NODES_MESSAGE = "no nodes available to schedule pods"  # scheduler.ErrNoNodesAvailable
# DefaultPreemption's per-node verdicts (pkg/scheduler/framework/preemption/preemption.go).
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
PREEMPTION_NO_VICTIMS = "No preemption victims found for incoming pod"

UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
FILTER_EFFECTS = ("NoSchedule", "NoExecute")
PREFER_NO_SCHEDULE = "PreferNoSchedule"
# pkg/scheduler/schedule_one.go: how many fitting nodes the scheduler looks for before it stops filtering.
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
BASE_PERCENTAGE_OF_NODES_TO_SCORE = 50


def insufficient(resource: str) -> str:
    return f"Insufficient {resource}"


@dataclass(frozen=True)
class FilterStatus:
    """Why one node cannot take the pod. `unresolvable` is upstream's UnschedulableAndUnresolvable:
    evicting other pods would not help, so preemption skips the node."""

    reasons: tuple[str, ...]
    unresolvable: bool = False


@dataclass(frozen=True)
class PodInfo:
    """A pod's scheduling inputs, parsed once per placement rather than once per node."""

    pod: Obj
    requests: Resources
    tolerations: tuple[Obj, ...]
    node_selector: Mapping[str, str]
    required_terms: tuple[Obj, ...] | None
    preferred_terms: tuple[Obj, ...]

    @classmethod
    def of(cls, pod: Obj) -> PodInfo:
        """Raises ValueError when a request is not a valid quantity."""
        spec = pod.get("spec") or {}
        node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        return cls(
            pod=pod,
            requests=pod_requests(pod),
            tolerations=tuple(spec.get("tolerations") or ()),
            node_selector=dict(spec.get("nodeSelector") or {}),
            required_terms=None if required is None else tuple(required.get("nodeSelectorTerms") or ()),
            preferred_terms=tuple(node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ()),
        )

    @cached_property
    def fit_requests(self) -> tuple[tuple[str, int], ...]:
        """The requests NodeResourcesFit compares one by one, in the order it reports them (cpu, memory, then by
        name; the pod count is checked apart), sorted once per pod rather than once per node."""
        return tuple((name, self.requests[name]) for name in sorted(self.requests, key=_fit_order) if name != PODS)

    @cached_property
    def tolerates_unschedulable(self) -> bool:
        return any(tolerates(t, UNSCHEDULABLE_TAINT) for t in self.tolerations)


def _fit_order(name: str) -> tuple[bool, bool, str]:
    return name not in (CPU, MEMORY), name != CPU, name


@dataclass(frozen=True)
class NodeInfo:
    """A node and the usage of its pods. Keep one per unchanged node object: `allocatable` is parsed once,
    and `usage` may be the live object the caller updates as pods come and go."""

    node: Obj
    usage: NodeUsage = field(default_factory=NodeUsage)

    @cached_property
    def name(self) -> str:
        return str((self.node.get("metadata") or {}).get("name") or "")

    @cached_property
    def labels(self) -> Mapping[str, str]:
        return (self.node.get("metadata") or {}).get("labels") or {}

    @cached_property
    def taints(self) -> Sequence[Obj]:
        return (self.node.get("spec") or {}).get("taints") or ()

    @cached_property
    def unschedulable(self) -> bool:
        return bool((self.node.get("spec") or {}).get("unschedulable"))

    @cached_property
    def allocatable(self) -> Resources:
        return node_allocatable(self.node)


Filter = Callable[[PodInfo, NodeInfo], FilterStatus | None]
NodeCheck = Callable[[NodeInfo], FilterStatus | None]


# --- taints and tolerations ----------------------------------------------------------------------------


def untolerated(taints: Iterable[Obj], tolerations: Sequence[Obj], effects: Sequence[str]) -> list[Obj]:
    return [
        taint
        for taint in taints
        if taint.get("effect") in effects and not any(tolerates(t, taint) for t in tolerations)
    ]


# --- node selectors ------------------------------------------------------------------------------------


def _as_int(value: str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def requirement_matches(requirement: Obj, values_by_key: Mapping[str, str]) -> bool:
    """One NodeSelectorRequirement (k8s.io/component-helpers/scheduling/corev1/nodeaffinity): unknown
    operators and malformed Gt/Lt values match nothing, so a bad term never admits a node."""
    key = requirement.get("key") or ""
    operator = requirement.get("operator")
    values = [str(v) for v in requirement.get("values") or ()]
    present = key in values_by_key
    have = values_by_key.get(key)
    if operator == "In":
        return present and have in values
    if operator == "NotIn":
        return not present or have not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        left, right = _as_int(str(have)), _as_int(values[0])
        if left is None or right is None:
            return False
        return left > right if operator == "Gt" else left < right
    return False


def term_matches(term: Obj, node: NodeInfo) -> bool:
    """A NodeSelectorTerm: all its requirements hold; a term with none matches no node.
    `matchFields` knows one field, `metadata.name`."""
    expressions = term.get("matchExpressions") or ()
    fields = term.get("matchFields") or ()
    if not expressions and not fields:
        return False
    labels = node.labels
    if not all(requirement_matches(req, labels) for req in expressions):
        return False
    node_fields = {"metadata.name": node.name}
    return all(req.get("key") == "metadata.name" and requirement_matches(req, node_fields) for req in fields)


# --- filters -------------------------------------------------------------------------------------------


# Statuses are immutable, so the filters whose verdict has one wording share one instance each.
UNSCHEDULABLE_STATUS = FilterStatus((REASON_UNSCHEDULABLE,), unresolvable=True)
UNTOLERATED_STATUS = FilterStatus((REASON_UNTOLERATED_TAINT,), unresolvable=True)
NODE_AFFINITY_STATUS = FilterStatus((REASON_NODE_AFFINITY,), unresolvable=True)


def node_unschedulable(pod: PodInfo, node: NodeInfo) -> FilterStatus | None:
    if not node.unschedulable or pod.tolerates_unschedulable:
        return None
    return UNSCHEDULABLE_STATUS


def taint_toleration(pod: PodInfo, node: NodeInfo) -> FilterStatus | None:
    if node.taints and untolerated(node.taints, pod.tolerations, FILTER_EFFECTS):
        return UNTOLERATED_STATUS
    return None


def node_affinity(pod: PodInfo, node: NodeInfo) -> FilterStatus | None:
    labels = node.labels
    selected = all(labels.get(key) == value for key, value in pod.node_selector.items())
    if selected and pod.required_terms is not None:
        selected = any(term_matches(term, node) for term in pod.required_terms)
    return None if selected else NODE_AFFINITY_STATUS


def resources_fit(pod: PodInfo, node: NodeInfo) -> FilterStatus | None:
    """NodeResourcesFit: the pod count, then each requested resource against what is left. A request larger
    than the whole node is unresolvable (no eviction can make room)."""
    allocatable = node.allocatable
    usage = node.usage
    reasons: list[str] = []
    unresolvable = False
    if usage.pods + 1 > allocatable.get(PODS, 0):
        reasons.append(REASON_TOO_MANY_PODS)
    for name, wanted in pod.fit_requests:
        have = allocatable.get(name, 0)
        if wanted > have - usage.requested.get(name, 0):
            reasons.append(insufficient(name))
            unresolvable = unresolvable or wanted > have
    return FilterStatus(tuple(reasons), unresolvable) if reasons else None


def _unschedulable_node(node: NodeInfo) -> FilterStatus | None:
    return UNSCHEDULABLE_STATUS if node.unschedulable else None


def pod_check(pod: PodInfo, check: Filter) -> NodeCheck | None:
    """`check` bound to `pod`, or None where it passes every node for this pod (a pod tolerating
    unschedulable nodes, a pod without node selector or required affinity): the placement loop then skips a
    call per node. What it returns for a node is what `check(pod, node)` returns."""
    if check is node_unschedulable:
        return None if pod.tolerates_unschedulable else _unschedulable_node
    if check is node_affinity and not pod.node_selector and pod.required_terms is None:
        return None
    return partial(check, pod)


DEFAULT_FILTERS: tuple[Filter, ...] = (node_unschedulable, taint_toleration, node_affinity, resources_fit)


# --- scores --------------------------------------------------------------------------------------------

MAX_SCORE = 100
LEAST_ALLOCATED_WEIGHT = 1
BALANCED_ALLOCATION_WEIGHT = 1
TAINT_TOLERATION_WEIGHT = 3
NODE_AFFINITY_WEIGHT = 2
RESOURCE_SCORE_CACHE = 4096


def _prefer_no_schedule_tolerations(pod: PodInfo) -> list[Obj]:
    return [t for t in pod.tolerations if (t.get("effect") or PREFER_NO_SCHEDULE) == PREFER_NO_SCHEDULE]


def _prefer_no_schedule_count(tolerations: Sequence[Obj], node: NodeInfo) -> int:
    if not node.taints:
        return 0
    return len(untolerated(node.taints, tolerations, (PREFER_NO_SCHEDULE,)))


def preferred_affinity_weight(pod: PodInfo, node: NodeInfo) -> int:
    return sum(
        int(term.get("weight") or 0) for term in pod.preferred_terms if term_matches(term.get("preference") or {}, node)
    )


def _normalized(raw: Mapping[str, int], *, reverse: bool) -> dict[str, int]:
    """The framework's DefaultNormalizeScore: scale to 0..100 by the highest value, optionally reversed."""
    top = max(raw.values(), default=0)
    if top == 0:
        return {name: MAX_SCORE if reverse else 0 for name in raw}
    scaled = {name: value * MAX_SCORE // top for name, value in raw.items()}
    return {name: MAX_SCORE - value for name, value in scaled.items()} if reverse else scaled


@lru_cache(maxsize=RESOURCE_SCORE_CACHE)
def resource_score(used_cpu: int, have_cpu: int, used_memory: int, have_memory: int) -> int:
    """LeastAllocated and BalancedAllocation, weighted, for cpu and memory used (with the pod) and allocatable.
    LeastAllocated is the mean free share, 0 to 100; BalancedAllocation 100 * (1 - the standard deviation of
    the shares). A pure function of four integers that repeat from pod to pod (pods alike, nodes alike, most
    nodes unchanged since the last placement), so its answers are cached."""
    free_cpu = 0 if have_cpu == 0 or used_cpu > have_cpu else (have_cpu - used_cpu) * MAX_SCORE // have_cpu
    free_memory = 0 if have_memory == 0 or used_memory > have_memory else (
        (have_memory - used_memory) * MAX_SCORE // have_memory)
    cpu_share = min(used_cpu / have_cpu, 1.0) if have_cpu else 1.0
    memory_share = min(used_memory / have_memory, 1.0) if have_memory else 1.0
    mean = (cpu_share + memory_share) / 2
    deviation = (((cpu_share - mean) ** 2 + (memory_share - mean) ** 2) / 2) ** 0.5
    return (LEAST_ALLOCATED_WEIGHT * ((free_cpu + free_memory) // 2)
            + BALANCED_ALLOCATION_WEIGHT * int((1 - deviation) * MAX_SCORE))


def score_nodes(pod: PodInfo, nodes: Sequence[NodeInfo]) -> dict[str, int]:
    """Weighted sum of the default score plugins. What depends on the pod alone is worked out once, not once
    per node: this runs for every feasible node of every placement. Without soft taints on any node, or
    without preferred terms, the normalized TaintToleration (100) or NodeAffinity (0) score is the same for
    every node and is not worked out node by node."""
    cpu, memory = nonzero_requests(pod.requests)
    taints: Mapping[str, int] | None = None
    if any(n.taints for n in nodes):
        tolerations = _prefer_no_schedule_tolerations(pod)
        taints = _normalized({n.name: _prefer_no_schedule_count(tolerations, n) for n in nodes}, reverse=True)
    affinity: Mapping[str, int] | None = None
    if pod.preferred_terms:
        affinity = _normalized({n.name: preferred_affinity_weight(pod, n) for n in nodes}, reverse=False)
    scores = {}
    for n in nodes:
        allocatable, usage = n.allocatable, n.usage
        scores[n.name] = (resource_score(usage.nonzero_cpu + cpu, allocatable.get(CPU, 0),
                                         usage.nonzero_memory + memory, allocatable.get(MEMORY, 0))
                          + TAINT_TOLERATION_WEIGHT * (MAX_SCORE if taints is None else taints[n.name])
                          + NODE_AFFINITY_WEIGHT * (0 if affinity is None else affinity[n.name]))
    return scores


# --- placement -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlacementResult:
    """The chosen node, or why there is none: `failures` maps every rejected node to its status."""

    node: str | None
    num_nodes: int
    failures: Mapping[str, FilterStatus] = field(default_factory=dict)
    scores: Mapping[str, int] = field(default_factory=dict)
    preemption_policy: str = "PreemptLowerPriority"
    processed: int = 0
    """Nodes the filters looked at before enough fitting ones were found."""

    @property
    def scheduled(self) -> bool:
        return self.node is not None

    @property
    def message(self) -> str:
        """Upstream's FitError text (pkg/scheduler/framework/types.go FitError.Error): a sorted histogram of
        reasons, then the preemption verdict, e.g. `0/3 nodes are available: 1 node(s) had untolerated
        taint(s), 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for
        scheduling, 2 No preemption victims found for incoming pod.` kplane does not preempt, so a node
        that preemption could help still reports that no victims were found."""
        if self.node is not None:
            return ""
        if self.num_nodes == 0:
            return NO_NODES_MESSAGE
        head = f"0/{self.num_nodes} nodes are available"
        reasons = Counter(reason for status in self.failures.values() for reason in status.reasons)
        text = head + ":" + _histogram(reasons)
        if self.preemption_policy == "Never":
            return text + " preemption: not eligible due to preemptionPolicy=Never."
        verdicts = Counter(
            PREEMPTION_NOT_HELPFUL if status.unresolvable else PREEMPTION_NO_VICTIMS
            for status in self.failures.values()
        )
        return f"{text} preemption: {head}:{_histogram(verdicts)}"


def _histogram(counts: Counter[str]) -> str:
    parts = sorted(f"{count} {reason}" for reason, count in counts.items())
    return f" {', '.join(parts)}." if parts else ""


def place(
    pod: Obj,
    nodes: Sequence[Obj],
    usage: Mapping[str, NodeUsage],
    *,
    filters: Sequence[Filter] = DEFAULT_FILTERS,
) -> PlacementResult:
    """Choose a node for `pod` among `nodes`, given what pods already bound or assumed there request
    (`usage`, by node name; a missing entry means an empty node).

    The highest total score wins; ties go to the first node name in sort order, so the same inputs always
    give the same answer (upstream breaks ties at random). Raises ValueError for unparsable requests.
    """
    infos = [NodeInfo(node, usage.get(_name(node)) or NodeUsage()) for node in nodes]
    return choose_node(PodInfo.of(pod), infos, filters=filters)


def choose_node(
    pod: PodInfo, nodes: Sequence[NodeInfo], *, filters: Sequence[Filter] = DEFAULT_FILTERS, start: int = 0
) -> PlacementResult:
    """`place` for callers that keep parsed pods and nodes between placements (the scheduler does).

    As upstream, filtering walks the nodes from `start` (wrapping around) and stops once it has
    `feasible_nodes_to_find` nodes that fit; `PlacementResult.processed` says how many it looked at, so the
    caller can start the next placement after them and spread pods over all nodes."""
    wanted = feasible_nodes_to_find(len(nodes))
    feasible: list[NodeInfo] = []
    failures: dict[str, FilterStatus] = {}
    processed = 0
    count = len(nodes)
    checks = [check for check in (pod_check(pod, f) for f in filters) if check is not None]
    first = start % count if count else 0
    for index in chain(range(first, count), range(first)):
        node = nodes[index]
        processed += 1
        for check in checks:
            status = check(node)
            if status is not None:
                failures[node.name] = status
                break
        else:
            feasible.append(node)
            if len(feasible) >= wanted:
                break
    policy = (pod.pod.get("spec") or {}).get("preemptionPolicy") or "PreemptLowerPriority"
    if not feasible:
        return PlacementResult(None, count, failures, preemption_policy=policy, processed=processed)
    scores = score_nodes(pod, feasible)
    top = max(scores.values())
    best = min(name for name, score in scores.items() if score == top)
    return PlacementResult(best, count, failures, scores, policy, processed)


def feasible_nodes_to_find(all_nodes: int) -> int:
    """How many fitting nodes are enough to score: every node below 100 nodes, else an adaptive share of the
    cluster (50% less 1% per 125 nodes, at least 5%) but never under 100 (pkg/scheduler/schedule_one.go
    numFeasibleNodesToFind with the default percentageOfNodesToScore of 0, i.e. adaptive)."""
    if all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return all_nodes
    percentage = max(BASE_PERCENTAGE_OF_NODES_TO_SCORE - all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    return max(all_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


def _name(node: Obj) -> str:
    return str((node.get("metadata") or {}).get("name") or "")
