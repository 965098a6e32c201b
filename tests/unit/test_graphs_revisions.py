"""GraphRevisions: spec hash, naming, retention, conditions, and the RGD controller's issue/serve decisions
(driven with an in-memory stand-in for the API client)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

from lightkube.core.exceptions import ApiError

from kplane.graphs import conditions as cond
from kplane.graphs import revisions as rev
from kplane.graphs.controller import RgdController, rgd_status
from kplane.graphs.graph import build_graph
from kplane.graphs.kinds import Kinds
from kplane.graphs.rgdcrd import graph_revision_crd

CM = {"apiVersion": "v1", "kind": "ConfigMap"}


def rgd(data: str = "${schema.spec.data}", generation: int = 1) -> dict[str, Any]:
    return {"apiVersion": "kro.run/v1alpha1", "kind": "ResourceGraphDefinition",
            "metadata": {"name": "demo", "uid": "uid-1", "generation": generation, "resourceVersion": "1"},
            "spec": {"schema": {"apiVersion": "v1alpha1", "kind": "Demo", "spec": {"data": "string"}},
                     "resources": [{"id": "cm", "template": {**CM, "metadata": {"name": "cm-${schema.metadata.name}"},
                                                             "data": {"key": data}}}]}}


def test_spec_hash_ignores_order_and_server_defaults() -> None:
    spec: dict[str, Any] = {"schema": {"apiVersion": "v1alpha1", "kind": "Demo"},
                            "resources": [{"id": "b", "readyWhen": ["${y}", "${x}"]},
                                          {"id": "a", "includeWhen": ["${q}", "${p}"]}]}
    reordered = {"resources": [{"id": "a", "includeWhen": ["${p}", "${q}"]},
                               {"readyWhen": ["${x}", "${y}"], "id": "b"}],
                 "schema": {"kind": "Demo", "apiVersion": "v1alpha1", "group": "kro.run", "scope": "Namespaced",
                            "additionalPrinterColumns": []}}
    assert rev.spec_hash(spec) == rev.spec_hash(reordered)
    assert len(rev.spec_hash(spec)) == 16 and int(rev.spec_hash(spec), 16) >= 0
    changed = copy.deepcopy(spec)
    changed["schema"]["scope"] = "Cluster"
    assert rev.spec_hash(changed) != rev.spec_hash(spec)
    collection = {"resources": [{"id": "a", "forEach": [{"x": "${a}"}, {"y": "${b}"}]}]}
    swapped = {"resources": [{"id": "a", "forEach": [{"y": "${b}"}, {"x": "${a}"}]}]}
    assert rev.spec_hash(collection) != rev.spec_hash(swapped), "forEach order is meaningful"
    assert rev.spec_hash({}) == rev.spec_hash({"resources": None})
    assert spec["resources"][0]["readyWhen"] == ["${y}", "${x}"], "the input is not changed"


def test_fnv_matches_known_vectors() -> None:
    assert rev._fnv1a(b"", rev._FNV64_OFFSET, rev._FNV64_PRIME, 64) == 0xCBF29CE484222325
    assert rev._fnv1a(b"a", rev._FNV64_OFFSET, rev._FNV64_PRIME, 64) == 0xAF63DC4C8601EC8C
    assert rev._fnv1a(b"a", rev._FNV32_OFFSET, rev._FNV32_PRIME, 32) == 0xE40C292C


def test_revision_names() -> None:
    assert rev.revision_name("webapp", 1) == "webapp-r00001"
    assert rev.revision_name("webapp", 123456) == "webapp-r123456"
    long = "a" * 250
    name = rev.revision_name(long, 7)
    assert len(name) == 253 and "-r00007-" in name
    assert name != rev.revision_name("a" * 249 + "b", 7), "the hash of the whole name keeps them apart"
    dotted = "a" * 237 + "." + "b" * 20
    assert not rev.revision_name(dotted, 1).split("-r00001")[0].endswith(".")
    assert rev.revision_name("." * 300, 1).startswith("gr-r00001-")


def test_graph_revision_object() -> None:
    gr = rev.graph_revision(rgd(generation=3), 2, "abc")
    assert gr["apiVersion"] == "internal.kro.run/v1alpha1" and gr["kind"] == "GraphRevision"
    assert gr["metadata"]["name"] == "demo-r00002"
    assert gr["metadata"]["labels"][rev.HASH_LABEL] == "abc"
    assert gr["metadata"]["labels"]["kro.run/resource-graph-definition-name"] == "demo"
    assert gr["metadata"]["ownerReferences"] == [rev.owner_reference("demo", "uid-1")]
    assert gr["spec"] == {"revision": 2, "snapshot": {"name": "demo", "generation": 3, "spec": rgd()["spec"]}}
    assert rev.revision_of(gr) == 2 and rev.revision_of({}) == 0 and rev.revision_of({"spec": {"revision": "2"}}) == 0
    assert rev.snapshot_rgd(gr, {**rgd(), "spec": {}})["spec"] == rgd()["spec"]


def test_live_adoption_and_retention() -> None:
    grs = [rev.graph_revision(rgd(), n, "h") for n in (3, 1, 2)]
    grs[1]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    other = rev.graph_revision({**rgd(), "metadata": {"name": "other"}}, 9, "h")
    live, terminating = rev.split_live([*grs, other], "demo")
    assert [rev.revision_of(g) for g in live] == [2, 3] and terminating
    assert rev.split_live(grs[:1], "demo") == ([grs[0]], False)
    assert rev.is_owned_by(grs[0], "uid-1") and not rev.is_owned_by(grs[0], "uid-2")
    stale = rev.adopted_owners(grs[0], "demo", "uid-2")
    assert stale == [rev.owner_reference("demo", "uid-2")]
    foreign = {"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "uid": "x"}]}}
    assert rev.adopted_owners(foreign, "demo", "uid-2")[-1] == rev.owner_reference("demo", "uid-2")
    assert rev.next_revision(None, 0) == 1 and rev.next_revision(7, 3) == 8 and rev.next_revision(2, 5) == 6
    assert rev.next_revision("bad", 0) == 1
    many = [rev.graph_revision(rgd(), n, "h") for n in range(1, 8)]
    assert rev.to_prune(many, 5) == ["demo-r00001", "demo-r00002"]
    assert rev.to_prune(many, 7) == [] and rev.to_prune(many, 0) == [] and rev.to_prune([], 5) == []


def test_ready_over_four_conditions() -> None:
    parts = [rev.resolved(1), cond.accepted(), cond.kind_ready("Demo"), cond.controller_running()]
    assert rev.with_ready(parts)[-1] == cond.Condition("Ready", "True", "Ready", "")
    assert rev.with_ready(parts[1:])[-1].status == "Unknown", "a missing part is awaiting reconciliation"
    invalid = [rev.awaiting(rev.GRAPH_REVISIONS_RESOLVED), cond.invalid("boom")]
    assert rev.with_ready(invalid)[-1] == cond.Condition("Ready", "False", "InvalidResourceGraph", "boom"), \
        "False trumps Unknown"
    filled = rev.complete([cond.invalid("boom")])
    assert [c.type for c in filled] == list(rev.RGD_READY_PARTS)
    assert filled[0].message == 'condition "GraphRevisionsResolved" is awaiting reconciliation'
    status = rgd_status(None, filled, None, generation=4, last_issued=2)
    assert status["lastIssuedRevision"] == 2 and status["state"] == cond.INACTIVE
    assert {c["observedGeneration"] for c in status["conditions"]} == {4}
    assert rgd_status(None, filled, status)["lastIssuedRevision"] == 2, "kept when not given"
    assert rev.compiling(3).reason == "WaitingForGraphRevisionCompilation"
    assert rev.unresolved(rev.compile_failed(3)).message == "latest graph revision 3 failed compilation"


def test_revision_status_and_registry() -> None:
    graph = build_graph(rgd())
    ok = rev.revision_status(rev.Entry(1, "h", graph), None, 1, "now")
    assert [(c["type"], c["status"], c["reason"]) for c in ok["conditions"]] == [
        ("GraphVerified", "True", "Verified"), ("Ready", "True", "Ready")]
    assert ok["topologicalOrder"] == ["cm"] and "resources" not in ok
    bad = rev.revision_status(rev.Entry(2, "h", None, "no good"), {}, None, "now")
    assert bad["conditions"][0]["reason"] == "InvalidGraph" and bad["conditions"][-1]["status"] == "False"
    registry = rev.RevisionRegistry()
    registry.put("demo", rev.Entry(1, "h", graph))
    registry.put("demo", rev.Entry(2, "h", None, "x"))
    assert registry.revisions("demo") == [1, 2] and registry.get("demo", 2) is not None
    registry.retain("demo", [2])
    assert registry.revisions("demo") == [2] and registry.get("demo", 1) is None
    registry.retain("demo", [])
    registry.retain("missing", [])
    assert registry.revisions("demo") == []


def test_graph_revision_crd_shape() -> None:
    crd = graph_revision_crd()
    version = crd["spec"]["versions"][0]
    assert crd["metadata"]["name"] == "graphrevisions.internal.kro.run" and crd["spec"]["scope"] == "Cluster"
    assert version["selectableFields"] == [{"jsonPath": ".spec.snapshot.name"}]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["x-kubernetes-validations"] == [{"rule": "self == oldSelf", "message": "spec is immutable"}]
    assert spec["properties"]["snapshot"]["properties"]["spec"]["required"] == ["schema"]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["RGD", "REVISION", "HASH", "READY", "AGE"]


class FakeApi:
    """Just enough of lightkube's AsyncClient for the RGD controller's revision handling."""

    def __init__(self) -> None:
        self.revisions: dict[str, dict[str, Any]] = {}
        self.rgd_status: dict[str, Any] = {}
        self.fail_create = False

    async def _iterate(self, items: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        for item in items:
            yield copy.deepcopy(item)

    def list(self, resource: Any, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        name = kwargs["fields"][rev.SNAPSHOT_NAME_FIELD]
        return self._iterate([g for g in self.revisions.values() if g["spec"]["snapshot"]["name"] == name])

    async def create(self, obj: Any) -> dict[str, Any]:
        if self.fail_create:
            raise ApiError(response=_Response(409, "already exists"))  # type: ignore[arg-type]
        created = copy.deepcopy(dict(obj))
        created["metadata"]["generation"] = 1
        self.revisions[created["metadata"]["name"]] = created
        return created

    async def patch(self, resource: Any, name: str, body: Any, **kwargs: Any) -> dict[str, Any]:
        if getattr(resource, "_api_info", None) is not None and resource._api_info.resource.kind == "GraphRevision" \
                and name in self.revisions:
            gr = self.revisions[name]
            if "status" in body:
                gr["status"] = {**gr.get("status", {}), **body["status"]}
            else:
                gr["metadata"].update(body["metadata"])
            return gr
        self.rgd_status = {**self.rgd_status, **body.get("status", {})}
        return {}

    async def delete(self, resource: Any, name: str, **kwargs: Any) -> None:
        self.revisions.pop(name, None)


class _Response:
    def __init__(self, code: int, message: str) -> None:
        self.status_code = code
        self._message = message

    def json(self) -> dict[str, Any]:
        return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": self.status_code,
                "message": self._message}


def controller(api: FakeApi, keep: int = 5) -> RgdController:
    ctl = RgdController.__new__(RgdController)
    ctl.client = api  # type: ignore[assignment]
    ctl.kinds = Kinds(36, list)
    ctl.kube_minor = 36
    ctl.registry = rev.RevisionRegistry()
    ctl.max_graph_revisions = keep
    return ctl


async def resolve(ctl: RgdController, obj: dict[str, Any]) -> Any:
    live, _ = rev.split_live(await ctl._list_revisions("demo"), "demo")
    return await ctl._resolve(obj, live, [])


async def test_issue_once_then_serve_the_same_revision() -> None:
    api = FakeApi()
    ctl = controller(api)
    graph, resolved, issued = await resolve(ctl, rgd())
    assert (resolved, issued) == (rev.resolved(1), 1) and list(api.revisions) == ["demo-r00001"]
    assert api.revisions["demo-r00001"]["status"]["conditions"][0]["type"] == "GraphVerified"
    again = await resolve(ctl, rgd())
    assert again[0] is graph and list(api.revisions) == ["demo-r00001"], "the same spec issues nothing"


async def test_invalid_update_keeps_the_last_good_revision() -> None:
    api = FakeApi()
    ctl = controller(api)
    graph, _, _ = await resolve(ctl, rgd())
    assert await resolve(ctl, rgd("${schema.spec.nope}", generation=2)) is None
    assert list(api.revisions) == ["demo-r00001"], "nothing is issued for an invalid spec"
    by_type = {c["type"]: c for c in api.rgd_status["conditions"]}
    assert by_type["GraphAccepted"]["status"] == "False"
    assert by_type["GraphRevisionsResolved"]["status"] == "True"
    assert by_type["GraphRevisionsResolved"]["message"] == "revision 1 compiled and active"
    assert by_type["Ready"]["status"] == "False" and by_type["Ready"]["observedGeneration"] == 2
    assert api.rgd_status["lastIssuedRevision"] == 1
    fixed, _, issued = await resolve(ctl, rgd("fixed-${schema.spec.data}", generation=3))
    assert issued == 2 and fixed is not graph and sorted(api.revisions) == ["demo-r00001", "demo-r00002"]


async def test_first_spec_invalid_issues_nothing() -> None:
    api = FakeApi()
    assert await resolve(controller(api), rgd("${nope.x}")) is None
    assert api.revisions == {}
    by_type = {c["type"]: c for c in api.rgd_status["conditions"]}
    assert by_type["GraphRevisionsResolved"]["reason"] == "AwaitingReconciliation"
    assert by_type["Ready"]["status"] == "False" and "lastIssuedRevision" not in api.rgd_status


async def test_restart_compiles_revisions_and_reports_a_broken_one() -> None:
    api = FakeApi()
    await resolve(controller(api), rgd())
    fresh = controller(api)
    graph, _, issued = await resolve(fresh, rgd())
    assert issued == 1 and graph.kind == "Demo", "warmed from the stored snapshot, not re-issued"
    broken = rev.graph_revision(rgd("${nope.x}"), 2, rev.spec_hash(rgd("${nope.x}")["spec"]))
    api.revisions[broken["metadata"]["name"]] = broken
    assert await resolve(controller(api), rgd("${nope.x}")) is None
    by_type = {c["type"]: c for c in api.rgd_status["conditions"]}
    assert by_type["GraphRevisionsResolved"] == {**by_type["GraphRevisionsResolved"], "status": "False",
                                                 "reason": "Failed",
                                                 "message": "latest graph revision 2 failed compilation"}
    assert by_type["GraphAccepted"]["message"] == "latest graph revision 2 failed compilation"
    assert api.revisions["demo-r00002"]["status"]["conditions"][0]["reason"] == "InvalidGraph"


async def test_numbers_are_not_reused_and_create_failures_are_reported() -> None:
    api = FakeApi()
    ctl = controller(api)
    issued = await ctl._resolve({**rgd(), "status": {"lastIssuedRevision": 7}}, [], [])
    assert isinstance(issued, tuple) and issued[2] == 8 and list(api.revisions) == ["demo-r00008"]
    api.fail_create = True
    result = await resolve(ctl, rgd("other-${schema.spec.data}"))
    assert result is not None and result.requeue
    accepted = {c["type"]: c for c in api.rgd_status["conditions"]}["GraphAccepted"]
    assert accepted["message"] == "creating graph revision 'demo-r00009': already exists"


async def test_retention_and_adoption() -> None:
    api = FakeApi()
    ctl = controller(api, keep=2)
    for n in range(4):
        await resolve(ctl, rgd(f"v{n}-${{schema.spec.data}}"))
    await ctl._prune_revisions("demo")
    assert sorted(api.revisions) == ["demo-r00003", "demo-r00004"]
    assert ctl.registry.revisions("demo") == [3, 4]
    live, _ = rev.split_live(await ctl._list_revisions("demo"), "demo")
    await ctl._adopt(live, "demo", "uid-new")
    assert all(rev.is_owned_by(g, "uid-new") for g in api.revisions.values())
