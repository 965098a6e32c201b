"""What the scheduler keeps between pods (kplane.dra.tracking, SliceIndex) gives the answers a fresh
computation gives; the DRA plugin wakes only the pods a claim change concerns; the claim controller leaves
the finalizer of a claim being allocated alone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lightkube.resources.resource_v1 import DeviceClass, ResourceClaim, ResourceSlice

from kplane.controllers.resourceclaim import FINALIZER, plan_claim
from kplane.dra.allocator import AllocatedState, Slice, SliceIndex, allocate, parse_slices
from kplane.dra.features import features_for
from kplane.dra.model import InvalidInput
from kplane.dra.pools import gather_pools
from kplane.dra.tracking import AllocationTracker, OutcomeMemo, claims_fingerprint
from kplane.runtime import key_of
from kplane.runtime.store import Store
from kplane.scheduler.dra import DraPlugin, PodClaims, Wait
from kplane.scheduler.placement import DEFAULT_FILTERS, NodeInfo, PodInfo, choose_node
from kplane.sim.gpudriver import device_classes, node_slices, parse_profile

DRIVER = "gpu.nvidia.com"
FEATURES = features_for(version="1.36")
CLASSES = {c["metadata"]["name"]: c for c in device_classes()}


def allocated(name: str, *results: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "d"},
            "status": {"allocation": {"devices": {"results": list(results)}}}}


def result(pool: str, device: str, **extra: Any) -> dict[str, Any]:
    return {"request": "r", "driver": DRIVER, "pool": pool, "device": device, **extra}


# --- AllocationTracker ----------------------------------------------------------------------------------

RESULTS = st.one_of(
    st.builds(lambda p, d: result(p, d), st.sampled_from(["a", "b"]), st.sampled_from(["gpu-0", "gpu-1"])),
    st.builds(lambda d: result("a", d, adminAccess=True), st.sampled_from(["gpu-0", "gpu-1"])),
    st.builds(lambda d, s, m: result("b", d, shareID=s, consumedCapacity={"memory": f"{m}Gi"}),
              st.sampled_from(["gpu-0", "gpu-1"]), st.sampled_from(["s1", "s2"]), st.integers(0, 4)),
)
STEPS = st.lists(st.tuples(st.sampled_from(["c1", "c2", "c3"]),
                           st.one_of(st.none(), st.lists(RESULTS, max_size=3))), max_size=12)


@settings(max_examples=150, deadline=None)
@given(STEPS)
def test_tracker_matches_a_fresh_allocated_state(steps: list[tuple[str, list[dict[str, Any]] | None]]) -> None:
    tracker = AllocationTracker()
    current: dict[str, dict[str, Any]] = {}
    for name, results in steps:
        claim = None if results is None else allocated(name, *results)
        tracker.set(f"d/{name}", claim)
        if claim is None:
            current.pop(name, None)
        else:
            current[name] = claim
        fresh = AllocatedState.from_claims(list(current.values()))
        assert tracker.state.devices == fresh.devices
        assert tracker.state.shared == fresh.shared
        assert {d: {k: v for k, v in c.items() if v} for d, c in tracker.state.capacity.items()} == \
            {d: {k: v for k, v in c.items() if v} for d, c in fresh.capacity.items()}
        assert tracker.state.capacity.keys() == fresh.capacity.keys()


def test_tracker_moves_only_the_versions_of_touched_pools() -> None:
    tracker = AllocationTracker()
    tracker.set("d/x", allocated("x", result("a", "gpu-0")))
    a, b = tracker.pool_version((DRIVER, "a")), tracker.pool_version((DRIVER, "b"))
    assert a > 0 and b == 0
    tracker.set("d/x", allocated("x", result("a", "gpu-0")))  # unchanged: no new version
    assert tracker.pool_version((DRIVER, "a")) == a
    tracker.set("d/y", allocated("y", result("b", "gpu-0")))
    assert tracker.pool_version((DRIVER, "a")) == a and tracker.pool_version((DRIVER, "b")) > b
    tracker.set("d/x", None)
    assert tracker.pool_version((DRIVER, "a")) > a
    assert {d.pool for d in tracker.state.devices} == {"b"}


def test_tracker_refuses_a_bad_quantity_without_changing_anything() -> None:
    tracker = AllocationTracker()
    tracker.set("d/x", allocated("x", result("a", "gpu-0")))
    bad = allocated("x", result("b", "gpu-1", shareID="s", consumedCapacity={"memory": "lots"}))
    with pytest.raises(InvalidInput):
        tracker.set("d/x", bad)
    assert {d.device for d in tracker.state.devices} == {"gpu-0"} and not tracker.state.shared


def test_a_device_held_twice_stays_in_use_until_both_let_go() -> None:
    tracker = AllocationTracker()
    tracker.set("d/x", allocated("x", result("a", "gpu-0")))
    tracker.set("d/y", allocated("y", result("a", "gpu-0")))
    tracker.set("d/x", None)
    assert len(tracker.state.devices) == 1
    tracker.set("d/y", allocated("y"))
    assert not tracker.state.devices


# --- SliceIndex -----------------------------------------------------------------------------------------


def raw_slice(name: str, pool: str, *, node: str = "", generation: int = 1, count: int = 1,
              **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"driver": DRIVER, "pool": {"name": pool, "generation": generation,
                                                       "resourceSliceCount": count},
                            "devices": [{"name": f"{name}-dev"}], **spec}
    if node:
        body["nodeName"] = node
    return {"metadata": {"name": name}, "spec": body}


MIXED = [
    raw_slice("n1-own", "n1", node="n1"),
    raw_slice("n2-own", "n2", node="n2"),
    raw_slice("everywhere", "net", allNodes=True),
    raw_slice("zone-a", "zoned", nodeSelector={"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}),
    raw_slice("split-1", "split", node="n1", count=2),  # its second slice is on another node
    raw_slice("split-2", "split", node="n2", count=2),
    raw_slice("half", "short", node="n1", count=2),  # incomplete pool
    raw_slice("old", "gen", node="n1", generation=1),
    raw_slice("new", "gen", node="n1", generation=2),
]


def summary(pools: list[Any]) -> list[tuple[str, bool, list[str]]]:
    return [(p.id, p.incomplete, [s.name for s in p.slices]) for p in pools]


@pytest.mark.parametrize("node", [
    {"metadata": {"name": "n1", "labels": {"zone": "a"}}},
    {"metadata": {"name": "n2", "labels": {"zone": "b"}}},
    {"metadata": {"name": "elsewhere"}},
    None,
])
def test_slice_index_gathers_the_pools_a_plain_list_gathers(node: dict[str, Any] | None) -> None:
    views: list[Slice] = parse_slices(MIXED)
    index = SliceIndex(views)
    assert summary(index.pools(node, FEATURES)) == summary(gather_pools(node, views, FEATURES))
    assert index.pools(node, FEATURES) is index.pools(node, FEATURES)


def test_slice_index_remembers_pools_per_node_object() -> None:
    index = SliceIndex(parse_slices(MIXED))
    in_a = {"metadata": {"name": "n1", "labels": {"zone": "a"}}}
    in_b = {"metadata": {"name": "n1", "labels": {"zone": "b"}}}
    assert "gpu.nvidia.com/zoned" in [p.id for p in index.pools(in_a, FEATURES)]
    assert "gpu.nvidia.com/zoned" not in [p.id for p in index.pools(in_b, FEATURES)]


# --- OutcomeMemo and the filter -------------------------------------------------------------------------


def gpu_claim(name: str, count: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "d", "uid": name},
            "spec": {"devices": {"requests": [{"name": "r", "exactly": {"deviceClassName": DRIVER,
                                                                           "count": count}}]}}}


def pod() -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "d", "uid": "pu"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}


def test_memo_answers_until_the_nodes_pools_change() -> None:
    tracker, memo = AllocationTracker(), OutcomeMemo()
    index = SliceIndex(parse_slices(node_slices("n1", parse_profile("2x H100-80GB"))))
    node = {"metadata": {"name": "n1"}}
    fp = claims_fingerprint([gpu_claim("c")])
    args = ("n1", fp, node, index, CLASSES, FEATURES, tracker)
    assert memo.get(*args) == (False, None)
    memo.put(*args, None)
    assert memo.get(*args) == (True, None)
    tracker.set("d/elsewhere", allocated("elsewhere", result("other-pool", "gpu-0")))
    assert memo.get(*args) == (True, None)
    tracker.set("d/here", allocated("here", result("n1", "gpu-0")))
    assert memo.get(*args) == (False, None)
    assert memo.get("n1", fp, {"metadata": {"name": "n1"}}, index, CLASSES, FEATURES, tracker)[0] is False
    shared = [{"devices": {"results": [result("n1", "gpu-1", shareID="u")]}}]
    memo.put(*args, shared)
    assert memo.get(*args) == (False, None)


def test_filter_with_memo_places_pods_as_a_fresh_allocation_does() -> None:
    """Ten one-GPU pods on three 2-GPU nodes, claims reserved one by one: the memo changes no answer."""
    names = ["n0", "n1", "n2"]
    raw = [s for n in names for s in node_slices(n, parse_profile("2x H100-80GB"))]
    index = SliceIndex(parse_slices(raw))
    nodes = [NodeInfo({"metadata": {"name": n, "labels": {}},
                       "status": {"allocatable": {"cpu": "8", "memory": "8Gi", "pods": "110"}}}) for n in names]
    tracker, memo = AllocationTracker(), OutcomeMemo()
    held: list[dict[str, Any]] = []
    placed = []
    for i in range(8):
        claim = gpu_claim(f"c{i}")
        remembered = PodClaims(pod(), [claim], [claim], index, CLASSES, tracker.state, FEATURES, memo=memo,
                               tracker=tracker)
        fresh = PodClaims(pod(), [claim], [claim], raw, CLASSES, AllocatedState.from_claims(held), FEATURES)  # type: ignore[arg-type]
        a = choose_node(PodInfo.of(pod()), nodes, filters=(*DEFAULT_FILTERS, remembered.filter))
        b = choose_node(PodInfo.of(pod()), nodes, filters=(*DEFAULT_FILTERS, fresh.filter))
        assert (a.node, remembered.results.get(a.node or "")) == (b.node, fresh.results.get(b.node or ""))
        placed.append(a.node)
        if a.node is None:
            continue
        done = {**claim, "status": {"allocation": remembered.results[a.node][0]}}
        held.append(done)
        tracker.set(f"d/c{i}", done)
    assert placed == ["n0", "n0", "n1", "n1", "n2", "n2", None, None]


def test_filter_does_not_remember_errors() -> None:
    calls = []

    def broken(*args: Any) -> Any:
        calls.append(args)
        return allocate(*args[:3], {}, *args[4:])  # no classes: an error naming the claim

    index = SliceIndex(parse_slices(node_slices("n1", parse_profile("1x H100-80GB"))))
    tracker, memo = AllocationTracker(), OutcomeMemo()
    nodes = [NodeInfo({"metadata": {"name": "n1"}, "status": {"allocatable": {"pods": "10"}}})]
    for _ in range(2):
        state = PodClaims(pod(), [gpu_claim("c")], [gpu_claim("c")], index, CLASSES, tracker.state, FEATURES,
                          broken, memo=memo, tracker=tracker)
        assert choose_node(PodInfo.of(pod()), nodes, filters=(state.filter,)).node is None
    assert len(calls) == 2


# --- DraPlugin: events and wake-ups ---------------------------------------------------------------------


class FakeInformer:
    def __init__(self) -> None:
        self.store = Store()
        self.handlers: list[Any] = []

    def add_handler(self, handler: Any) -> Any:
        self.handlers.append(handler)
        return handler

    def start(self) -> None:
        return None

    async def wait_synced(self) -> None:
        return None

    def add(self, obj: dict[str, Any]) -> None:
        old = self.store.put(obj)
        for h in self.handlers:
            if old is None:
                h.on_add(obj)
            else:
                h.on_update(old, obj)

    def delete(self, obj: dict[str, Any]) -> None:
        self.store.delete(key_of(obj))
        for h in self.handlers:
            h.on_delete(obj)


class FakeInformers:
    def __init__(self) -> None:
        self.by_resource: dict[type, FakeInformer] = {}

    def get(self, resource: type) -> FakeInformer:
        return self.by_resource.setdefault(resource, FakeInformer())


def generated(name: str, owner: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "d", "resourceVersion": "1", "uid": name,
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": owner, "uid": owner,
                                              "controller": True}]},
            "spec": gpu_claim(name)["spec"], "status": status}


def plugin() -> tuple[DraPlugin, FakeInformers, list[str]]:
    informers = FakeInformers()
    woken: list[str] = []
    dra = DraPlugin(None, informers, lambda: woken.append("*"), on_claim=woken.append)  # type: ignore[arg-type]
    asyncio.run(dra._start())
    for c in device_classes():
        informers.get(DeviceClass).add(c)
    for s in node_slices("n1", parse_profile("2x H100-80GB")):
        informers.get(ResourceSlice).add(s)
    woken.clear()
    return dra, informers, woken


def test_claim_events_wake_only_their_pod_unless_devices_are_freed() -> None:
    _, informers, woken = plugin()
    claims = informers.get(ResourceClaim)
    claims.add(generated("p1-gpu", "p1"))
    assert woken == ["d/p1"]
    allocation = {"devices": {"results": [result("n1", "gpu-0")]}}
    claims.add({**generated("p1-gpu", "p1", allocation=allocation), "metadata": {
        **generated("p1-gpu", "p1")["metadata"], "resourceVersion": "2"}})
    assert woken == ["d/p1", "d/p1"]
    claims.delete(generated("p1-gpu", "p1", allocation=allocation))
    assert woken[-1] == "*"
    claims.add({"metadata": {"name": "shared", "namespace": "d"}, "spec": {}})
    assert woken[-1] == "*"


def test_prepare_sees_claims_slices_and_in_flight_allocations() -> None:
    dra, informers, _ = plugin()
    claims = informers.get(ResourceClaim)
    waiting = {"metadata": {"name": "p1", "namespace": "d", "uid": "p1"},
               "spec": {"resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "t"}]},
               "status": {"resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": "p1-gpu"}]}}
    assert isinstance(asyncio.run(dra.prepare(waiting)), Wait)
    claims.add(generated("p1-gpu", "p1"))
    state = asyncio.run(dra.prepare(waiting))
    assert isinstance(state, PodClaims) and isinstance(state.slices, SliceIndex)
    node = NodeInfo({"metadata": {"name": "n1"}, "status": {"allocatable": {"pods": "10"}}})
    assert choose_node(PodInfo.of(waiting), [node], filters=(state.filter,)).node == "n1"
    planned = dra.reserve(state, "n1")
    assert {d.device for d in state.allocated.devices} == {"gpu-0"}
    dra.unreserve(planned)
    assert not dra._tracker.state.devices


def test_claim_controller_keeps_the_finalizer_while_the_scheduler_may_be_allocating() -> None:
    claim = {"metadata": {"name": "p1-gpu", "namespace": "d", "finalizers": [FINALIZER],
                          "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p1", "uid": "u1",
                                               "controller": True}]},
             "status": {}}
    pending = {"metadata": {"name": "p1", "uid": "u1"}, "spec": {}}
    assert not plan_claim(claim, {"p1": pending}.get).remove_finalizer
    bound = {**pending, "spec": {"nodeName": "n1"}}
    assert plan_claim(claim, {"p1": bound}.get).remove_finalizer
    assert plan_claim(claim, {}.get).remove_finalizer
    deleting = {**claim, "metadata": {**claim["metadata"], "deletionTimestamp": "2024-01-01T00:00:00Z"}}
    assert plan_claim(deleting, {"p1": pending}.get).remove_finalizer


# --- per-pod and per-entry precomputation ---------------------------------------------------------------


def test_pool_versions_are_in_order_and_zero_for_unknown_pools() -> None:
    tracker = AllocationTracker()
    tracker.set("d/x", allocated("x", result("a", "gpu-0")))
    pools = [(DRIVER, "b"), (DRIVER, "a"), ("other", "a")]
    assert tracker.pool_versions(pools) == (0, tracker.pool_version((DRIVER, "a")), 0)
    assert tracker.pool_versions(()) == ()


def test_memo_checks_identity_of_index_and_classes_but_equality_of_features() -> None:
    tracker, memo = AllocationTracker(), OutcomeMemo()
    raw = node_slices("n1", parse_profile("2x H100-80GB"))
    index = SliceIndex(parse_slices(raw))
    node = {"metadata": {"name": "n1"}}
    fp = claims_fingerprint([gpu_claim("c")])
    memo.put("n1", fp, node, index, CLASSES, FEATURES, tracker, None)
    assert memo.get("n1", fp, node, index, CLASSES, features_for(version="1.36"), tracker) == (True, None)
    assert memo.get("n1", fp, node, index, CLASSES, features_for(version="1.34"), tracker)[0] is False
    assert memo.get("n1", fp, node, SliceIndex(parse_slices(raw)), CLASSES, FEATURES, tracker)[0] is False
    assert memo.get("n1", fp, node, index, dict(CLASSES), FEATURES, tracker)[0] is False
    assert memo.get("n1", claims_fingerprint([gpu_claim("c", 2)]), node, index, CLASSES, FEATURES,
                    tracker)[0] is False
    memo.clear()
    assert memo.get("n1", fp, node, index, CLASSES, FEATURES, tracker)[0] is False


def test_memo_entry_goes_stale_when_any_of_the_nodes_pools_moves() -> None:
    """A node with two pools (its own GPUs and a cluster-wide one): a change in either invalidates."""
    tracker, memo = AllocationTracker(), OutcomeMemo()
    raw = [*node_slices("n1", parse_profile("2x H100-80GB")), raw_slice("everywhere", "net", allNodes=True)]
    index = SliceIndex(parse_slices(raw))
    node = {"metadata": {"name": "n1"}}
    assert len(index.pools(node, FEATURES)) == 2
    args = ("n1", claims_fingerprint([gpu_claim("c")]), node, index, CLASSES, FEATURES, tracker)
    memo.put(*args, None)
    tracker.set("d/net", allocated("net", result("net", "everywhere-dev")))
    assert memo.get(*args)[0] is False
    memo.put(*args, None)
    assert memo.get(*args) == (True, None)
    tracker.set("d/own", allocated("own", result("n1", "gpu-0")))
    assert memo.get(*args)[0] is False


@pytest.mark.parametrize(("claim", "expected"), [
    ({"metadata": {"name": "c"}}, None),
    ({"status": {"allocation": {"devices": {"results": []}}}}, None),
    ({"status": {"allocation": {"nodeSelector": {}}}}, None),
    ({"status": {"allocation": {"nodeSelector": {"nodeSelectorTerms": []}}}}, ()),
    ({"status": {"allocation": {"nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}},
     ({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},)),
])
def test_allocation_node_terms(claim: dict[str, Any], expected: tuple[dict[str, Any], ...] | None) -> None:
    from kplane.scheduler.dra import allocation_node_terms

    assert allocation_node_terms(claim) == expected


def test_filter_keeps_a_pod_with_an_allocated_claim_on_the_claims_nodes() -> None:
    on_n1 = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
    selected = {**gpu_claim("c"), "status": {"allocation": {"nodeSelector": {"nodeSelectorTerms": [on_n1]}}}}
    nowhere = {**gpu_claim("d"), "status": {"allocation": {"nodeSelector": {"nodeSelectorTerms": []}}}}
    anywhere = {**gpu_claim("e"), "status": {"allocation": {"devices": {"results": []}}}}
    nodes = [NodeInfo({"metadata": {"name": n}, "status": {"allocatable": {"pods": "10"}}}) for n in ("n0", "n1")]
    index = SliceIndex(())
    for claims, placed in (([selected, anywhere], "n1"), ([anywhere], "n0"), ([selected, nowhere], None)):
        state = PodClaims(pod(), claims, [], index, CLASSES, AllocatedState(), FEATURES)
        outcome = choose_node(PodInfo.of(pod()), nodes, filters=(state.filter,))
        assert outcome.node == placed
        assert all(s.reasons == ("resourceclaim not available on the node",) and s.unresolvable
                   for s in outcome.failures.values())
