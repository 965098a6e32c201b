"""kro GraphRevisions and CRD update safety on a real ``kplane up``, driven with kubectl.

Mirrors kro's ``test/integration/suites/core/graphrevision_test.go`` ("should keep serving the last good
revision when a later RGD update is invalid") and the breaking-change refusal of ``pkg/client/crd.go``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.harness import KUBECTL, ControlPlane, start_serving_crd

WAIT_S = 60


@pytest.fixture(scope="module")
def kro(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    plane = start_serving_crd(tmp_path_factory.mktemp("kro-revisions"), "graphrevisions.internal.kro.run",
                              "--nodes", "0")
    yield plane
    plane.down()


def apply(plane: ControlPlane, doc: Any) -> None:
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc))


def get(plane: ControlPlane, *args: str) -> Any:
    proc = plane.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def conditions(obj: Any) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def configmap_rgd(name: str, kind: str, *, data: str = "${schema.spec.data}",
                  spec: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "kro.run/v1alpha1", "kind": "ResourceGraphDefinition", "metadata": meta,
            "spec": {"schema": {"apiVersion": "v1alpha1", "kind": kind,
                                "spec": spec or {"data": "string", "extra": "string"}},
                     "resources": [{"id": "cm", "template": {
                         "apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "cm-${schema.metadata.name}"}, "data": {"key": data}}}]}}


def revisions(plane: ControlPlane, rgd: str) -> list[str]:
    listed = get(plane, "graphrevisions", "--field-selector", f"spec.snapshot.name={rgd}") or {"items": []}
    return sorted(i["metadata"]["name"] for i in listed["items"])


def wait_rgd(plane: ControlPlane, name: str, check: Any, what: str) -> dict[str, Any]:
    def probe() -> Any:
        rgd = get(plane, "rgd", name)
        return rgd if rgd is not None and check(rgd) else None
    return dict(plane.wait_for(probe, timeout=WAIT_S, what=what))


def ready(rgd: Any) -> bool:
    return conditions(rgd).get("Ready", {}).get("status") == "True"


def configmap_key(plane: ControlPlane, name: str) -> Any:
    cm = get(plane, "configmap", name, "-n", "default")
    return ((cm or {}).get("data") or {}).get("key")


def test_revision_issued_and_invalid_update_keeps_serving(kro: ControlPlane) -> None:
    apply(kro, configmap_rgd("gv-invalid", "GvInvalid"))
    rgd = wait_rgd(kro, "gv-invalid", ready, "RGD Ready")
    assert rgd["status"]["lastIssuedRevision"] == 1
    resolved = conditions(rgd)["GraphRevisionsResolved"]
    assert (resolved["status"], resolved["reason"]) == ("True", "Resolved")
    assert revisions(kro, "gv-invalid") == ["gv-invalid-r00001"]
    gr = get(kro, "gr", "gv-invalid-r00001")
    assert gr["spec"]["revision"] == 1 and gr["spec"]["snapshot"]["name"] == "gv-invalid"
    assert gr["metadata"]["ownerReferences"][0]["uid"] == rgd["metadata"]["uid"]
    assert conditions(gr)["GraphVerified"]["status"] == "True"

    apply(kro, {"apiVersion": "kro.run/v1alpha1", "kind": "GvInvalid",
                "metadata": {"name": "inst", "namespace": "default"}, "spec": {"data": "hello"}})
    kro.wait_for(lambda: configmap_key(kro, "cm-inst") == "hello", timeout=WAIT_S, what="configmap hello")

    apply(kro, configmap_rgd("gv-invalid", "GvInvalid", data="${schema.spec.missing}"))

    def refused(obj: Any) -> bool:
        conds = conditions(obj)
        return conds.get("GraphAccepted", {}).get("status") == "False" \
            and conds["GraphAccepted"].get("observedGeneration") == obj["metadata"]["generation"]
    rgd = wait_rgd(kro, "gv-invalid", refused, "GraphAccepted False")
    conds = conditions(rgd)
    assert rgd["status"]["state"] == "Inactive" and rgd["status"]["lastIssuedRevision"] == 1
    assert conds["GraphRevisionsResolved"]["status"] == "True"
    assert conds["KindReady"]["status"] == "True" and conds["ControllerReady"]["status"] == "True"
    assert conds["Ready"]["status"] == "False"
    assert revisions(kro, "gv-invalid") == ["gv-invalid-r00001"]

    kro.kubectl("patch", "gvinvalid", "inst", "-n", "default", "--type", "merge", "-p",
                json.dumps({"spec": {"data": "world"}}))
    kro.wait_for(lambda: configmap_key(kro, "cm-inst") == "world", timeout=WAIT_S,
                 what="the last good graph to keep serving")
    kro.kubectl("delete", "gvinvalid", "inst", "-n", "default")
    kro.kubectl("delete", "rgd", "gv-invalid")
    kro.wait_for(lambda: revisions(kro, "gv-invalid") == [], timeout=WAIT_S, what="revisions collected")


def test_breaking_change_is_refused_unless_allowed(kro: ControlPlane) -> None:
    apply(kro, configmap_rgd("breaking", "Breaking"))
    wait_rgd(kro, "breaking", ready, "RGD Ready")
    apply(kro, configmap_rgd("breaking", "Breaking", spec={"data": "string"}))

    def kind_refused(obj: Any) -> bool:
        return conditions(obj).get("KindReady", {}).get("status") == "False"
    rgd = wait_rgd(kro, "breaking", kind_refused, "KindReady False")
    assert conditions(rgd)["KindReady"]["message"] == (
        "cannot update CRD breakings.kro.run: breaking changes detected: Property extra was removed")
    assert conditions(rgd)["Ready"]["status"] == "False"
    crd = get(kro, "crd", "breakings.kro.run")
    assert "extra" in crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]

    apply(kro, configmap_rgd("breaking", "Breaking", spec={"data": "string"},
                             annotations={"kro.run/allow-breaking-changes": "true"}))
    wait_rgd(kro, "breaking", ready, "RGD Ready after allowing breaking changes")
    crd = get(kro, "crd", "breakings.kro.run")
    assert "extra" not in crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    kro.kubectl("delete", "rgd", "breaking")


def test_retention_keeps_five(kro: ControlPlane) -> None:
    for n in range(7):
        apply(kro, configmap_rgd("retained", "Retained", data=f"v{n}-${{schema.spec.data}}"))
        wait_rgd(kro, "retained", lambda r, n=n: ready(r) and r["status"].get("lastIssuedRevision") == n + 1,
                 f"revision {n + 1}")
    kro.wait_for(lambda: revisions(kro, "retained") == [f"retained-r0000{n}" for n in range(3, 8)],
                 timeout=WAIT_S, what="the newest five revisions")
    kro.kubectl("delete", "rgd", "retained")
