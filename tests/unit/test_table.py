"""Table output: built-in printer columns and cells, CRD printer columns, default convertor, row objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kplane.api.resources import PrinterColumn, ResourceType
from kplane.apiserver.printers import human_duration
from kplane.apiserver.table import to_table

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
PODS = ResourceType("", "v1", "pods", "Pod", True)
DEPLOYMENTS = ResourceType("apps", "v1", "deployments", "Deployment", True)
WIDGETS = ResourceType(
    "example.com",
    "v1",
    "widgets",
    "Widget",
    True,
    crd_name="widgets.example.com",
    printer_columns=(
        PrinterColumn("Size", "integer", ".spec.size"),
        PrinterColumn(
            "Ready", "string", '.status.conditions[?(@.type=="Ready")].status', description="readiness"
        ),
        PrinterColumn("Flags", "string", ".spec.flags", priority=1),
        PrinterColumn("Started", "date", ".status.startedAt"),
        PrinterColumn("Ratio", "number", ".spec.size"),
        PrinterColumn("On", "boolean", ".spec.on"),
    ),
)


def ago(seconds: int) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def names(table: dict[str, Any]) -> list[str]:
    return [c["name"] for c in table["columnDefinitions"]]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (182, "3m2s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 60, "5h1m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (2 * 86400, "2d"),
        (2 * 86400 + 3600, "2d1h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (731 * 86400, "2y1d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def running_pod(**extra: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1",
            "namespace": "default",
            "creationTimestamp": ago(3600 * 5),
            "labels": {"app": "web"},
            "managedFields": [{"manager": "x"}],
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}],
        },
        "status": {
            "phase": "Running",
            "podIPs": [{"ip": "10.0.0.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "a", "ready": True, "restartCount": 0, "state": {"running": {}}},
                {
                    "name": "b",
                    "ready": False,
                    "restartCount": 2,
                    "state": {"running": {}},
                    "lastState": {"terminated": {"finishedAt": ago(65)}},
                },
            ],
        },
    }
    pod.update(extra)
    return pod


def test_pod_columns_and_cells() -> None:
    table = to_table(PODS, [running_pod()], list_meta={"resourceVersion": "42"}, now=NOW)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42"}
    assert names(table) == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
        "IP",
        "Node",
        "Nominated Node",
        "Readiness Gates",
    ]
    assert [c["priority"] for c in table["columnDefinitions"]] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert table["columnDefinitions"][0]["format"] == "name"
    assert table["columnDefinitions"][1]["format"] == ""
    row = table["rows"][0]
    assert row["cells"] == [
        "web-1",
        "1/2",
        "Running",
        "2 (65s ago)",
        "5h",
        "10.0.0.5",
        "node-1",
        "<none>",
        "<none>",
    ]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["apiVersion"] == "meta.k8s.io/v1"
    assert row["object"]["metadata"]["labels"] == {"app": "web"}
    assert "spec" not in row["object"]


def test_pod_status_reasons() -> None:
    waiting = running_pod()
    waiting["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    terminating = running_pod()
    terminating["metadata"]["deletionTimestamp"] = ago(1)
    exited = running_pod()
    exited["status"]["containerStatuses"] = [{"name": "a", "state": {"terminated": {"exitCode": 3}}}]
    pending = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}]},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
        },
    }
    init = {
        "metadata": {"name": "i"},
        "spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "x"}, {"name": "y"}]},
        "status": {
            "phase": "Pending",
            "initContainerStatuses": [
                {"name": "x", "state": {"terminated": {"exitCode": 0}}},
                {"name": "y", "state": {"running": {}}},
            ],
        },
    }
    evicted = {
        "metadata": {"name": "e"},
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Failed", "reason": "Evicted"},
    }
    table = to_table(PODS, [waiting, terminating, exited, pending, init, evicted], list_meta={}, now=NOW)
    assert [r["cells"][2] for r in table["rows"]] == [
        "CrashLoopBackOff",
        "Terminating",
        "ExitCode:3",
        "SchedulingGated",
        "Init:1/2",
        "Evicted",
    ]
    assert table["rows"][5]["conditions"][0]["reason"] == "Failed"
    assert "conditions" not in table["rows"][0]


def test_deployment_columns() -> None:
    deploy = {
        "metadata": {"name": "web", "creationTimestamp": ago(90)},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web", "a": "b"}},
            "template": {
                "spec": {"containers": [{"name": "c1", "image": "i1"}, {"name": "c2", "image": "i2"}]}
            },
        },
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    table = to_table(DEPLOYMENTS, [deploy], list_meta={}, now=NOW)
    assert names(table) == [
        "Name",
        "Ready",
        "Up-to-date",
        "Available",
        "Age",
        "Containers",
        "Images",
        "Selector",
    ]
    assert table["rows"][0]["cells"] == ["web", "2/3", 3, 2, "90s", "c1,c2", "i1,i2", "a=b,app=web"]


def test_other_builtin_kinds() -> None:
    svc = {
        "metadata": {"name": "s"},
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.96.0.9",
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
            "selector": {"app": "web"},
        },
    }
    row = to_table(ResourceType("", "v1", "services", "Service", True), [svc], list_meta={}, now=NOW)["rows"][
        0
    ]
    assert row["cells"] == ["s", "NodePort", "10.96.0.9", "<none>", "80:30080/TCP", "<unknown>", "app=web"]
    job = {
        "metadata": {"name": "j", "creationTimestamp": ago(30)},
        "spec": {"completions": 2},
        "status": {
            "succeeded": 2,
            "startTime": ago(30),
            "completionTime": ago(10),
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    row = to_table(ResourceType("batch", "v1", "jobs", "Job", True), [job], list_meta={}, now=NOW)["rows"][0]
    assert row["cells"][:5] == ["j", "Complete", "2/2", "20s", "30s"]
    secret = {"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}
    row = to_table(ResourceType("", "v1", "secrets", "Secret", True), [secret], list_meta={}, now=NOW)[
        "rows"
    ][0]
    assert row["cells"] == ["s", "kubernetes.io/tls", 2, "<unknown>"]
    node = {
        "metadata": {"name": "n", "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0"},
            "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}],
        },
    }
    row = to_table(ResourceType("", "v1", "nodes", "Node", False), [node], list_meta={}, now=NOW)["rows"][0]
    assert row["cells"][:6] == [
        "n",
        "Ready,SchedulingDisabled",
        "control-plane",
        "<unknown>",
        "v1.32.0",
        "172.18.0.2",
    ]
    event = {
        "metadata": {"name": "e1"},
        "type": "Warning",
        "reason": "BackOff",
        "message": " boom ",
        "involvedObject": {"kind": "Pod", "name": "web-1"},
        "lastTimestamp": ago(5),
        "firstTimestamp": ago(50),
        "source": {"component": "kubelet", "host": "n"},
    }
    table = to_table(ResourceType("", "v1", "events", "Event", True), [event], list_meta={}, now=NOW)
    assert names(table)[:4] == ["Last Seen", "Type", "Reason", "Object"]
    assert table["rows"][0]["cells"] == [
        "5s",
        "Warning",
        "BackOff",
        "pod/web-1",
        "",
        "kubelet, n",
        "boom",
        "50s",
        1,
        "e1",
    ]
    lease = {"metadata": {"name": "l"}, "spec": {"holderIdentity": "me"}}
    row = to_table(
        ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True), [lease], list_meta={}, now=NOW
    )["rows"][0]
    assert row["cells"] == ["l", "me", "<unknown>"]


def test_crd_printer_columns() -> None:
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "creationTimestamp": ago(10)},
        "spec": {"size": 3, "flags": {"b": True, "a": 1}, "on": "yes"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "startedAt": ago(300)},
    }
    bare = {"metadata": {"name": "w2"}, "status": {"startedAt": "not-a-time"}}
    table = to_table(WIDGETS, [widget, bare], list_meta={"continue": "tok", "remainingItemCount": 4}, now=NOW)
    assert table["metadata"] == {"continue": "tok", "remainingItemCount": 4}
    assert names(table) == ["Name", "Size", "Ready", "Flags", "Started", "Ratio", "On"]
    defs = table["columnDefinitions"]
    assert defs[1]["description"] == "Custom resource definition column (in JSONPath format): .spec.size"
    assert defs[2]["description"] == "readiness"
    assert defs[3]["priority"] == 1
    assert table["rows"][0]["cells"] == ["w1", 3, "True", '{"a":1,"b":true}', "5m", 3.0, None]
    assert table["rows"][1]["cells"] == ["w2", None, None, None, "<invalid>", None, None]


def test_crd_without_columns_gets_age() -> None:
    rtype = ResourceType("example.com", "v1", "gadgets", "Gadget", True, crd_name="gadgets.example.com")
    table = to_table(
        rtype, [{"metadata": {"name": "g", "creationTimestamp": ago(7200)}}], list_meta={}, now=NOW
    )
    assert names(table) == ["Name", "Age"]
    assert table["columnDefinitions"][1]["type"] == "date"
    assert table["rows"][0]["cells"] == ["g", "120m"]


def test_default_convertor_for_crds_themselves() -> None:
    rtype = ResourceType(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False
    )
    crd = {"metadata": {"name": "widgets.example.com", "creationTimestamp": "2024-05-01T10:00:00Z"}}
    table = to_table(rtype, [crd], list_meta={}, now=NOW)
    assert names(table) == ["Name", "Created At"]
    assert table["columnDefinitions"][1]["type"] == "date"
    assert table["rows"][0]["cells"] == ["widgets.example.com", "2024-05-01T10:00:00Z"]


def test_include_object_modes() -> None:
    pod = running_pod()
    full = to_table(PODS, [pod], list_meta={}, include_object="Object", now=NOW)["rows"][0]
    assert full["object"] == pod
    none = to_table(PODS, [pod], list_meta={}, include_object="None", now=NOW)["rows"][0]
    assert "object" not in none
    default = to_table(PODS, [pod], list_meta={}, include_object="", now=NOW)["rows"][0]
    assert default["object"]["kind"] == "PartialObjectMetadata"
    with pytest.raises(ValueError):
        to_table(PODS, [pod], list_meta={}, include_object="Everything", now=NOW)


def test_empty_list_keeps_columns() -> None:
    table = to_table(PODS, [], list_meta={"resourceVersion": "7", "continue": ""}, now=NOW)
    assert table["rows"] == [] and table["metadata"] == {"resourceVersion": "7"}
    assert len(table["columnDefinitions"]) == 9
