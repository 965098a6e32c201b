"""Claims from templates and their release (controllers.resourceclaim), and the scheduler's DRA filter
(scheduler.dra), as pure functions."""

from __future__ import annotations

from typing import Any

from kplane.controllers.resourceclaim import FINALIZER, POD_CLAIM_NAME, plan_claim, plan_pod
from kplane.dra.allocator import AllocatedState, AllocationOutcome, parse_slices
from kplane.dra.features import features_for
from kplane.scheduler.dra import (
    REASON_CANNOT_ALLOCATE,
    REASON_NOT_ON_NODE,
    PodClaims,
    Wait,
    missing_class,
    resolve_claims,
)
from kplane.scheduler.placement import DEFAULT_FILTERS, NodeInfo, PodInfo, choose_node
from kplane.sim.gpudriver import device_classes, node_slices, parse_profile

TEMPLATE = {"metadata": {"name": "one-gpu", "namespace": "d"},
            "spec": {"metadata": {"labels": {"team": "ml"}, "annotations": {"a": "b"}},
                     "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
                         "deviceClassName": "gpu.nvidia.com"}}]}}}}


def pod(name: str = "trainer", uid: str = "pod-uid", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "d", "uid": uid},
            "spec": {"resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"},
                                        {"name": "shared", "resourceClaimName": "team-claim"}],
                     "containers": [{"name": "c", "image": "i"}]},
            "status": status}


def templates(name: str) -> dict[str, Any] | None:
    return TEMPLATE if name == "one-gpu" else None


def test_plan_pod_creates_claim_from_template() -> None:
    plan = plan_pod(pod(), [], templates)
    assert len(plan.create) == 1
    pod_claim, body = plan.create[0]
    assert pod_claim == "gpu"
    assert body["metadata"]["generateName"] == "trainer-gpu-"
    assert body["metadata"]["annotations"] == {"a": "b", POD_CLAIM_NAME: "gpu"}
    assert body["metadata"]["labels"] == {"team": "ml"}
    assert body["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Pod", "name": "trainer",
                                                    "uid": "pod-uid", "controller": True, "blockOwnerDeletion": True}]
    assert body["spec"] == TEMPLATE["spec"]["spec"]
    assert plan.statuses is None


def test_plan_pod_is_idempotent_and_records_status() -> None:
    recorded = pod(resourceClaimStatuses=[{"name": "gpu", "resourceClaimName": "trainer-gpu-abcde"}])
    assert plan_pod(recorded, [], templates).create == []
    assert plan_pod(recorded, [], templates).statuses is None
    owned = {"metadata": {"name": "trainer-gpu-xyz", "annotations": {POD_CLAIM_NAME: "gpu"}}}
    plan = plan_pod(pod(), [owned], templates)
    assert plan.create == [] and plan.statuses == [{"name": "gpu", "resourceClaimName": "trainer-gpu-xyz"}]


def test_plan_pod_long_names_missing_templates_and_done_pods() -> None:
    long = pod(name="p" * 80)
    assert len(plan_pod(long, [], templates).create[0][1]["metadata"]["generateName"]) == 57
    assert plan_pod(pod(), [], lambda _: None).missing_templates == ["one-gpu"]
    assert plan_pod(pod(phase="Succeeded"), [], templates).create == []


def claim(reserved: list[dict[str, Any]], *, owner: str | None = None, allocated: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "c", "namespace": "d", "finalizers": [FINALIZER]}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": "trainer", "uid": owner,
                                    "controller": True}]
    status: dict[str, Any] = {"reservedFor": reserved}
    if allocated:
        status["allocation"] = {"devices": {"results": []}}
    return {"metadata": meta, "status": status}


def ref(name: str, uid: str) -> dict[str, Any]:
    return {"resource": "pods", "name": name, "uid": uid}


def test_shared_claim_stays_allocated_while_any_pod_is_reserved() -> None:
    pods = {"a": pod("a", "ua"), "b": pod("b", "ub", phase="Succeeded")}
    plan = plan_claim(claim([ref("a", "ua"), ref("b", "ub"), ref("gone", "ug")]), pods.get)
    assert plan.reserved_for == [ref("a", "ua")]
    assert not plan.deallocate and not plan.remove_finalizer and not plan.delete


def test_unreserved_claim_is_deallocated_and_loses_the_finalizer() -> None:
    replaced = {"a": pod("a", "new-uid")}
    plan = plan_claim(claim([ref("a", "old-uid")]), replaced.get)
    assert plan.reserved_for == [] and plan.deallocate and plan.remove_finalizer and not plan.delete
    untouched = plan_claim(claim([], allocated=False), replaced.get)
    assert untouched.reserved_for is None and not untouched.deallocate and untouched.remove_finalizer


def test_generated_claim_deleted_when_its_pod_is_done_or_gone() -> None:
    alive = {"trainer": pod("trainer", "pod-uid")}
    assert not plan_claim(claim([ref("trainer", "pod-uid")], owner="pod-uid"), alive.get).delete
    done = {"trainer": pod("trainer", "pod-uid", phase="Failed")}
    assert plan_claim(claim([ref("trainer", "pod-uid")], owner="pod-uid"), done.get).delete
    assert plan_claim(claim([], owner="pod-uid"), {}.get).delete
    foreign = [{"apiGroup": "example.com", "resource": "things", "name": "x", "uid": "t"}]
    assert plan_claim(claim(foreign), {}.get).reserved_for is None


# --- the scheduler's DRA step ------------------------------------------------------------------------


def node(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {}},
            "status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}}}


def gpu_claim(name: str, count: int, klass: str = "gpu.nvidia.com") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "d", "uid": name},
            "spec": {"devices": {"requests": [{"name": "r", "exactly": {"deviceClassName": klass, "count": count}}]}}}


def state(claims: list[dict[str, Any]], slices: list[dict[str, Any]], allocated: list[dict[str, Any]] = (),
          **kw: Any) -> PodClaims:
    classes = {c["metadata"]["name"]: c for c in device_classes()}
    to_allocate = [c for c in claims if not (c.get("status") or {}).get("allocation")]
    return PodClaims(pod(), claims, to_allocate, parse_slices(slices), classes,
                     AllocatedState.from_claims(list(allocated)), features_for(version="1.36"), **kw)


def place(s: PodClaims, names: list[str]) -> Any:
    infos = [NodeInfo(node(n)) for n in names]
    return choose_node(PodInfo.of(s.pod), infos, filters=(*DEFAULT_FILTERS, s.filter))


def test_filter_allocates_on_the_node_with_gpus() -> None:
    slices = node_slices("gpu-node", parse_profile("8x H100-80GB"))
    s = state([gpu_claim("c", 2)], slices)
    result = place(s, ["cpu-node", "gpu-node"])
    assert result.node == "gpu-node"
    devices = [r["device"] for r in s.results["gpu-node"][0]["devices"]["results"]]
    assert devices == ["gpu-0", "gpu-1"]


def test_filter_reports_upstream_reason_when_nothing_fits() -> None:
    slices = node_slices("gpu-node", parse_profile("8x H100-80GB"))
    result = place(state([gpu_claim("c", 9)], slices), ["cpu-node", "gpu-node"])
    assert result.node is None
    assert result.message.startswith(f"0/2 nodes are available: 2 {REASON_CANNOT_ALLOCATE}.")


def test_filter_respects_devices_taken_and_shared_counters() -> None:
    slices = node_slices("a100", parse_profile("1x A100-40GB"))
    mig = gpu_claim("mig", 1, "mig.nvidia.com")
    mig["status"] = {"allocation": {"devices": {"results": [
        {"request": "r", "driver": "gpu.nvidia.com", "pool": "a100", "device": "gpu-0-mig-19-0-1"}]}}}
    assert place(state([gpu_claim("full", 1)], slices, [mig]), ["a100"]).node is None
    assert place(state([gpu_claim("full", 1)], slices), ["a100"]).node == "a100"


def test_allocated_claim_must_match_the_node() -> None:
    claim_ = gpu_claim("c", 1)
    claim_["status"] = {"allocation": {"nodeSelector": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}
    result = place(state([claim_], []), ["a", "b"])
    assert result.node == "b"
    assert result.failures["a"].reasons == (REASON_NOT_ON_NODE,)


def test_allocator_errors_are_reported_per_node() -> None:
    def broken(*_: Any) -> AllocationOutcome:
        return AllocationOutcome(error="boom")

    result = place(state([gpu_claim("c", 1)], [], allocate=broken), ["a"])
    assert result.node is None and result.failures["a"].reasons == ("boom",)


def test_resolve_claims_waits_for_generated_and_missing_claims() -> None:
    waiting = resolve_claims(pod(), lambda _: None)
    assert waiting == Wait('pod "d/trainer": ResourceClaim not created yet')
    with_status = pod(resourceClaimStatuses=[{"name": "gpu", "resourceClaimName": "gen"}])
    assert resolve_claims(with_status, lambda _: None) == Wait('resourceclaim.resource.k8s.io "gen" not found')
    foreign = {"metadata": {"name": "gen", "namespace": "d", "ownerReferences": []}}
    assert "pod is not owner" in resolve_claims(with_status, lambda n: foreign).message  # type: ignore[union-attr]
    owned = {"metadata": {"name": "gen", "namespace": "d",
                          "ownerReferences": [{"uid": "pod-uid", "controller": True}]}}
    shared = {"metadata": {"name": "team-claim", "namespace": "d"}}
    claims = resolve_claims(with_status, lambda n: owned if n == "gen" else shared)
    assert claims == [owned, shared]


def test_missing_class_names_the_request() -> None:
    classes = {c["metadata"]["name"]: c for c in device_classes()}
    assert missing_class(gpu_claim("c", 1, "tpu.example.com"), classes) == \
        "request r: device class tpu.example.com does not exist"
    assert missing_class(gpu_claim("c", 1), classes) == ""


def test_created_claims_cover_a_stale_informer_until_it_catches_up() -> None:
    from kplane.controllers.resourceclaim import CreatedClaims
    from kplane.runtime.store import Store

    store = Store()
    created = CreatedClaims()
    claim = {"metadata": {"name": "p-gpu-abc", "namespace": "ns", "annotations": {POD_CLAIM_NAME: "gpu"}}}
    created.add("ns/p", "uid-1", claim)
    owned = created.merged("ns/p", "uid-1", [], store)
    assert owned == [claim]
    assert plan_pod(pod(), owned, templates).create == []  # no second claim for the same pod claim
    assert created.merged("ns/p", "uid-2", [], store) == []  # a new pod of the same name owns nothing yet
    created.add("ns/p", "uid-1", claim)
    store.put(claim)
    assert created.merged("ns/p", "uid-1", [], store) == []  # the informer has it now
    created.add("ns/p", "uid-1", claim)
    created.forget("ns/p")
    assert created.merged("ns/p", "uid-1", [], Store()) == []


def test_template_claims_recorded_reads_dicts_and_models() -> None:
    from lightkube.resources.core_v1 import Pod

    from kplane.controllers.resourceclaim import template_claims_recorded

    spec = {"containers": [{"name": "c"}], "resourceClaims": [
        {"name": "gpu", "resourceClaimTemplateName": "t"}, {"name": "shared", "resourceClaimName": "s"}]}
    pending = {"metadata": {"name": "p"}, "spec": spec}
    recorded = {**pending, "status": {"resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": "p-gpu-x"}]}}
    assert not template_claims_recorded(pending)
    assert template_claims_recorded(recorded)
    assert not template_claims_recorded(Pod.from_dict(pending))
    assert template_claims_recorded(Pod.from_dict(recorded))
    assert template_claims_recorded({"metadata": {"name": "p"}, "spec": {"containers": []}})  # nothing to make


def test_pod_claim_keys_from_dicts_and_models() -> None:
    from lightkube.resources.core_v1 import Pod

    from kplane.controllers.resourceclaim import pod_claim_keys

    data = {"metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c"}], "resourceClaims": [
                {"name": "gpu", "resourceClaimTemplateName": "t"}, {"name": "shared", "resourceClaimName": "s"}]},
            "status": {"resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": "p-gpu-x"}]}}
    assert pod_claim_keys(data) == ["ns/s", "ns/p-gpu-x"]
    assert pod_claim_keys(Pod.from_dict(data)) == ["ns/s", "ns/p-gpu-x"]
    assert pod_claim_keys({"metadata": {"name": "q", "namespace": "ns"}, "spec": {"containers": []}}) == []
