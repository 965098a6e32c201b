"""kubectl 1.32 against a real ``kplane up`` over HTTPS, on a CustomResourceDefinition.

The module's CRD ``widgets.e2e.kplane.dev`` has status and scale subresources, printer columns, defaults, a
CEL rule and a transition rule, and two versions (v1 stored, v2 served; conversion ``None``). Tests share
the server and the namespace, each with names of its own. Error texts are kubectl's renderings of upstream
``Status`` errors (k8s.io/kubectl/pkg/cmd/util/helpers.go).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.e2e.harness import Background, ControlPlane, unique

GROUP = "e2e.kplane.dev"
def widget_schema() -> dict[str, Any]:
    return {"openAPIV3Schema": {
        "type": "object",
        "description": "A Widget is a thing the e2e suite makes.",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.replicas <= 10", "message": "replicas must be at most 10"},
                    {"rule": "self.color == oldSelf.color", "message": "color is immutable"},
                ],
                "properties": {
                    "replicas": {"type": "integer", "minimum": 0, "default": 1,
                                 "description": "How many widgets to keep."},
                    "color": {"type": "string", "default": "blue", "enum": ["blue", "red", "green"]},
                    "size": {"type": "string", "default": "small"},
                },
            },
            "status": {
                "type": "object",
                "properties": {
                    "replicas": {"type": "integer"},
                    "selector": {"type": "string"},
                    "conditions": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["type"],
                        "items": {"type": "object", "required": ["type", "status"], "properties": {
                            "type": {"type": "string"}, "status": {"type": "string"},
                            "reason": {"type": "string"}, "message": {"type": "string"},
                            "lastTransitionTime": {"type": "string", "format": "date-time"}}},
                    },
                },
            },
        },
    }}


def crd_manifest(plural: str, kind: str, short: str, versions: tuple[str, ...] = ("v1", "v2")) -> str:
    columns = [
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Size", "type": "string", "jsonPath": ".spec.size", "priority": 1},
    ]
    return yaml.safe_dump({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "shortNames": [short],
                      "categories": ["e2e"]},
            "conversion": {"strategy": "None"},
            "versions": [{
                "name": version, "served": True, "storage": index == 0, "schema": widget_schema(),
                "additionalPrinterColumns": columns,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                         "statusReplicasPath": ".status.replicas",
                                                         "labelSelectorPath": ".status.selector"}},
            } for index, version in enumerate(versions)],
        },
    })


def widget(name: str, namespace: str, spec: dict[str, Any] | None = None, version: str = "v1",
           **meta: Any) -> str:
    return yaml.safe_dump({"apiVersion": f"{GROUP}/{version}", "kind": "Widget",
                           "metadata": {"name": name, "namespace": namespace, **meta}, "spec": spec or {}})


def resource_names(plane: ControlPlane) -> list[str]:
    return plane.kubectl("api-resources", "-o", "name").stdout.split()


@pytest.fixture(scope="module")
def ns(plane: ControlPlane) -> str:
    plane.kubectl("create", "namespace", "kubectl-crd")
    plane.kubectl("apply", "-f", "-", stdin=crd_manifest("widgets", "Widget", "wdg"))
    plane.wait_for(lambda: f"widgets.{GROUP}" in resource_names(plane), timeout=10, what="widgets served")
    return "kubectl-crd"


def get(plane: ControlPlane, ns: str, *args: str) -> Any:
    return plane.kubectl_json("get", "-n", ns, *args)


def absent(plane: ControlPlane, ns: str, name: str) -> bool:
    proc = plane.kubectl("get", "-n", ns, "widget", name, check=False)
    return proc.returncode != 0 and f'widgets.{GROUP} "{name}" not found' in proc.stderr


def set_condition(plane: ControlPlane, ns: str, name: str, status: str) -> None:
    body = {"status": {"conditions": [{"type": "Ready", "status": status, "reason": "E2E",
                                       "lastTransitionTime": "2025-01-01T00:00:00Z"}]}}
    plane.kubectl("patch", "widget", name, "-n", ns, "--subresource=status", "--type=merge", "-p", json.dumps(body))


# --- CRD lifecycle --------------------------------------------------------------------------------------


def test_new_crd_is_served_and_deleting_it_deletes_objects(plane: ControlPlane, ns: str) -> None:
    assert "gadgets" not in resource_names(plane)
    plane.kubectl("create", "-f", "-", stdin=crd_manifest("gadgets", "Gadget", "gdg", versions=("v1",)))
    # Registration is asynchronous (a watch on CRDs), upstream as here: poll briefly.
    plane.wait_for(lambda: f"gadgets.{GROUP}" in resource_names(plane), timeout=5, interval=0.1,
                   what="gadgets in api-resources")
    crd = plane.kubectl_json("get", "crd", f"gadgets.{GROUP}")
    established = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert established == {"NamesAccepted": "True", "Established": "True"}
    gadget = yaml.safe_load(widget("g1", ns))
    gadget["kind"] = "Gadget"
    plane.kubectl("create", "-f", "-", stdin=yaml.safe_dump(gadget))
    assert plane.kubectl("get", "gadgets", "-n", ns, "-o", "name").stdout.split() == [f"gadget.{GROUP}/g1"]
    assert plane.kubectl("get", "e2e", "-n", ns, "-o", "name").returncode == 0  # the category resolves
    plane.kubectl("delete", "crd", f"gadgets.{GROUP}", "--timeout=30s")
    plane.wait_for(lambda: f"gadgets.{GROUP}" not in resource_names(plane), timeout=5, what="gadgets gone")
    plane.kubectl("create", "-f", "-", stdin=crd_manifest("gadgets", "Gadget", "gdg", versions=("v1",)))
    plane.wait_for(lambda: f"gadgets.{GROUP}" in resource_names(plane), timeout=5, what="gadgets back")
    assert plane.kubectl_json("get", "gadgets", "-n", ns)["items"] == []  # g1 did not survive
    plane.kubectl("delete", "crd", f"gadgets.{GROUP}", "--timeout=30s")


def test_api_resources_and_explain(plane: ControlPlane, ns: str) -> None:
    rows = {line.split()[0]: line.split() for line in plane.kubectl("api-resources").stdout.splitlines()[1:]}
    # The preferred version is the highest by Kubernetes version order, not the storage version.
    assert rows["widgets"] == ["widgets", "wdg", f"{GROUP}/v2", "true", "Widget"]
    out = plane.kubectl("explain", "widgets.spec.replicas").stdout
    assert f"GROUP:      {GROUP}" in out
    assert "FIELD: replicas <integer>" in out
    assert "How many widgets to keep." in out
    top = plane.kubectl("explain", "widgets").stdout
    assert "A Widget is a thing the e2e suite makes." in top
    v1 = plane.kubectl("explain", "widgets.spec", f"--api-version={GROUP}/v1").stdout
    assert "VERSION:    v1" in v1
    assert "color\t<string>" in v1
    assert "enum: blue, red, green" in v1


# --- apply and create -----------------------------------------------------------------------------------


def test_apply_client_side_with_defaults(plane: ControlPlane, ns: str) -> None:
    name = unique("csa")
    manifest = widget(name, ns, {"replicas": 2})
    assert plane.kubectl("apply", "-f", "-", stdin=manifest).stdout.strip() == f"widget.{GROUP}/{name} created"
    assert plane.kubectl("apply", "-f", "-", stdin=manifest).stdout.strip() == f"widget.{GROUP}/{name} unchanged"
    obj = get(plane, ns, "widget", name)
    assert obj["spec"] == {"replicas": 2, "color": "blue", "size": "small"}  # defaults filled in
    assert obj["metadata"]["generation"] == 1
    out = plane.kubectl("apply", "-f", "-", stdin=widget(name, ns, {"replicas": 3, "size": "large"}))
    assert out.stdout.strip() == f"widget.{GROUP}/{name} configured"
    obj = get(plane, ns, "widget", name)
    assert obj["spec"] == {"replicas": 3, "color": "blue", "size": "large"}
    assert obj["metadata"]["generation"] == 2


def test_apply_server_side_conflict_then_force(plane: ControlPlane, ns: str) -> None:
    name = unique("ssa")
    out = plane.kubectl("apply", "--server-side", "--field-manager=mgr-a", "-f", "-",
                        stdin=widget(name, ns, {"replicas": 2}))
    assert out.stdout.strip() == f"widget.{GROUP}/{name} serverside-applied"
    conflict = plane.kubectl("apply", "--server-side", "--field-manager=mgr-b", "-f", "-",
                             stdin=widget(name, ns, {"replicas": 4}), check=False)
    assert conflict.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "mgr-a": .spec.replicas' in conflict.stderr
    assert get(plane, ns, "widget", name)["spec"]["replicas"] == 2
    plane.kubectl("apply", "--server-side", "--field-manager=mgr-b", "--force-conflicts", "-f", "-",
                  stdin=widget(name, ns, {"replicas": 4}))
    obj = get(plane, ns, "widget", name, "--show-managed-fields")
    assert obj["spec"]["replicas"] == 4
    owners = {e["manager"]: e["fieldsV1"] for e in obj["metadata"]["managedFields"]}
    assert "f:replicas" in owners["mgr-b"]["f:spec"]
    assert "mgr-a" not in owners


def test_create_from_file_and_versions(plane: ControlPlane, ns: str) -> None:
    name = unique("created")
    out = plane.kubectl("create", "-f", "-", stdin=widget(name, ns, {"color": "red"}, version="v1"))
    assert out.stdout.strip() == f"widget.{GROUP}/{name} created"
    as_v1 = get(plane, ns, f"widgets.v1.{GROUP}", name)
    as_v2 = get(plane, ns, "widget", name)
    assert as_v1["apiVersion"] == f"{GROUP}/v1"
    assert as_v2["apiVersion"] == f"{GROUP}/v2"
    assert as_v1["spec"] == as_v2["spec"] == {"color": "red", "replicas": 1, "size": "small"}
    again = plane.kubectl("create", "-f", "-", stdin=widget(name, ns), check=False)
    assert again.returncode == 1
    assert (f'Error from server (AlreadyExists): error when creating "STDIN": widgets.{GROUP} "{name}" already '
            f'exists') in again.stderr


# --- get ------------------------------------------------------------------------------------------------


def test_get_printer_columns_yaml_json(plane: ControlPlane, ns: str) -> None:
    name = unique("table")
    plane.kubectl("create", "-f", "-", stdin=widget(name, ns, {"replicas": 3, "color": "green"}))
    set_condition(plane, ns, name, "True")
    lines = plane.kubectl("get", "widget", name, "-n", ns).stdout.splitlines()
    assert lines[0].split() == ["NAME", "REPLICAS", "COLOR", "READY", "AGE"]
    assert lines[1].split()[:4] == [name, "3", "green", "True"]
    wide = plane.kubectl("get", "wdg", name, "-n", ns, "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "REPLICAS", "COLOR", "READY", "AGE", "SIZE"]
    assert wide[1].split()[-1] == "small"
    as_yaml = yaml.safe_load(plane.kubectl("get", "widget", name, "-n", ns, "-o", "yaml").stdout)
    as_json = get(plane, ns, "widget", name)
    assert as_yaml == as_json
    assert as_json["kind"] == "Widget"
    assert as_json["status"]["conditions"][0]["status"] == "True"


def test_get_chunked_and_selectors(plane: ControlPlane, ns: str) -> None:
    batch = unique("page")
    names = sorted(f"{batch}-{i}" for i in range(5))
    plane.kubectl("create", "-f", "-", stdin="---\n".join(
        widget(n, ns, {"replicas": i}, labels={"batch": batch, "parity": "even" if i % 2 == 0 else "odd"})
        for i, n in enumerate(names)))
    proc = plane.kubectl("get", "widgets", "-n", ns, "-l", f"batch={batch}", "--chunk-size=2", "-o", "name", "-v=6")
    assert proc.stdout.split() == [f"widget.{GROUP}/{n}" for n in names]
    requests = [line for line in proc.stderr.splitlines() if "/widgets?" in line and "limit=2" in line]
    assert len(requests) == 3, proc.stderr
    assert sum("continue=" in line for line in requests) == 2

    def listed(*args: str) -> list[str]:
        out = plane.kubectl("get", "widgets", "-n", ns, "-o", "jsonpath={.items[*].metadata.name}", *args)
        return out.stdout.split()
    assert listed("-l", f"batch={batch},parity=odd") == [names[1], names[3]]
    assert listed("--field-selector", f"metadata.name={names[2]}") == [names[2]]
    bad = plane.kubectl("get", "widgets", "-n", ns, "--field-selector", "spec.color=blue", check=False)
    assert bad.returncode == 1
    assert "Error from server (BadRequest)" in bad.stderr
    assert "field label not supported: spec.color" in bad.stderr


def test_get_watch_streams_changes(plane: ControlPlane, ns: str) -> None:
    name = unique("watched")
    plane.kubectl("create", "-f", "-", stdin=widget(name, ns, {"replicas": 1}))
    watch = Background(plane, "get", "widget", name, "-n", ns, "-w", "-o", "jsonpath={.spec.replicas}{'\\n'}")
    try:
        watch.next_line(lambda line: line == "1")
        plane.kubectl("patch", "widget", name, "-n", ns, "--type=merge", "-p", '{"spec":{"replicas":7}}')
        watch.next_line(lambda line: line == "7")
    finally:
        watch.stop()


# --- describe, edit, patch, label, wait -----------------------------------------------------------------


def test_describe(plane: ControlPlane, ns: str) -> None:
    name = unique("described")
    plane.kubectl("create", "-f", "-", stdin=widget(name, ns, {"replicas": 2}, labels={"team": "a"}))
    out = plane.kubectl("describe", "widget", name, "-n", ns).stdout
    assert f"Name:         {name}" in out
    assert "Labels:       team=a" in out
    assert f"API Version:  {GROUP}/v2" in out
    assert "Kind:         Widget" in out
    assert "Replicas:  2" in out


def test_edit_with_editor(plane: ControlPlane, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    name = unique("edited")
    plane.kubectl("create", "-f", "-", stdin=widget(name, ns, {"size": "before"}))
    monkeypatch.setenv("EDITOR", "sed -i s/before/after/")
    assert plane.kubectl("edit", "widget", name, "-n", ns).stdout.strip() == f"widget.{GROUP}/{name} edited"
    assert get(plane, ns, "widget", name)["spec"]["size"] == "after"
    monkeypatch.setenv("EDITOR", "sed -i s/replicas:.*/replicas:\\ 11/")
    refused = plane.kubectl("edit", "widget", name, "-n", ns, check=False)
    assert refused.returncode == 1
    # kubectl writes the server's causes into the kept copy of the file and prints only the summary.
    assert f'widgets.{GROUP} "{name}" is invalid' in refused.stderr
    assert "Edit cancelled, no valid changes were saved." in refused.stderr
    assert get(plane, ns, "widget", name)["spec"]["replicas"] == 1


def test_patch_types(plane: ControlPlane, ns: str) -> None:
    name = unique("patched")
    plane.kubectl("create", "-f", "-", stdin=widget(name, ns, {"replicas": 1}))
    out = plane.kubectl("patch", "widget", name, "-n", ns, "--type=merge", "-p", '{"spec":{"size":"huge"}}')
    assert out.stdout.strip() == f"widget.{GROUP}/{name} patched"
    plane.kubectl("patch", "widget", name, "-n", ns, "--type=json",
                  "-p", '[{"op":"replace","path":"/spec/replicas","value":5}]')
    assert get(plane, ns, "widget", name)["spec"] == {"replicas": 5, "size": "huge", "color": "blue"}
    strategic = plane.kubectl("patch", "widget", name, "-n", ns, "--type=strategic", "-p", '{"spec":{"size":"x"}}',
                              check=False)
    assert strategic.returncode == 1
    # kubectl wraps the server's 415 (patch.go: NewUnsupportedMediaTypeError(patchTypes)).
    assert (f"error: application/strategic-merge-patch+json is not supported by {GROUP}/v2, Kind=Widget: the "
            "body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
            ) == strategic.stderr.strip()
    assert get(plane, ns, "widget", name)["spec"]["size"] == "huge"


def test_status_subresource_and_wait_for_condition(plane: ControlPlane, ns: str) -> None:
    name = unique("waited")
    plane.kubectl("create", "-f", "-", stdin=widget(name, ns, {"replicas": 2}))
    not_yet = plane.kubectl("wait", "--for=condition=Ready", f"widget/{name}", "-n", ns, "--timeout=1s", check=False)
    assert not_yet.returncode == 1
    assert "timed out waiting for the condition" in not_yet.stderr
    waiting = Background(plane, "wait", "--for=condition=Ready", f"widget/{name}", "-n", ns, "--timeout=30s")
    try:
        set_condition(plane, ns, name, "True")
        code, stderr = waiting.finish()
        assert code == 0, stderr
        assert waiting.next_line(lambda line: "condition met" in line) == f"widget.{GROUP}/{name} condition met"
    finally:
        waiting.stop()
    obj = get(plane, ns, "widget", name)
    assert obj["metadata"]["generation"] == 1  # status writes do not bump generation
    ignored = plane.kubectl("patch", "widget", name, "-n", ns, "--type=merge",
                            "-p", '{"status":{"conditions":[{"type":"Ready","status":"False"}]}}')
    assert ignored.stdout.strip() == f"widget.{GROUP}/{name} patched (no change)"
    spec_via_status = plane.kubectl("patch", "widget", name, "-n", ns, "--subresource=status", "--type=merge",
                                    "-p", '{"spec":{"replicas":9},"status":{"replicas":2}}')
    assert spec_via_status.returncode == 0
    obj = get(plane, ns, "widget", name)
    assert obj["spec"]["replicas"] == 2
    assert obj["status"]["replicas"] == 2
    plane.kubectl("wait", "--for=jsonpath={.status.replicas}=2", f"widget/{name}", "-n", ns, "--timeout=5s")


def test_label_and_annotate(plane: ControlPlane, ns: str) -> None:
    name = unique("labelled")
    plane.kubectl("create", "-f", "-", stdin=widget(name, ns))
    assert plane.kubectl("label", "widget", name, "-n", ns, "tier=web").stdout.strip() == \
        f"widget.{GROUP}/{name} labeled"
    assert plane.kubectl("annotate", "widget", name, "-n", ns, "note=hi").stdout.strip() == \
        f"widget.{GROUP}/{name} annotated"
    meta = get(plane, ns, "widget", name)["metadata"]
    assert meta["labels"] == {"tier": "web"}
    assert meta["annotations"] == {"note": "hi"}
    assert plane.kubectl("get", "widgets", "-n", ns, "-l", "tier=web", "-o", "name").stdout.split() == \
        [f"widget.{GROUP}/{name}"]
    plane.kubectl("label", "widget", name, "-n", ns, "tier-")
    assert "labels" not in get(plane, ns, "widget", name)["metadata"]


# --- delete ---------------------------------------------------------------------------------------------


def test_delete_blocks_on_finalizer(plane: ControlPlane, ns: str) -> None:
    name = unique("finalized")
    plane.kubectl("create", "-f", "-", stdin=widget(name, ns, finalizers=["kplane.dev/hold"]))
    deleting = Background(plane, "delete", "widget", name, "-n", ns, "--timeout=30s")
    try:
        assert plane.wait_for(lambda: get(plane, ns, "widget", name)["metadata"].get("deletionTimestamp"),
                              what="deletionTimestamp")
        assert deleting.proc.poll() is None  # kubectl still waits for the object to go
        plane.kubectl("patch", "widget", name, "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
        code, stderr = deleting.finish()
        assert code == 0, stderr
        assert deleting.next_line(lambda line: "deleted" in line) == f'widget.{GROUP} "{name}" deleted'
    finally:
        deleting.stop()
    assert absent(plane, ns, name)


# --- scale, replace, diff, dry-run ----------------------------------------------------------------------


def test_scale(plane: ControlPlane, ns: str) -> None:
    name = unique("scaled")
    plane.kubectl("create", "-f", "-", stdin=widget(name, ns, {"replicas": 1}))
    set_condition(plane, ns, name, "True")
    plane.kubectl("patch", "widget", name, "-n", ns, "--subresource=status", "--type=merge",
                  "-p", '{"status":{"replicas":1,"selector":"app=x"}}')
    assert plane.kubectl("scale", "widget", name, "-n", ns, "--replicas=4").stdout.strip() == \
        f"widget.{GROUP}/{name} scaled"
    assert get(plane, ns, "widget", name)["spec"]["replicas"] == 4
    scale = plane.kubectl_json("get", "widget", name, "-n", ns, "--subresource=scale")
    assert scale["kind"] == "Scale"
    assert scale["spec"] == {"replicas": 4}
    assert scale["status"] == {"replicas": 1, "selector": "app=x"}
    too_many = plane.kubectl("scale", "widget", name, "-n", ns, "--replicas=11", check=False)
    assert too_many.returncode == 1
    assert "replicas must be at most 10" in too_many.stderr
    assert get(plane, ns, "widget", name)["spec"]["replicas"] == 4


def test_replace_and_stale_conflict(plane: ControlPlane, ns: str) -> None:
    name = unique("replaced")
    plane.kubectl("create", "-f", "-", stdin=widget(name, ns, {"replicas": 1}))
    current = get(plane, ns, "widget", name)
    current["spec"]["replicas"] = 2
    assert plane.kubectl("replace", "-f", "-", stdin=json.dumps(current)).stdout.strip() == \
        f"widget.{GROUP}/{name} replaced"
    assert get(plane, ns, "widget", name)["spec"]["replicas"] == 2
    current["spec"]["replicas"] = 3
    stale = plane.kubectl("replace", "-f", "-", stdin=json.dumps(current), check=False)
    assert stale.returncode == 1
    assert (f'Error from server (Conflict): error when replacing "STDIN": Operation cannot be fulfilled on '
            f'widgets.{GROUP} "{name}": the object has been modified; please apply your changes to the latest '
            f'version and try again') in stale.stderr
    assert get(plane, ns, "widget", name)["spec"]["replicas"] == 2


def test_diff_exit_codes(plane: ControlPlane, ns: str) -> None:
    name = unique("diffed")
    plane.kubectl("apply", "-f", "-", stdin=widget(name, ns, {"replicas": 1}))
    same = plane.kubectl("diff", "-f", "-", stdin=widget(name, ns, {"replicas": 1}), check=False)
    assert same.returncode == 0, same.stderr
    changed = plane.kubectl("diff", "-f", "-", stdin=widget(name, ns, {"replicas": 6}), check=False)
    assert changed.returncode == 1, changed.stderr
    assert "-  replicas: 1" in changed.stdout and "+  replicas: 6" in changed.stdout
    assert get(plane, ns, "widget", name)["spec"]["replicas"] == 1


def test_server_dry_run_stores_nothing(plane: ControlPlane, ns: str) -> None:
    name = unique("dry")
    out = plane.kubectl("create", "-f", "-", "--dry-run=server", "-o", "json", stdin=widget(name, ns))
    assert json.loads(out.stdout)["spec"]["size"] == "small"  # defaulted in the dry run's answer
    assert absent(plane, ns, name)
    plane.kubectl("create", "-f", "-", stdin=widget(name, ns))
    rv = get(plane, ns, "widget", name)["metadata"]["resourceVersion"]
    plane.kubectl("patch", "widget", name, "-n", ns, "--type=merge", "-p", '{"spec":{"replicas":3}}',
                  "--dry-run=server")
    plane.kubectl("delete", "widget", name, "-n", ns, "--dry-run=server")
    obj = get(plane, ns, "widget", name)
    assert obj["spec"]["replicas"] == 1
    assert obj["metadata"]["resourceVersion"] == rv


# --- errors ---------------------------------------------------------------------------------------------


def test_error_output(plane: ControlPlane, ns: str) -> None:
    missing = plane.kubectl("get", "widget", "nope", "-n", ns, check=False)
    assert missing.returncode == 1
    assert f'Error from server (NotFound): widgets.{GROUP} "nope" not found' in missing.stderr
    name = unique("invalid")
    cel = plane.kubectl("create", "-f", "-", stdin=widget(name, ns, {"replicas": 11}), check=False)
    assert cel.returncode == 1
    # Rules on objects and arrays omit the value (apiextensions schema/cel/validation.go, field.OmitValueType).
    assert f'The Widget "{name}" is invalid: spec: Invalid value: replicas must be at most 10' in cel.stderr
    schema = plane.kubectl("create", "-f", "-", stdin=widget(name, ns, {"color": "pink"}), check=False)
    assert schema.returncode == 1
    assert (f'The Widget "{name}" is invalid: spec.color: Unsupported value: "pink": supported values: "blue", '
            f'"red", "green"') in schema.stderr
    strict = plane.kubectl("create", "-f", "-", "--validate=strict", stdin=widget(name, ns, {"bogus": 1}),
                           check=False)
    assert strict.returncode == 1
    assert ('Error from server (BadRequest): error when creating "STDIN": Widget in version "v1" cannot be handled '
            'as a Widget: strict decoding error: unknown field "spec.bogus"') in strict.stderr
    assert absent(plane, ns, name)
    plane.kubectl("create", "-f", "-", "--validate=false", stdin=widget(name, ns, {"bogus": 1}))
    assert "bogus" not in get(plane, ns, "widget", name)["spec"]  # pruned
    immutable = plane.kubectl("patch", "widget", name, "-n", ns, "--type=merge", "-p", '{"spec":{"color":"red"}}',
                              check=False)
    assert immutable.returncode == 1
    assert f'The Widget "{name}" is invalid: spec: Invalid value: color is immutable' in immutable.stderr
