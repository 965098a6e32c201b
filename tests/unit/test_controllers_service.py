"""ClusterIP/NodePort allocation and Endpoints building (pure functions)."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lightkube.resources.core_v1 import Pod, Service

from kplane.controllers.endpoints import (
    HEADLESS_LABEL,
    build_subsets,
    desired_endpoints,
    endpoints_differ,
    find_port,
    label_term,
    pod_terms,
    selector_term,
    selects,
    should_be_in_endpoints,
)
from kplane.controllers.ipalloc import (
    IpRange,
    PortRange,
    RangeFull,
    allocate_ip,
    allocate_offset,
    allocate_port,
)
from kplane.controllers.service import (
    EndpointsController,
    ServiceIPController,
    ServiceRanges,
    api_address,
    held_by,
    kubernetes_service,
    plan_allocation,
    spec_selector,
)
from kplane.runtime import SharedInformers
from kplane.runtime.lkutil import model

# --- ranges and allocation ------------------------------------------------------------------------


def test_default_range_and_kubernetes_address() -> None:
    ranges = ServiceRanges()
    assert ranges.ips.first == "10.96.0.1"
    assert ranges.ips.size == 2**20 - 2
    assert ranges.ips.static_band == 256
    assert ranges.ports.size == 2768 and ranges.ports.static_band == 86
    assert kubernetes_service(ranges, 6443)["spec"]["clusterIP"] == "10.96.0.1"


def test_ip_offsets_exclude_network_broadcast_and_foreign_addresses() -> None:
    ips = IpRange.parse("10.0.0.0/29")
    assert ips.size == 6
    assert ips.offset("10.0.0.1") == 0 and ips.offset("10.0.0.6") == 5
    assert ips.offset("10.0.0.0") is None and ips.offset("10.0.0.7") is None
    assert ips.offset("10.0.1.1") is None and ips.offset("not-an-ip") is None and ips.offset("::1") is None
    with pytest.raises(ValueError):
        ips.address(6)


@pytest.mark.parametrize("cidr", ["10.96.0.1/12", "bogus", "10.0.0.0/31"])
def test_bad_cidr(cidr: str) -> None:
    with pytest.raises(ValueError):
        IpRange.parse(cidr)


@pytest.mark.parametrize("text", ["", "5-1", "0-10", "30000-70000", "a-b"])
def test_bad_port_range(text: str) -> None:
    with pytest.raises(ValueError):
        PortRange.parse(text)


def test_allocation_prefers_the_upper_band_then_fills_the_lower() -> None:
    used: set[int] = set()
    for _ in range(10):
        offset = allocate_offset(10, 4, used, "seed")
        assert offset not in used
        if len(used) < 6:
            assert offset >= 4
        used.add(offset)
    assert used == set(range(10))
    with pytest.raises(RangeFull):
        allocate_offset(10, 4, used, "seed")
    with pytest.raises(RangeFull):
        allocate_offset(0, 0, set(), "seed")


def test_allocation_is_reproducible_per_seed() -> None:
    ips = IpRange.parse("10.96.0.0/12")
    assert allocate_ip(ips, set(), "ns/a") == allocate_ip(ips, set(), "ns/a")


def test_small_range_never_hands_out_the_kubernetes_address() -> None:
    ips = IpRange.parse("10.0.0.0/29")
    got = set()
    for i in range(5):
        got.add(allocate_ip(ips, got, f"s{i}"))
    assert "10.0.0.1" not in got and len(got) == 5
    with pytest.raises(RangeFull):
        allocate_ip(ips, got, "one-more")


@given(st.sets(st.integers(30000, 32767), max_size=200), st.text(max_size=8))
def test_port_allocation_never_returns_a_used_port(used: set[int], seed: str) -> None:
    ports = PortRange.parse("30000-32767")
    port = allocate_port(ports, used, seed)
    assert port in ports and port not in used


@given(st.sets(st.integers(0, 300), max_size=100), st.text(max_size=8))
def test_ip_allocation_stays_in_range_and_free(used_offsets: set[int], seed: str) -> None:
    ips = IpRange.parse("10.96.0.0/12")
    used = {ips.address(o) for o in used_offsets}
    ip = allocate_ip(ips, used, seed)
    assert ip not in used and ip != "10.96.0.1"
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12")


# --- planning a Service ---------------------------------------------------------------------------


def svc(name: str = "web", **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80, "protocol": "TCP", "targetPort": 8080}])
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": "5", "labels": {"app": name}},
            "spec": spec}


def test_cluster_ip_is_allocated_with_a_version_guard() -> None:
    plan = plan_allocation(svc(type="ClusterIP"), set(), set(), ServiceRanges(), "ns/web")
    assert plan is not None
    assert plan.patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "5"}
    [ip] = plan.ips
    assert {"op": "add", "path": "/spec/clusterIP", "value": ip} in plan.patch
    assert {"op": "add", "path": "/spec/clusterIPs", "value": [ip]} in plan.patch
    assert not plan.ports


def test_nothing_to_do_for_allocated_headless_and_external_name() -> None:
    ranges = ServiceRanges()
    assert plan_allocation(svc(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"]), set(), set(), ranges, "k") is None
    assert plan_allocation(svc(clusterIP="None", clusterIPs=["None"]), set(), set(), ranges, "k") is None
    assert plan_allocation(svc(type="ExternalName", externalName="a.b"), set(), set(), ranges, "k") is None
    partial = plan_allocation(svc(clusterIP="10.96.0.10"), set(), set(), ranges, "k")
    assert partial is not None and partial.patch[1:] == [
        {"op": "add", "path": "/spec/clusterIPs", "value": ["10.96.0.10"]}]


def test_node_ports_for_node_port_and_load_balancer_types() -> None:
    ranges = ServiceRanges()
    ports = [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP", "nodePort": 30443}]
    plan = plan_allocation(svc(type="NodePort", clusterIP="10.96.0.9", clusterIPs=["10.96.0.9"], ports=ports),
                           set(), {30443}, ranges, "ns/np")
    assert plan is not None and len(plan.ports) == 1
    [port] = plan.ports
    assert port in ranges.ports and port != 30443
    assert plan.patch[1:] == [{"op": "add", "path": "/spec/ports/0/nodePort", "value": port}]
    lb = plan_allocation(svc(type="LoadBalancer", externalTrafficPolicy="Local"), set(), set(), ranges, "ns/lb")
    assert lb is not None and len(lb.ports) == 2
    assert any(op["path"] == "/spec/healthCheckNodePort" for op in lb.patch)
    no_np = plan_allocation(svc(type="LoadBalancer", allocateLoadBalancerNodePorts=False), set(), set(), ranges, "k")
    assert no_np is not None and not no_np.ports


def test_two_ports_of_one_service_get_different_node_ports() -> None:
    ports = [{"port": p, "protocol": "TCP"} for p in (80, 81, 82)]
    plan = plan_allocation(svc(type="NodePort", ports=ports), set(), set(), ServiceRanges(), "ns/x")
    assert plan is not None and len(plan.ports) == 3


def test_held_by_collects_ips_and_ports() -> None:
    service = svc(type="LoadBalancer", clusterIP="10.96.0.9", clusterIPs=["10.96.0.9"], healthCheckNodePort=31000,
                  ports=[{"port": 80, "nodePort": 30080}])
    assert held_by(service) == ({"10.96.0.9"}, {30080, 31000})
    assert held_by(svc(clusterIP="None")) == (set(), set())


def test_api_address() -> None:
    assert api_address("https://127.0.0.1:6443") == ("127.0.0.1", 6443)
    assert api_address("https://localhost") == (None, 443)
    assert api_address("https://[::1]:8443") == ("::1", 8443)


# --- endpoints --------------------------------------------------------------------------------------


def pod(name: str, ip: str | None = "10.244.0.2", *, ready: bool = True, labels: dict[str, str] | None = None,
        phase: str = "Running", restart: str = "Always", deleting: bool = False,
        ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": labels or {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    status: dict[str, Any] = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": meta, "status": status,
            "spec": {"restartPolicy": restart, "nodeName": "node-0",
                     "containers": [{"name": "c", "ports": ports or []}], **spec}}


def test_ready_and_not_ready_addresses_with_target_refs() -> None:
    service = svc(selector={"app": "web"})
    subsets = build_subsets(service, [pod("b", "10.244.0.10"), pod("a", "10.244.0.9"),
                                      pod("c", "10.244.0.3", ready=False)])
    assert subsets == [{
        "addresses": [
            {"ip": "10.244.0.9", "nodeName": "node-0",
             "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"}},
            {"ip": "10.244.0.10", "nodeName": "node-0",
             "targetRef": {"kind": "Pod", "namespace": "ns", "name": "b", "uid": "uid-b"}},
        ],
        "notReadyAddresses": [{"ip": "10.244.0.3", "nodeName": "node-0",
                               "targetRef": {"kind": "Pod", "namespace": "ns", "name": "c", "uid": "uid-c"}}],
        "ports": [{"port": 8080, "protocol": "TCP"}],
    }]


def test_pods_left_out() -> None:
    assert not should_be_in_endpoints(pod("a", None), False)
    assert not should_be_in_endpoints(pod("a", deleting=True), False)
    assert should_be_in_endpoints(pod("a", deleting=True), True)
    assert not should_be_in_endpoints(pod("a", phase="Succeeded", restart="Never"), False)
    assert not should_be_in_endpoints(pod("a", phase="Failed", restart="Never"), False)
    assert should_be_in_endpoints(pod("a", phase="Failed", restart="OnFailure"), False)
    assert not should_be_in_endpoints(pod("a", phase="Succeeded", restart="OnFailure"), False)
    assert build_subsets(svc(selector={"app": "web"}), [pod("a", None)]) == []


def test_publish_not_ready_addresses_puts_everyone_in_addresses() -> None:
    subsets = build_subsets(svc(selector={"app": "web"}, publishNotReadyAddresses=True), [pod("a", ready=False)])
    assert len(subsets[0]["addresses"]) == 1 and "notReadyAddresses" not in subsets[0]


def test_named_target_ports_group_pods_by_resolved_port() -> None:
    service = svc(selector={"app": "web"},
                  ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"}])
    pods = [pod("a", "10.0.0.1", ports=[{"name": "web", "containerPort": 8080}]),
            pod("b", "10.0.0.2", ports=[{"name": "web", "containerPort": 9090}]),
            pod("c", "10.0.0.3", ports=[{"name": "web", "containerPort": 8080, "protocol": "UDP"}])]
    subsets = build_subsets(service, pods)
    assert [(s["ports"][0]["port"], [a["ip"] for a in s["addresses"]]) for s in subsets] == [
        (8080, ["10.0.0.1"]), (9090, ["10.0.0.2"])]
    assert subsets[0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]


def test_find_port() -> None:
    p = pod("a", ports=[{"name": "web", "containerPort": 8080}])
    assert find_port(p, {"port": 80, "targetPort": 81}) == 81
    assert find_port(p, {"port": 80}) == 80
    assert find_port(p, {"port": 80, "targetPort": "82"}) == 82
    assert find_port(p, {"port": 80, "targetPort": "web"}) == 8080
    assert find_port(p, {"port": 80, "targetPort": "nope"}) is None


def test_headless_without_ports_lists_addresses_only() -> None:
    service = svc(selector={"app": "web"}, clusterIP="None", ports=[])
    assert build_subsets(service, [pod("a", "10.0.0.1")]) == [{"addresses": [
        {"ip": "10.0.0.1", "nodeName": "node-0", "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a",
                                                                "uid": "uid-a"}}]}]
    assert desired_endpoints(service, [])["metadata"]["labels"][HEADLESS_LABEL] == ""


def test_hostname_only_for_the_matching_subdomain() -> None:
    service = svc(selector={"app": "web"})
    named = pod("a", hostname="a", subdomain="web")
    other = pod("b", "10.0.0.5", hostname="b", subdomain="other")
    addresses = build_subsets(service, [named, other])[0]["addresses"]
    assert {a["targetRef"]["name"]: a.get("hostname") for a in addresses} == {"a": "a", "b": None}


def test_desired_endpoints_and_diff() -> None:
    service = svc(selector={"app": "web"})
    empty = desired_endpoints(service, [])
    assert empty == {"apiVersion": "v1", "kind": "Endpoints",
                     "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}}}
    full = desired_endpoints(service, [pod("a")])
    assert endpoints_differ(empty, full)
    assert not endpoints_differ({**full, "metadata": {**full["metadata"], "resourceVersion": "9"}}, full)
    assert selects({"app": "web"}, {"app": "web", "x": "y"}) and not selects({"app": "web"}, None)


# --- the controllers' caches and indices ------------------------------------------------------------


class FakeClient:
    """Records writes; the controllers never reach the network in these tests."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, Any]] = []

    async def create(self, obj: Any) -> None:
        self.writes.append(("create", obj))

    async def replace(self, obj: Any) -> None:
        self.writes.append(("replace", obj))

    async def delete(self, *args: Any, **kwargs: Any) -> None:
        self.writes.append(("delete", args))


def endpoints_controller() -> tuple[EndpointsController, FakeClient]:
    client = FakeClient()
    return EndpointsController(client, informers=SharedInformers(client)), client  # type: ignore[arg-type]


def service_model(name: str, namespace: str = "ns", **spec: Any) -> Any:
    data = svc(name, **spec)
    data["metadata"]["namespace"] = namespace
    return model(Service, data)


def pod_model(name: str, namespace: str = "ns", **kwargs: Any) -> Any:
    data = pod(name, **kwargs)
    data["metadata"]["namespace"] = namespace
    return model(Pod, data)


def test_index_terms() -> None:
    assert selector_term("ns", {"tier": "web", "app": "a"}) == [label_term("ns", "app", "a")]
    assert selector_term("ns", {}) == [] and selector_term("ns", None) == []
    assert pod_terms("ns", {"app": "a", "x": "y"}) == [label_term("ns", "app", "a"), label_term("ns", "x", "y")]
    assert pod_terms("ns", None) == []
    assert label_term("a", "b", "c") != label_term("b", "a", "c")
    assert spec_selector(service_model("s", selector={"app": "a"})) == {"app": "a"}
    assert spec_selector(service_model("s")) is None and spec_selector(svc(selector={})) is None


def test_pod_events_map_to_the_services_selecting_them() -> None:
    ctl, _ = endpoints_controller()
    services = ctl.controller.informer.store
    services.put(service_model("broad", selector={"app": "a"}))
    services.put(service_model("narrow", selector={"app": "a", "tier": "web"}))
    services.put(service_model("other", selector={"app": "b"}))
    services.put(service_model("manual"))
    services.put(service_model("elsewhere", namespace="ns2", selector={"app": "a"}))
    assert ctl.services_selecting(pod_model("p", labels={"app": "a", "tier": "web"})) == ["ns/broad", "ns/narrow"]
    assert ctl.services_selecting(pod_model("p", labels={"app": "a", "tier": "db"})) == ["ns/broad"]
    assert ctl.services_selecting(pod_model("p", labels={"tier": "web"})) == []
    assert ctl.services_selecting(pod_model("p", namespace="ns2", labels={"app": "a"})) == ["ns2/elsewhere"]
    # a changed selector moves the Service in the index; a deleted one leaves it
    services.put(service_model("broad", selector={"app": "b"}))
    services.delete("ns/narrow")
    assert ctl.services_selecting(pod_model("p", labels={"app": "a", "tier": "web"})) == []
    assert ctl.services_selecting(pod_model("p", labels={"app": "b"})) == ["ns/broad", "ns/other"]


def test_reconcile_reads_only_matching_pods_and_converts_each_version_once() -> None:
    ctl, _ = endpoints_controller()
    pods = ctl.pods.store
    first = pod_model("a", ip="10.244.0.2", labels={"app": "web", "tier": "x"})
    pods.put(first)
    pods.put(pod_model("b", ip="10.244.0.3", labels={"app": "web"}))
    pods.put(pod_model("c", ip="10.244.0.4", labels={"app": "db", "tier": "x"}))
    pods.put(pod_model("d", namespace="ns2", labels={"app": "web", "tier": "x"}))
    selected = ctl.pods_selected("ns", {"app": "web", "tier": "x"})
    assert [p["metadata"]["name"] for p in selected] == ["a"]
    assert ctl.pods_selected("ns", {"app": "web", "tier": "x"})[0] is selected[0]
    assert [p["metadata"]["name"] for p in ctl.pods_selected("ns", {"app": "web"})] == ["a", "b"]
    pods.put(pod_model("a", ip="10.244.0.9", labels={"app": "web", "tier": "x"}))
    [updated] = ctl.pods_selected("ns", {"app": "web", "tier": "x"})
    assert updated is not selected[0] and updated["status"]["podIP"] == "10.244.0.9"
    pods.delete("ns/a")
    ctl._forget_pod(first)
    assert ctl.pods_selected("ns", {"app": "web", "tier": "x"}) == [] and "ns/a" not in ctl._pod_dicts
    assert ctl.pods_selected("ns", {"app": "nothing"}) == []


def test_reconcile_writes_only_when_the_endpoints_change() -> None:
    ctl, client = endpoints_controller()
    ctl.controller.informer.store.put(service_model("web", selector={"app": "web"}))
    ctl.pods.store.put(pod_model("a", labels={"app": "web"}))
    ctl.pods.store.put(pod_model("z", ip="10.244.0.7", labels={"app": "other"}))
    asyncio.run(ctl.reconcile("ns/web"))
    [(verb, created)] = client.writes
    assert verb == "create"
    assert [a["ip"] for a in created.to_dict()["subsets"][0]["addresses"]] == ["10.244.0.2"]
    created.metadata.resourceVersion = "7"
    ctl.endpoints.store.put(created)
    asyncio.run(ctl.reconcile("ns/web"))
    assert len(client.writes) == 1
    ctl.pods.store.put(pod_model("a", labels={"app": "web"}, ready=False))
    asyncio.run(ctl.reconcile("ns/web"))
    verb, replaced = client.writes[-1]
    assert verb == "replace" and replaced.metadata.resourceVersion == "7"
    assert "addresses" not in replaced.to_dict()["subsets"][0]


def test_service_ip_in_use_follows_changes_to_cached_services() -> None:
    client = FakeClient()
    ctl = ServiceIPController(client, informers=SharedInformers(client))  # type: ignore[arg-type]
    store = ctl.controller.informer.store
    store.put(service_model("a", clusterIP="10.96.0.10"))
    store.put(service_model("b", clusterIP="10.96.0.11", type="NodePort",
                            ports=[{"port": 80, "protocol": "TCP", "nodePort": 30001}]))
    assert ctl.in_use(exclude="ns/a") == ({"10.96.0.11"}, {30001})
    assert ctl.in_use(exclude="") == ({"10.96.0.10", "10.96.0.11"}, {30001})
    store.put(service_model("a", clusterIP="10.96.0.12"))
    store.delete("ns/b")
    assert ctl.in_use(exclude="") == ({"10.96.0.12"}, set())
