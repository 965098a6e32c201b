"""kubectl 1.32 against a real ``kplane up`` over HTTPS, on built-in kinds.

Every test works in the module's namespace with names of its own, so the tests share one server and do
not see each other's objects. Expected error texts are kubectl's renderings of upstream ``Status`` errors
(k8s.io/kubectl/pkg/cmd/util/helpers.go: ``Error from server (<Reason>): <message>``, and ``The <Kind>
"<name>" is invalid: <field>: <detail>`` for 422s).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from tests.e2e.harness import Background, ControlPlane, unique


def configmap(name: str, namespace: str, data: dict[str, str], **meta: Any) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": name, "namespace": namespace, **meta}, "data": data})


def deployment(name: str, namespace: str, replicas: int = 1, image: str = "nginx:1.27") -> str:
    labels = {"app": name}
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "main", "image": image}]}}},
    })


@pytest.fixture(scope="module")
def ns(plane: ControlPlane) -> str:
    plane.kubectl("create", "namespace", "kubectl-builtin")
    return "kubectl-builtin"


def get(plane: ControlPlane, ns: str, *args: str) -> Any:
    return plane.kubectl_json("get", "-n", ns, *args)


def absent(plane: ControlPlane, ns: str, resource: str, name: str) -> bool:
    proc = plane.kubectl("get", "-n", ns, resource, name, check=False)
    return proc.returncode != 0 and f'{resource} "{name}" not found' in proc.stderr


# --- apply ---------------------------------------------------------------------------------------------


def test_apply_client_side_create_unchanged_configured(plane: ControlPlane, ns: str) -> None:
    name = unique("csa")
    manifest = configmap(name, ns, {"key": "one"})
    assert plane.kubectl("apply", "-f", "-", stdin=manifest).stdout.strip() == f"configmap/{name} created"
    assert plane.kubectl("apply", "-f", "-", stdin=manifest).stdout.strip() == f"configmap/{name} unchanged"
    changed = configmap(name, ns, {"key": "two", "extra": "x"})
    assert plane.kubectl("apply", "-f", "-", stdin=changed).stdout.strip() == f"configmap/{name} configured"
    obj = get(plane, ns, "configmap", name)
    assert obj["data"] == {"key": "two", "extra": "x"}
    last = json.loads(obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last["data"] == {"key": "two", "extra": "x"}
    # A key dropped from the manifest is deleted (three-way merge with last-applied).
    plane.kubectl("apply", "-f", "-", stdin=configmap(name, ns, {"key": "two"}))
    assert get(plane, ns, "configmap", name)["data"] == {"key": "two"}


def test_apply_server_side_conflict_then_force(plane: ControlPlane, ns: str) -> None:
    name = unique("ssa")
    out = plane.kubectl("apply", "--server-side", "--field-manager=mgr-a", "-f", "-",
                        stdin=configmap(name, ns, {"key": "a"}))
    assert out.stdout.strip() == f"configmap/{name} serverside-applied"
    conflict = plane.kubectl("apply", "--server-side", "--field-manager=mgr-b", "-f", "-",
                             stdin=configmap(name, ns, {"key": "b"}), check=False)
    assert conflict.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "mgr-a": .data.key' in conflict.stderr
    assert get(plane, ns, "configmap", name)["data"] == {"key": "a"}
    plane.kubectl("apply", "--server-side", "--field-manager=mgr-b", "--force-conflicts", "-f", "-",
                  stdin=configmap(name, ns, {"key": "b"}))
    obj = get(plane, ns, "configmap", name, "--show-managed-fields")
    assert obj["data"] == {"key": "b"}
    owners = {e["manager"]: e for e in obj["metadata"]["managedFields"]}
    assert owners["mgr-b"]["operation"] == "Apply"
    assert "f:key" in owners["mgr-b"]["fieldsV1"]["f:data"]
    assert "mgr-a" not in owners  # it lost its only field


# --- create ---------------------------------------------------------------------------------------------


def test_create_from_file_and_already_exists(plane: ControlPlane, ns: str) -> None:
    name = unique("created")
    manifest = configmap(name, ns, {"k": "v"})
    assert plane.kubectl("create", "-f", "-", stdin=manifest).stdout.strip() == f"configmap/{name} created"
    again = plane.kubectl("create", "-f", "-", stdin=manifest, check=False)
    assert again.returncode == 1
    assert (f'Error from server (AlreadyExists): error when creating "STDIN": configmaps "{name}" already exists'
            in again.stderr)


def test_typed_create_commands_send_protobuf(plane: ControlPlane) -> None:
    space = unique("typed")
    assert plane.kubectl("create", "namespace", space).stdout.strip() == f"namespace/{space} created"
    assert plane.kubectl_json("get", "namespace", space)["status"]["phase"] == "Active"
    plane.kubectl("create", "configmap", "cfg", "-n", space, "--from-literal=color=blue", "--from-literal=n=1")
    assert get(plane, space, "configmap", "cfg")["data"] == {"color": "blue", "n": "1"}
    plane.kubectl("create", "secret", "generic", "sec", "-n", space, "--from-literal=password=s3cret")
    secret = get(plane, space, "secret", "sec")
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["password"]) == b"s3cret"
    plane.kubectl("create", "deployment", "web", "-n", space, "--image=nginx:1.27", "--replicas=2", "--port=80")
    deploy = get(plane, space, "deployment", "web")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.27"
    assert container["ports"][0]["containerPort"] == 80
    assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted by the server
    assert deploy["metadata"]["generation"] == 1


# --- get ------------------------------------------------------------------------------------------------


def test_get_table_yaml_and_json(plane: ControlPlane, ns: str) -> None:
    name = unique("table")
    plane.kubectl("apply", "-f", "-", stdin=deployment(name, ns, replicas=3))
    lines = plane.kubectl("get", "deployment", name, "-n", ns).stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert lines[1].split()[:2] == [name, "0/3"]
    wide = plane.kubectl("get", "deployment", name, "-n", ns, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[5:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[5:] == ["main", "nginx:1.27", f"app={name}"]
    plane.kubectl("apply", "-f", "-", stdin=configmap(unique("table-cm"), ns, {"k": "v"}))
    cm_lines = plane.kubectl("get", "configmap", "-n", ns, "--no-headers=false").stdout.splitlines()
    assert cm_lines[0].split() == ["NAME", "DATA", "AGE"]
    as_yaml = yaml.safe_load(plane.kubectl("get", "deployment", name, "-n", ns, "-o", "yaml").stdout)
    as_json = get(plane, ns, "deployment", name)
    assert as_yaml["kind"] == as_json["kind"] == "Deployment"
    assert as_yaml["apiVersion"] == "apps/v1"
    assert as_yaml["metadata"]["resourceVersion"] == as_json["metadata"]["resourceVersion"]
    assert as_yaml["spec"]["replicas"] == 3
    listed = plane.kubectl_json("get", "deployments", "-n", ns)
    assert listed["kind"] == "List"
    assert name in [item["metadata"]["name"] for item in listed["items"]]


def test_get_chunked_list_pages(plane: ControlPlane, ns: str) -> None:
    batch = unique("page")
    names = sorted(f"{batch}-{i}" for i in range(5))
    manifests = "---\n".join(configmap(n, ns, {"i": n}, labels={"batch": batch}) for n in names)
    plane.kubectl("create", "-f", "-", stdin=manifests)
    proc = plane.kubectl("get", "configmaps", "-n", ns, "-l", f"batch={batch}", "--chunk-size=2", "-o", "name",
                         "-v=6")
    assert proc.stdout.split() == [f"configmap/{n}" for n in names]
    requests = [line for line in proc.stderr.splitlines() if "/configmaps?" in line and "limit=2" in line]
    assert len(requests) == 3, proc.stderr
    assert sum("continue=" in line for line in requests) == 2
    table = plane.kubectl("get", "configmaps", "-n", ns, "-l", f"batch={batch}", "--chunk-size=2")
    assert [line.split()[0] for line in table.stdout.splitlines()] == ["NAME", *names]


def test_get_label_and_field_selectors(plane: ControlPlane, ns: str) -> None:
    tag = unique("sel")
    plane.kubectl("create", "-f", "-", stdin="---\n".join([
        configmap(f"{tag}-red", ns, {}, labels={"tag": tag, "color": "red"}),
        configmap(f"{tag}-blue", ns, {}, labels={"tag": tag, "color": "blue"}),
    ]))
    def names(*args: str) -> list[str]:
        return plane.kubectl("get", "configmaps", "-n", ns, "-o", "name", *args).stdout.split()
    assert names("-l", f"tag={tag},color=red") == [f"configmap/{tag}-red"]
    assert names("-l", f"tag={tag},color!=red") == [f"configmap/{tag}-blue"]
    assert names("-l", f"tag={tag},color in (red,blue)") == [f"configmap/{tag}-blue", f"configmap/{tag}-red"]
    assert names("--field-selector", f"metadata.name={tag}-blue") == [f"configmap/{tag}-blue"]
    assert names("-l", f"tag={tag}", "--field-selector", f"metadata.name!={tag}-blue") == [f"configmap/{tag}-red"]
    plane.kubectl("create", "secret", "generic", f"{tag}-opaque", "-n", ns)
    plane.kubectl("create", "secret", "generic", f"{tag}-custom", "-n", ns, "--type=kplane.dev/custom")
    secrets = plane.kubectl("get", "secrets", "-n", ns, "-o", "name", "--field-selector", "type=kplane.dev/custom")
    assert secrets.stdout.split() == [f"secret/{tag}-custom"]
    bad = plane.kubectl("get", "configmaps", "-n", ns, "--field-selector", "data.color=red", check=False)
    assert bad.returncode == 1
    assert "Error from server (BadRequest)" in bad.stderr
    assert 'field label not supported: data.color' in bad.stderr


def test_get_watch_streams_changes(plane: ControlPlane, ns: str) -> None:
    name = unique("watched")
    plane.kubectl("create", "-f", "-", stdin=configmap(name, ns, {"v": "initial"}))
    watch = Background(plane, "get", "configmap", name, "-n", ns, "-w", "-o", "jsonpath={.data.v}{'\\n'}")
    try:
        watch.next_line(lambda line: line == "initial")
        plane.kubectl("patch", "configmap", name, "-n", ns, "--type=merge", "-p", '{"data":{"v":"changed"}}')
        watch.next_line(lambda line: line == "changed")
    finally:
        watch.stop()


# --- describe, edit, patch, label ----------------------------------------------------------------------


def test_describe(plane: ControlPlane, ns: str) -> None:
    name = unique("described")
    plane.kubectl("create", "-f", "-", stdin=configmap(name, ns, {"greeting": "hello"}, labels={"team": "a"}))
    out = plane.kubectl("describe", "configmap", name, "-n", ns).stdout
    assert f"Name:         {name}" in out
    assert f"Namespace:    {ns}" in out
    assert "Labels:       team=a" in out
    assert "greeting:\n----\nhello" in out
    deploy = unique("described-deploy")
    plane.kubectl("apply", "-f", "-", stdin=deployment(deploy, ns, replicas=2))
    out = plane.kubectl("describe", "deployment", deploy, "-n", ns).stdout
    assert f"Selector:               app={deploy}" in out
    assert "Replicas:               2 desired" in out
    assert "StrategyType:           RollingUpdate" in out


def test_edit_with_editor(plane: ControlPlane, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    name = unique("edited")
    plane.kubectl("create", "-f", "-", stdin=configmap(name, ns, {"mood": "before"}))
    monkeypatch.setenv("EDITOR", "sed -i s/before/after/")
    out = plane.kubectl("edit", "configmap", name, "-n", ns)
    assert out.stdout.strip() == f"configmap/{name} edited"
    assert get(plane, ns, "configmap", name)["data"] == {"mood": "after"}
    monkeypatch.setenv("EDITOR", "true")
    out = plane.kubectl("edit", "configmap", name, "-n", ns)
    assert "Edit cancelled, no changes made." in out.stdout + out.stderr


def test_patch_json_merge_strategic(plane: ControlPlane, ns: str) -> None:
    name = unique("patched")
    plane.kubectl("apply", "-f", "-", stdin=deployment(name, ns))
    sidecar = '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}'
    out = plane.kubectl("patch", "deployment", name, "-n", ns, "--type=strategic", "-p", sidecar)
    assert out.stdout.strip() == f"deployment.apps/{name} patched"
    containers = get(plane, ns, "deployment", name)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["sidecar", "main"]  # merged by name, patch items first
    plane.kubectl("patch", "deployment", name, "-n", ns, "--type=json",
                  "-p", '[{"op":"replace","path":"/spec/replicas","value":4}]')
    assert get(plane, ns, "deployment", name)["spec"]["replicas"] == 4
    bad = plane.kubectl("patch", "deployment", name, "-n", ns, "--type=json",
                        "-p", '[{"op":"test","path":"/spec/replicas","value":9}]', check=False)
    assert bad.returncode == 1
    # A failed ``test`` op is a 422 without details (NewGenericServerResponse), which kubectl prints so.
    assert bad.stderr.strip() == ("The request is invalid: the server rejected our request due to an error in "
                                  "our request")
    plane.kubectl("patch", "deployment", name, "-n", ns, "--type=merge", "-p", sidecar)
    containers = get(plane, ns, "deployment", name)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["sidecar"]  # a merge patch replaces lists


def test_patch_status_subresource(plane: ControlPlane, ns: str) -> None:
    name = unique("status")
    plane.kubectl("apply", "-f", "-", stdin=deployment(name, ns, replicas=2))
    before = get(plane, ns, "deployment", name)
    out = plane.kubectl("patch", "deployment", name, "-n", ns, "--subresource=status", "--type=merge",
                        "-p", '{"status":{"replicas":2,"readyReplicas":1},"spec":{"replicas":9}}')
    assert out.stdout.strip() == f"deployment.apps/{name} patched"
    after = get(plane, ns, "deployment", name)
    assert after["status"]["replicas"] == 2
    assert after["status"]["readyReplicas"] == 1
    assert after["spec"]["replicas"] == 2  # the status endpoint ignores spec
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    ignored = plane.kubectl("patch", "deployment", name, "-n", ns, "--type=merge", "-p", '{"status":{"replicas":7}}')
    assert ignored.stdout.strip() == f"deployment.apps/{name} patched (no change)"
    assert get(plane, ns, "deployment", name)["status"]["replicas"] == 2


def test_label_and_annotate(plane: ControlPlane, ns: str) -> None:
    name = unique("labelled")
    plane.kubectl("create", "-f", "-", stdin=configmap(name, ns, {}))
    assert plane.kubectl("label", "configmap", name, "-n", ns, "tier=web").stdout.strip() == \
        f"configmap/{name} labeled"
    refused = plane.kubectl("label", "configmap", name, "-n", ns, "tier=db", check=False)
    assert refused.returncode == 1
    assert "'tier' already has a value (web), and --overwrite is false" in refused.stderr
    plane.kubectl("label", "configmap", name, "-n", ns, "tier=db", "--overwrite")
    assert get(plane, ns, "configmap", name)["metadata"]["labels"] == {"tier": "db"}
    assert plane.kubectl("label", "configmap", name, "-n", ns, "tier-").stdout.strip() == \
        f"configmap/{name} unlabeled"
    assert "labels" not in get(plane, ns, "configmap", name)["metadata"]
    assert plane.kubectl("annotate", "configmap", name, "-n", ns, "note=hi").stdout.strip() == \
        f"configmap/{name} annotated"
    assert get(plane, ns, "configmap", name)["metadata"]["annotations"]["note"] == "hi"
    bad = plane.kubectl("label", "configmap", name, "-n", ns, "bad_key!=x", check=False)
    assert bad.returncode != 0


# --- delete ---------------------------------------------------------------------------------------------


def test_delete_blocks_on_finalizer(plane: ControlPlane, ns: str) -> None:
    name = unique("finalized")
    plane.kubectl("create", "-f", "-", stdin=configmap(name, ns, {}, finalizers=["kplane.dev/hold"]))
    deleting = Background(plane, "delete", "configmap", name, "-n", ns, "--timeout=30s")
    try:
        held = plane.wait_for(lambda: get(plane, ns, "configmap", name)["metadata"].get("deletionTimestamp"),
                              what="deletionTimestamp")
        assert held
        assert deleting.proc.poll() is None  # kubectl still waits for the object to go
        plane.kubectl("patch", "configmap", name, "-n", ns, "--type=json",
                      "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
        code, stderr = deleting.finish()
        assert code == 0, stderr
        assert deleting.next_line(lambda line: "deleted" in line) == f'configmap "{name}" deleted'
    finally:
        deleting.stop()
    assert absent(plane, ns, "configmaps", name)


def test_delete_and_wait_for_delete(plane: ControlPlane, ns: str) -> None:
    name = unique("gone")
    plane.kubectl("create", "-f", "-", stdin=configmap(name, ns, {}))
    assert plane.kubectl("delete", "configmap", name, "-n", ns).stdout.strip() == f'configmap "{name}" deleted'
    plane.kubectl("wait", "--for=delete", f"configmap/{name}", "-n", ns, "--timeout=10s")
    missing = plane.kubectl("delete", "configmap", name, "-n", ns, check=False)
    assert missing.returncode == 1
    assert f'Error from server (NotFound): configmaps "{name}" not found' in missing.stderr


# --- discovery and schema -------------------------------------------------------------------------------


def test_api_resources_and_explain(plane: ControlPlane) -> None:
    rows = {line.split()[0]: line.split() for line in plane.kubectl("api-resources").stdout.splitlines()[1:]}
    assert rows["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert rows["namespaces"] == ["namespaces", "ns", "v1", "false", "Namespace"]
    assert rows["customresourcedefinitions"][3:] == ["false", "CustomResourceDefinition"]
    namespaced = plane.kubectl("api-resources", "--namespaced=false", "-o", "name").stdout.split()
    assert "nodes" in namespaced and "configmaps" not in namespaced
    out = plane.kubectl("explain", "deployment.spec.replicas").stdout
    assert "GROUP:      apps" in out
    assert "FIELD: replicas <integer>" in out
    assert "Number of desired pods" in out
    fields = plane.kubectl("explain", "configmap").stdout
    assert "binaryData\t<map[string]string>" in fields
    unknown = plane.kubectl("explain", "configmap.nosuchfield", check=False)
    assert unknown.returncode == 1
    assert 'field "nosuchfield" does not exist' in unknown.stderr


# --- scale, replace, diff, dry-run ----------------------------------------------------------------------


def test_scale(plane: ControlPlane, ns: str) -> None:
    name = unique("scaled")
    plane.kubectl("apply", "-f", "-", stdin=deployment(name, ns, replicas=1))
    assert plane.kubectl("scale", "deployment", name, "-n", ns, "--replicas=5").stdout.strip() == \
        f"deployment.apps/{name} scaled"
    assert get(plane, ns, "deployment", name)["spec"]["replicas"] == 5
    stale = plane.kubectl("scale", "deployment", name, "-n", ns, "--replicas=6", "--current-replicas=2", check=False)
    assert stale.returncode == 1
    assert "Expected replicas to be 2, was 5" in stale.stderr
    assert get(plane, ns, "deployment", name)["spec"]["replicas"] == 5


def test_replace_and_stale_conflict(plane: ControlPlane, ns: str) -> None:
    name = unique("replaced")
    plane.kubectl("create", "-f", "-", stdin=configmap(name, ns, {"v": "1"}))
    current = get(plane, ns, "configmap", name)
    current["data"] = {"v": "2"}
    out = plane.kubectl("replace", "-f", "-", stdin=json.dumps(current))
    assert out.stdout.strip() == f"configmap/{name} replaced"
    assert get(plane, ns, "configmap", name)["data"] == {"v": "2"}
    current["data"] = {"v": "3"}  # still carries the resourceVersion read before the first replace
    stale = plane.kubectl("replace", "-f", "-", stdin=json.dumps(current), check=False)
    assert stale.returncode == 1
    assert (f'Error from server (Conflict): error when replacing "STDIN": Operation cannot be fulfilled on '
            f'configmaps "{name}": the object has been modified; please apply your changes to the latest '
            f'version and try again') in stale.stderr
    assert get(plane, ns, "configmap", name)["data"] == {"v": "2"}


def test_diff_exit_codes(plane: ControlPlane, ns: str) -> None:
    name = unique("diffed")
    plane.kubectl("apply", "-f", "-", stdin=configmap(name, ns, {"v": "old"}))
    same = plane.kubectl("diff", "-f", "-", stdin=configmap(name, ns, {"v": "old"}), check=False)
    assert same.returncode == 0, same.stderr
    assert same.stdout == ""
    changed = plane.kubectl("diff", "-f", "-", stdin=configmap(name, ns, {"v": "new"}), check=False)
    assert changed.returncode == 1, changed.stderr
    assert "-  v: old" in changed.stdout and "+  v: new" in changed.stdout
    assert get(plane, ns, "configmap", name)["data"] == {"v": "old"}  # diff is a server-side dry run


def test_server_dry_run_stores_nothing(plane: ControlPlane, ns: str) -> None:
    name = unique("dry")
    out = plane.kubectl("create", "-f", "-", "--dry-run=server", stdin=configmap(name, ns, {"v": "1"}))
    assert out.stdout.strip() == f"configmap/{name} created (server dry run)"
    assert absent(plane, ns, "configmaps", name)
    plane.kubectl("create", "-f", "-", stdin=configmap(name, ns, {"v": "1"}))
    rv = get(plane, ns, "configmap", name)["metadata"]["resourceVersion"]
    plane.kubectl("apply", "-f", "-", "--dry-run=server", stdin=configmap(name, ns, {"v": "2"}))
    plane.kubectl("delete", "configmap", name, "-n", ns, "--dry-run=server")
    obj = get(plane, ns, "configmap", name)
    assert obj["data"] == {"v": "1"}
    assert obj["metadata"]["resourceVersion"] == rv


# --- errors ---------------------------------------------------------------------------------------------


def test_error_output(plane: ControlPlane, ns: str) -> None:
    missing = plane.kubectl("get", "configmap", "no-such-thing", "-n", ns, check=False)
    assert missing.returncode == 1
    assert 'Error from server (NotFound): configmaps "no-such-thing" not found' in missing.stderr
    invalid = plane.kubectl("create", "-f", "-", stdin=configmap("Bad_Name", ns, {}), check=False)
    assert invalid.returncode == 1
    assert 'The ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 ' \
        'subdomain' in invalid.stderr
    name = unique("strict")
    unknown = yaml.safe_load(configmap(name, ns, {}))
    unknown["spec"] = {"x": 1}
    strict = plane.kubectl("create", "-f", "-", "--validate=strict", stdin=yaml.safe_dump(unknown), check=False)
    assert strict.returncode == 1
    assert 'Error from server (BadRequest): error when creating "STDIN": ConfigMap in version "v1" cannot be ' \
        'handled as a ConfigMap: strict decoding error: unknown field "spec"' in strict.stderr
    assert absent(plane, ns, "configmaps", name)
    assert plane.kubectl("create", "-f", "-", "--validate=false", stdin=yaml.safe_dump(unknown)).returncode == 0
    assert "spec" not in get(plane, ns, "configmap", name)  # dropped, as upstream does for unknown fields
    deploy = yaml.safe_load(deployment(unique("badspec"), ns))
    deploy["spec"]["replicas"] = -1
    neg = plane.kubectl("create", "-f", "-", stdin=yaml.safe_dump(deploy), check=False)
    assert neg.returncode == 1
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in neg.stderr


def test_field_validation_warn_and_strict(plane: ControlPlane, ns: str) -> None:
    """kubectl's --validate=warn shows the server's warnings (unknown field, quoted), =strict refuses."""
    manifest = ('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "loose"}, "data": {"a": "1"},'
                ' "spec": {"x": 1}}')
    warned = plane.kubectl("-n", ns, "create", "--validate=warn", "-f", "-", stdin=manifest)
    assert 'Warning: unknown field "spec"' in warned.stderr
    assert get(plane, ns, "configmap", "loose")["data"] == {"a": "1"}
    refused = plane.kubectl("-n", ns, "create", "--validate=strict", "-f", "-", check=False,
                            stdin=manifest.replace("loose", "strict"))
    assert refused.returncode != 0
    assert 'strict decoding error: unknown field "spec"' in refused.stderr
    assert absent(plane, ns, "configmaps", "strict")
