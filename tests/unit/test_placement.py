"""The pure placement function: filters, scores, FitError text, and the scheduler's assumed-pod view."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kplane.scheduler.placement import (
    NodeInfo,
    PodInfo,
    choose_node,
    place,
    requirement_matches,
    tolerates,
)
from kplane.scheduler.resources import NodeUsage, pod_requests
from kplane.scheduler.view import ClusterView


def node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "10",
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    unschedulable: bool = False,
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"taints": taints or []}
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}},
    }


def pod(requests: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "x"}
    if requests:
        container["resources"] = {"requests": requests}
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [container], **spec}}


def usage(*requests: dict[str, str]) -> NodeUsage:
    return NodeUsage.of(pod(r) for r in requests)


def affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


# --- filters ----------------------------------------------------------------------------------------


def test_node_selector_picks_the_labelled_node() -> None:
    nodes = [node("a"), node("b", labels={"disk": "ssd"})]
    result = place(pod(nodeSelector={"disk": "ssd"}), nodes, {})
    assert result.node == "b"
    assert result.failures["a"].reasons == ("node(s) didn't match Pod's node affinity/selector",)


def test_taints_filter_unless_tolerated() -> None:
    nodes = [node("a", taints=[TAINT])]
    assert place(pod(), nodes, {}).node is None
    tolerated = {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
    assert place(pod(tolerations=[tolerated]), nodes, {}).node == "a"


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ({"key": "dedicated", "operator": "Exists"}, True),
        ({"operator": "Exists"}, True),
        ({"key": "dedicated", "value": "gpu"}, True),  # operator defaults to Equal, effect to all
        ({"key": "dedicated", "value": "cpu"}, False),
        ({"key": "other", "operator": "Exists"}, False),
        ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "dedicated", "operator": "Gt", "value": "gpu"}, False),
    ],
)
def test_toleration_matching(toleration: dict[str, str], expected: bool) -> None:
    assert tolerates(toleration, TAINT) is expected


def test_no_execute_filters_and_prefer_no_schedule_only_scores() -> None:
    no_execute = {"key": "k", "value": "v", "effect": "NoExecute"}
    prefer = {"key": "k", "value": "v", "effect": "PreferNoSchedule"}
    assert place(pod(), [node("a", taints=[no_execute])], {}).node is None
    assert place(pod(), [node("a", taints=[prefer])], {}).node == "a"
    # an otherwise identical node without the soft taint wins, although it sorts later
    assert place(pod(), [node("a", taints=[prefer]), node("b")], {}).node == "b"


def test_unschedulable_node_is_skipped_unless_tolerated() -> None:
    nodes = [node("a", unschedulable=True)]
    result = place(pod(), nodes, {})
    assert result.node is None
    assert result.failures["a"].reasons == ("node(s) were unschedulable",)
    toleration = {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
    assert place(pod(tolerations=[toleration]), nodes, {}).node == "a"


@pytest.mark.parametrize(
    ("requirement", "labels", "expected"),
    [
        ({"key": "zone", "operator": "In", "values": ["a", "b"]}, {"zone": "b"}, True),
        ({"key": "zone", "operator": "In", "values": ["a"]}, {}, False),
        ({"key": "zone", "operator": "NotIn", "values": ["a"]}, {}, True),
        ({"key": "zone", "operator": "NotIn", "values": ["a"]}, {"zone": "a"}, False),
        ({"key": "zone", "operator": "Exists"}, {"zone": ""}, True),
        ({"key": "zone", "operator": "DoesNotExist"}, {"zone": "a"}, False),
        ({"key": "gen", "operator": "Gt", "values": ["3"]}, {"gen": "4"}, True),
        ({"key": "gen", "operator": "Gt", "values": ["4"]}, {"gen": "4"}, False),
        ({"key": "gen", "operator": "Lt", "values": ["5"]}, {"gen": "4"}, True),
        ({"key": "gen", "operator": "Lt", "values": ["5"]}, {"gen": "four"}, False),
        ({"key": "gen", "operator": "Gt", "values": ["x"]}, {"gen": "4"}, False),
        ({"key": "gen", "operator": "Gt", "values": ["1", "2"]}, {"gen": "4"}, False),
        ({"key": "gen", "operator": "Gt", "values": ["1"]}, {}, False),
        ({"key": "zone", "operator": "Near", "values": ["a"]}, {"zone": "a"}, False),
    ],
)
def test_node_selector_requirements(requirement: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert requirement_matches(requirement, labels) is expected


def test_required_affinity_terms_are_ored_and_fields_match_the_name() -> None:
    nodes = [node("a", labels={"zone": "a"}), node("b", labels={"zone": "b"}), node("c")]
    by_zone = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]}
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]}
    assert place(pod(affinity=affinity(by_zone, by_name)), nodes, {}).node == "c"
    not_a = {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["a", "c"]}]}
    assert place(pod(affinity=affinity(not_a)), nodes, {}).node == "b"
    unknown_field = {"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["c"]}]}
    assert place(pod(affinity=affinity(unknown_field)), nodes, {}).node is None


def test_empty_affinity_term_matches_nothing_and_selector_and_affinity_both_apply() -> None:
    nodes = [node("a", labels={"zone": "a", "disk": "ssd"}), node("b", labels={"zone": "b", "disk": "ssd"})]
    assert place(pod(affinity=affinity({})), nodes, {}).node is None
    zone_b = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}
    assert place(pod(affinity=affinity(zone_b), nodeSelector={"zone": "a"}), nodes, {}).node is None
    assert place(pod(affinity=affinity(zone_b), nodeSelector={"disk": "ssd"}), nodes, {}).node == "b"


def test_resources_count_existing_usage() -> None:
    nodes = [node("a", cpu="4", memory="8Gi")]
    busy = {"a": usage({"cpu": "3"}, {"memory": "7Gi"})}
    result = place(pod({"cpu": "1500m", "memory": "2Gi"}), nodes, busy)
    assert result.node is None
    assert result.failures["a"].reasons == ("Insufficient cpu", "Insufficient memory")
    assert not result.failures["a"].unresolvable
    assert place(pod({"cpu": "1", "memory": "1Gi"}), nodes, busy).node == "a"


def test_pod_count_and_extended_resources() -> None:
    full = {"a": usage(*({} for _ in range(3)))}
    assert place(pod(), [node("a", pods="3")], full).failures["a"].reasons == ("Too many pods",)
    gpu_node = node("g", extra={"nvidia.com/gpu": "2"})
    assert place(pod({"nvidia.com/gpu": "2"}), [gpu_node], {}).node == "g"
    result = place(pod({"nvidia.com/gpu": "1"}), [node("a")], {})
    assert result.failures["a"].reasons == ("Insufficient nvidia.com/gpu",)
    assert result.failures["a"].unresolvable  # more than the node has at all


def test_allocatable_falls_back_to_capacity() -> None:
    bare = {"metadata": {"name": "a"}, "status": {"capacity": {"cpu": "2", "memory": "1Gi", "pods": "5"}}}
    assert place(pod({"cpu": "2"}), [bare], {}).node == "a"
    assert place(pod({"cpu": "3"}), [bare], {}).node is None


def test_pod_requests_follow_init_container_and_overhead_rules() -> None:
    spec = pod({"cpu": "1", "memory": "1Gi"})
    spec["spec"]["initContainers"] = [
        {"name": "setup", "resources": {"requests": {"cpu": "3"}}},
        {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m", "memory": "100Mi"}}},
        {"name": "late", "resources": {"requests": {"cpu": "2", "memory": "2Gi"}}},
    ]
    spec["spec"]["overhead"] = {"cpu": "100m"}
    # app + sidecar = 1.5 cpu; peak init is max(3, 2 + 0.5 sidecar) = 3 cpu; memory max(1.1Gi, 2Gi + 100Mi)
    assert pod_requests(spec) == {"cpu": 3100, "memory": 2 * 2**30 + 100 * 2**20}
    spec["spec"]["resources"] = {"requests": {"cpu": "250m"}}
    assert pod_requests(spec)["cpu"] == 350


@pytest.mark.parametrize("bad", ["lots", "", "1.5.5", None, ["1"], True])
def test_unreadable_requests_raise_value_error(bad: Any) -> None:
    broken = pod()
    broken["spec"]["containers"][0]["resources"] = {"requests": {"cpu": bad}}
    with pytest.raises(ValueError, match="cpu"):
        place(broken, [node("a")], {})


def test_malformed_containers_raise_value_error() -> None:
    with pytest.raises(ValueError, match="containers"):
        pod_requests({"spec": {"containers": ["not-an-object"]}})
    with pytest.raises(ValueError, match="requests"):
        pod_requests({"spec": {"containers": [{"name": "a", "resources": {"requests": ["cpu"]}}]}})


# --- messages ---------------------------------------------------------------------------------------


def test_fit_error_message_matches_upstream_wording() -> None:
    nodes = [node("a", taints=[TAINT]), node("b", cpu="1"), node("c", cpu="4")]
    result = place(pod({"cpu": "3"}), nodes, {"c": usage({"cpu": "2"})})
    assert result.message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, "
        "2 Preemption is not helpful for scheduling."
    )


def test_message_for_no_nodes_and_for_preemption_never() -> None:
    assert place(pod(), [], {}).message == "no nodes available to schedule pods"
    result = place(pod(nodeSelector={"x": "y"}, preemptionPolicy="Never"), [node("a")], {})
    assert result.message == (
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
        "preemption: not eligible due to preemptionPolicy=Never."
    )
    assert place(pod(), [node("a")], {}).message == ""


def test_filters_stop_at_the_first_failure_per_node() -> None:
    result = place(pod({"cpu": "8"}, nodeSelector={"x": "y"}), [node("a", taints=[TAINT])], {})
    assert result.failures["a"].reasons == ("node(s) had untolerated taint(s)",)


def test_extra_filters_run_after_the_defaults() -> None:
    from kplane.scheduler.placement import DEFAULT_FILTERS, FilterStatus

    def no_devices(_pod: PodInfo, candidate: NodeInfo) -> FilterStatus | None:
        return FilterStatus(("cannot allocate all claims",)) if candidate.name == "a" else None

    result = place(pod(), [node("a"), node("b")], {}, filters=(*DEFAULT_FILTERS, no_devices))
    assert result.node == "b"
    assert result.failures["a"].reasons == ("cannot allocate all claims",)


# --- scores -----------------------------------------------------------------------------------------


def test_least_allocated_node_wins_and_ties_break_by_name() -> None:
    nodes = [node("c"), node("a"), node("b")]
    assert place(pod({"cpu": "1"}), nodes, {}).node == "a"
    assert place(pod({"cpu": "1"}), nodes, {"a": usage({"cpu": "2"})}).node == "b"


def test_preferred_affinity_raises_a_node_score() -> None:
    preferred = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}}]}}
    nodes = [node("a", labels={"zone": "a"}), node("b", labels={"zone": "b"})]
    assert place(pod(affinity=preferred), nodes, {}).node == "b"


def test_balanced_allocation_prefers_even_use() -> None:
    # both nodes leave the same free share on average; b's cpu and memory shares are closer together
    nodes = [node("a", cpu="4", memory="4Gi"), node("b", cpu="4", memory="4Gi")]
    busy = {"a": usage({"cpu": "2", "memory": "200Mi"}), "b": usage({"cpu": "1", "memory": "1Gi"})}
    result = place(pod({"cpu": "1", "memory": "1Gi"}), nodes, busy)
    assert result.node == "b"


# --- assumed placements -----------------------------------------------------------------------------


def test_assumed_pods_count_until_released() -> None:
    view = ClusterView()
    view.set_node(node("a", cpu="2"))
    info = PodInfo.of(pod({"cpu": "2"}))
    assert choose_node(info, view.node_infos()).node == "a"
    view.assume("ns/one", "a", info.requests)
    assert choose_node(info, view.node_infos()).node is None
    # the watch shows the pod still unbound: the assumption holds
    assert not view.observe("ns/one", None, "Pending", lambda: info.requests)
    assert view.is_assumed("ns/one")
    # the watch shows it bound: no longer assumed, still counted once
    assert not view.observe("ns/one", "a", "Pending", lambda: info.requests)
    assert view.is_placed("ns/one") and not view.is_assumed("ns/one")
    assert view.usage("a").requested == {"cpu": 2000}
    # it finishes: capacity is freed, and the view says so
    assert view.observe("ns/one", "a", "Succeeded", lambda: info.requests)
    assert choose_node(info, view.node_infos()).node == "a"


def test_view_moves_a_pod_between_nodes_and_survives_bad_requests() -> None:
    view = ClusterView()

    def broken() -> dict[str, int]:
        raise ValueError("bad quantity")

    view.observe("ns/p", "a", "Running", lambda: {"cpu": 500})
    view.observe("ns/p", "b", "Running", lambda: {"cpu": 500})
    assert view.usage("a").pods == 0 and view.usage("b").pods == 1
    view.observe("ns/q", "a", "Running", broken)
    assert view.usage("a").pods == 1 and view.usage("a").requested == {}
    assert view.release("ns/p") and not view.release("ns/p")
    assert view.usage("b").pods == 0


# --- how many nodes are filtered ---------------------------------------------------------------------


@pytest.mark.parametrize(("all_nodes", "expected"), [
    (1, 1), (99, 99), (100, 100), (125, 100), (1000, 420), (5000, 500), (6000, 300), (10_000, 500)])
def test_feasible_nodes_to_find_follows_upstream(all_nodes: int, expected: int) -> None:
    from kplane.scheduler.placement import feasible_nodes_to_find

    assert feasible_nodes_to_find(all_nodes) == expected


def test_filtering_stops_after_enough_feasible_nodes_and_starts_where_asked() -> None:
    infos = [NodeInfo(node(f"n{i:03}")) for i in range(125)]
    first = choose_node(PodInfo.of(pod({"cpu": "1"})), infos)
    assert first.processed == 100 and len(first.scores) == 100 and first.node == "n000"
    second = choose_node(PodInfo.of(pod({"cpu": "1"})), infos, start=first.processed)
    assert "n124" in second.scores and "n099" not in second.scores and second.node == "n000"


def test_a_pod_that_fits_nowhere_is_checked_against_every_node() -> None:
    infos = [NodeInfo(node(f"n{i:03}", cpu="1")) for i in range(150)]
    result = choose_node(PodInfo.of(pod({"cpu": "2"})), infos, start=70)
    assert result.node is None and result.processed == 150 and len(result.failures) == 150
    assert result.message.startswith("0/150 nodes are available: 150 Insufficient cpu.")


# --- per-pod specialisation and the fused resource score ---------------------------------------------

NODE_VARIANTS = [
    node("plain"),
    node("tainted", taints=[TAINT]),
    node("no-execute", taints=[{"key": "k", "effect": "NoExecute"}]),
    node("soft", taints=[{"key": "k", "effect": "PreferNoSchedule"}]),
    node("cordoned", unschedulable=True),
    node("labelled", labels={"disk": "ssd", "zone": "a"}),
    node("small", cpu="1", memory="1Gi", pods="1"),
]
POD_VARIANTS = [
    pod(),
    pod({"cpu": "2", "memory": "2Gi", "example.com/gpu": "1"}),
    pod(tolerations=[{"operator": "Exists"}]),
    pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]),
    pod(nodeSelector={"disk": "ssd"}),
    pod(affinity=affinity()),  # required affinity without terms: matches no node
    pod(affinity=affinity({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["small"]}]})),
]


@pytest.mark.parametrize("raw_pod", POD_VARIANTS)
def test_pod_check_gives_what_the_filter_gives_or_is_left_out_when_it_always_passes(raw_pod: dict[str, Any]) -> None:
    from kplane.scheduler.placement import DEFAULT_FILTERS, pod_check

    info = PodInfo.of(raw_pod)
    busy = {"small": usage({"cpu": "500m"})}
    infos = [NodeInfo(n, busy.get(n["metadata"]["name"]) or NodeUsage()) for n in NODE_VARIANTS]
    for check in DEFAULT_FILTERS:
        bound = pod_check(info, check)
        for candidate in infos:
            expected = check(info, candidate)
            if bound is None:
                assert expected is None
            else:
                assert bound(candidate) == expected


def test_pod_check_leaves_out_only_filters_that_cannot_fail_for_the_pod() -> None:
    from kplane.scheduler.placement import node_affinity, node_unschedulable, pod_check, taint_toleration

    plain = PodInfo.of(pod())
    assert pod_check(plain, node_affinity) is None
    assert pod_check(plain, node_unschedulable) is not None
    assert pod_check(plain, taint_toleration) is not None
    assert pod_check(PodInfo.of(pod(affinity=affinity())), node_affinity) is not None
    assert pod_check(PodInfo.of(pod(nodeSelector={"a": "b"})), node_affinity) is not None
    assert pod_check(PodInfo.of(POD_VARIANTS[3]), node_unschedulable) is None


def test_fit_requests_are_ordered_as_upstream_reports_them_without_the_pod_count() -> None:
    info = PodInfo.of(pod({"example.com/b": "1", "memory": "1Gi", "pods": "1", "cpu": "1", "example.com/a": "2"}))
    assert [name for name, _ in info.fit_requests] == ["cpu", "memory", "example.com/a", "example.com/b"]
    assert dict(info.fit_requests)["cpu"] == 1000
    assert PodInfo.of(pod()).fit_requests == ()


def _reference_resource_score(used_cpu: int, have_cpu: int, used_memory: int, have_memory: int) -> int:
    """LeastAllocated + BalancedAllocation as two separate plugins over a list of shares (upstream's shape)."""
    shares = [(used_cpu, have_cpu), (used_memory, have_memory)]
    least = sum(0 if have == 0 or used > have else (have - used) * 100 // have for used, have in shares) // 2
    fractions = [min(used / have, 1.0) if have else 1.0 for used, have in shares]
    mean = sum(fractions) / len(fractions)
    deviation = (sum((share - mean) ** 2 for share in fractions) / len(fractions)) ** 0.5
    return least + int((1 - deviation) * 100)


AMOUNTS = st.integers(min_value=0, max_value=2**40)


@settings(max_examples=300, deadline=None)
@given(AMOUNTS, AMOUNTS, AMOUNTS, AMOUNTS)
def test_resource_score_matches_the_two_plugins(used_cpu: int, have_cpu: int, used_memory: int,
                                                have_memory: int) -> None:
    from kplane.scheduler.placement import resource_score

    assert resource_score(used_cpu, have_cpu, used_memory, have_memory) == \
        _reference_resource_score(used_cpu, have_cpu, used_memory, have_memory)


@pytest.mark.parametrize(("args", "expected"), [
    ((0, 0, 0, 0), 0 + 100),  # nothing allocatable: no free share, both shares full (balanced)
    ((2000, 4000, 0, 8), 75 + 75),
    ((5000, 4000, 8, 8), 0 + 100),  # over-committed: shares are capped at 1
])
def test_resource_score_edges(args: tuple[int, int, int, int], expected: int) -> None:
    from kplane.scheduler.placement import resource_score

    assert resource_score(*args) == expected


def test_soft_taint_and_preferred_affinity_scores_are_normalized_over_the_feasible_nodes() -> None:
    from kplane.scheduler.placement import score_nodes

    soft = {"key": "k", "effect": "PreferNoSchedule"}
    hard = {"key": "h", "effect": "NoSchedule"}
    plain = [NodeInfo(node("a")), NodeInfo(node("b"))]
    base = score_nodes(PodInfo.of(pod()), plain)
    assert base["a"] == base["b"] == _reference_resource_score(100, 4000, 200 * 1024 * 1024, 8 * 2**30) + 300
    # a hard taint (tolerated) changes nothing in scoring; a soft one costs its node the taint score
    tolerated = [NodeInfo(node("a", taints=[hard])), NodeInfo(node("b", taints=[soft]))]
    scores = score_nodes(PodInfo.of(pod(tolerations=[{"key": "h", "operator": "Exists"}])), tolerated)
    assert scores["a"] == base["a"] and scores["b"] == base["b"] - 300
    preferred = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchFields": [{"key": "metadata.name", "operator": "In",
                                                       "values": ["b"]}]}}]}}
    scores = score_nodes(PodInfo.of(pod(affinity=preferred)), plain)
    assert scores == {"a": base["a"], "b": base["b"] + 200}


def test_choose_node_is_the_plain_filter_chain_from_any_start() -> None:
    """Every node, from every start: the first failing filter's status, or feasible."""
    from kplane.scheduler.placement import DEFAULT_FILTERS

    infos = [NodeInfo(n) for n in NODE_VARIANTS]
    for raw_pod in POD_VARIANTS:
        info = PodInfo.of(raw_pod)
        for start in range(-1, len(infos) + 2):
            result = choose_node(info, infos, start=start)
            expected = {}
            for candidate in infos:
                status = next((s for s in (f(info, candidate) for f in DEFAULT_FILTERS) if s is not None), None)
                if status is not None:
                    expected[candidate.name] = status
            assert result.failures == expected
            assert set(result.scores) == {n.name for n in infos} - set(expected)
            assert result.processed == len(infos)
            if result.scores:
                top = max(result.scores.values())
                assert result.node == sorted(n for n, s in result.scores.items() if s == top)[0]
