"""Built-in semantic validation: good objects pass, bad ones get upstream's field paths and messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kplane.api.builtin_validation import validate_builtin
from kplane.api.resources import ResourceType
from kplane.api.status import Cause

POD = ResourceType("", "v1", "pods", "Pod", True)
SVC = ResourceType("", "v1", "services", "Service", True)
CM = ResourceType("", "v1", "configmaps", "ConfigMap", True)
SECRET = ResourceType("", "v1", "secrets", "Secret", True)
NS = ResourceType("", "v1", "namespaces", "Namespace", False)
NODE = ResourceType("", "v1", "nodes", "Node", False)
EVENT = ResourceType("", "v1", "events", "Event", True)
DEPLOY = ResourceType("apps", "v1", "deployments", "Deployment", True)
RS = ResourceType("apps", "v1", "replicasets", "ReplicaSet", True)
DS = ResourceType("apps", "v1", "daemonsets", "DaemonSet", True)
STS = ResourceType("apps", "v1", "statefulsets", "StatefulSet", True)
JOB = ResourceType("batch", "v1", "jobs", "Job", True)
LEASE = ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True)

SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
    r"is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def msgs(causes: list[Cause]) -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in causes]


def meta(name: str = "x", namespace: str | None = "default", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, **extra}
    if namespace is not None:
        out["namespace"] = namespace
    return out


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": meta("web"), "spec": {"containers": [{"name": "app", "image": "nginx"}], **spec}}


def template(labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": labels if labels is not None else {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx"}], **spec},
    }


def deployment(**spec: Any) -> dict[str, Any]:
    body = {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template()}
    body.update(spec)
    return {"metadata": meta("web"), "spec": body}


# --- metadata ---------------------------------------------------------------------------------------


def test_name_rules_per_kind() -> None:
    assert msgs(validate_builtin(CM, {"metadata": meta("Bad_Name")}, None)) == [
        ("metadata.name", f'Invalid value: "Bad_Name": {SUBDOMAIN}')
    ]
    assert validate_builtin(CM, {"metadata": meta("a.b")}, None) == []
    assert msgs(validate_builtin(NS, {"metadata": meta("a.b", None)}, None)) == [
        ("metadata.name", 'Invalid value: "a.b": must not contain dots')
    ]
    svc_causes = validate_builtin(SVC, {"metadata": meta("1svc"), "spec": {"ports": [{"port": 80}]}}, None)
    assert svc_causes[0].field == "metadata.name"
    assert "a DNS-1035 label must consist of" in svc_causes[0].message


def test_name_or_generate_name_required() -> None:
    causes = validate_builtin(CM, {"metadata": {"namespace": "default"}}, None)
    assert msgs(causes) == [("metadata.name", "Required value: name or generateName is required")]
    assert causes[0].reason == "FieldValueRequired"
    assert validate_builtin(CM, {"metadata": {"generateName": "web-", "namespace": "d"}}, None) == []
    bad = validate_builtin(CM, {"metadata": {"generateName": "Web-", "namespace": "d"}}, None)
    assert bad[0].field == "metadata.generateName"


def test_namespace_presence() -> None:
    assert msgs(validate_builtin(CM, {"metadata": meta(namespace=None)}, None)) == [
        ("metadata.namespace", "Required value")
    ]
    assert msgs(validate_builtin(NS, {"metadata": meta("ns", "other")}, None)) == [
        ("metadata.namespace", "Forbidden: not allowed on this type")
    ]


def test_labels_annotations_finalizers_owners() -> None:
    obj = {
        "metadata": meta(
            labels={"ok": "v", "bad key!": "v", "k": "-bad"},
            annotations={"example.com/x": "1", "a/b/c": "2"},
            finalizers=["example.com/f", "bad/fin/x"],
            ownerReferences=[{"apiVersion": "v1", "kind": "", "name": "o", "uid": "u"}],
        )
    }
    fields = [c.field for c in validate_builtin(CM, obj, None)]
    assert fields == [
        "metadata.labels",
        "metadata.labels",
        "metadata.annotations",
        "metadata.ownerReferences[0].kind",
        "metadata.finalizers[1]",
    ]
    causes = validate_builtin(CM, obj, None)
    assert causes[0].message.startswith('Invalid value: "bad key!": name part must consist of')
    assert causes[1].message.startswith('Invalid value: "-bad": a valid label must be an empty string')
    assert causes[3].message == 'Invalid value: "": kind must not be empty'


def test_annotation_total_size() -> None:
    obj = {"metadata": meta(annotations={"big": "x" * (256 * 1024)})}
    assert msgs(validate_builtin(CM, obj, None)) == [
        ("metadata.annotations", "Too long: may not be more than 262144 bytes")
    ]
    obj = {"metadata": meta(annotations={"b": "x" * (256 * 1024 - 1)})}
    assert validate_builtin(CM, obj, None) == []


# --- pods -------------------------------------------------------------------------------------------


def test_good_pod() -> None:
    assert validate_builtin(POD, pod(restartPolicy="Never"), None) == []


def test_pod_errors() -> None:
    assert msgs(validate_builtin(POD, {"metadata": meta(), "spec": {"containers": []}}, None)) == [
        ("spec.containers", "Required value")
    ]
    bad = pod(restartPolicy="Sometimes")
    bad["spec"]["containers"] = [
        {"name": "App", "image": "nginx", "ports": [{"containerPort": 70000, "protocol": "ICMP"}]},
        {"name": "dup", "image": ""},
        {"name": "dup", "image": " nginx"},
    ]
    causes = msgs(validate_builtin(POD, bad, None))
    assert causes[0][0] == "spec.containers[0].name"
    assert (
        "spec.containers[0].ports[0].containerPort",
        "Invalid value: 70000: must be between 1 and 65535, inclusive",
    ) in causes
    assert (
        "spec.containers[0].ports[0].protocol",
        'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
    ) in causes
    assert ("spec.containers[1].image", "Required value") in causes
    assert ("spec.containers[2].name", 'Duplicate value: "dup"') in causes
    assert (
        "spec.containers[2].image",
        'Invalid value: " nginx": must not have leading or trailing whitespace',
    ) in causes
    assert (
        "spec.restartPolicy",
        'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
    ) in causes


def test_pod_update_rules() -> None:
    old = pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:2"
    new["spec"]["activeDeadlineSeconds"] = 30
    assert validate_builtin(POD, new, old) == []
    moved = copy.deepcopy(old)
    moved["spec"]["nodeName"] = "node-2"
    causes = validate_builtin(POD, moved, old)
    assert [c.field for c in causes] == ["spec"]
    assert causes[0].message.startswith("Forbidden: pod updates may not change fields other than")


# --- services, configmaps, secrets, namespaces, nodes, events ----------------------------------------


def test_services() -> None:
    good = {"metadata": meta("web"), "spec": {"ports": [{"port": 80, "targetPort": "http"}]}}
    assert validate_builtin(SVC, good, None) == []
    headless = {"metadata": meta("h"), "spec": {"clusterIP": "None"}}
    assert validate_builtin(SVC, headless, None) == []
    external = {"metadata": meta("e"), "spec": {"type": "ExternalName", "externalName": "db.example.com."}}
    assert validate_builtin(SVC, external, None) == []
    assert msgs(validate_builtin(SVC, {"metadata": meta("p"), "spec": {}}, None)) == [
        ("spec.ports", "Required value")
    ]
    bad = {
        "metadata": meta("b"),
        "spec": {
            "type": "Magic",
            "ports": [{"port": 0, "protocol": "TCP"}, {"name": "x", "port": 80, "nodePort": 30000}],
        },
    }
    causes = msgs(validate_builtin(SVC, bad, None))
    assert causes[0] == (
        "spec.type",
        'Unsupported value: "Magic": supported values: "ClusterIP", '
        '"ExternalName", "LoadBalancer", "NodePort"',
    )
    assert ("spec.ports[0].name", "Required value") in causes
    assert ("spec.ports[0].port", "Invalid value: 0: must be between 1 and 65535, inclusive") in causes
    nodeport = {"metadata": meta("c"), "spec": {"ports": [{"port": 80, "nodePort": 30000}]}}
    assert msgs(validate_builtin(SVC, nodeport, None)) == [
        ("spec.ports[0].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'")
    ]


def test_configmap_keys_and_immutability() -> None:
    good = {"metadata": meta(), "data": {"app.conf": "x", "KEY_1": "y"}}
    assert validate_builtin(CM, good, None) == []
    bad = {"metadata": meta(), "data": {"a/b": "x", "dup": "1"}, "binaryData": {"dup": "MQ=="}}
    causes = msgs(validate_builtin(CM, bad, None))
    assert causes[0][0] == "data[a/b]"
    assert causes[0][1].startswith(
        "Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
    )
    assert ("data[dup]", 'Invalid value: "dup": duplicate of key present in binaryData') in causes
    old = {"metadata": meta(), "data": {"a": "1"}, "immutable": True}
    new = {"metadata": meta(), "data": {"a": "2"}}
    assert msgs(validate_builtin(CM, new, old)) == [
        ("immutable", "Forbidden: field is immutable when `immutable` is set"),
        ("data", "Forbidden: field is immutable when `immutable` is set"),
    ]
    assert validate_builtin(CM, {**old, "metadata": meta(labels={"a": "b"})}, old) == []


def test_secret_rules() -> None:
    assert validate_builtin(SECRET, {"metadata": meta(), "stringData": {"password": "x"}}, None) == []
    tls = {"metadata": meta(), "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}
    assert msgs(validate_builtin(SECRET, tls, None)) == [("data[tls.key]", "Required value")]
    sa = {"metadata": meta(), "type": "kubernetes.io/service-account-token"}
    assert msgs(validate_builtin(SECRET, sa, None)) == [
        ("metadata.annotations[kubernetes.io/service-account.name]", "Required value")
    ]
    docker = {
        "metadata": meta(),
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": "bm90IGpzb24="},
    }
    assert [c.field for c in validate_builtin(SECRET, docker, None)] == ["data[.dockerconfigjson]"]
    old = {"metadata": meta(), "type": "Opaque", "data": {"a": "eA=="}}
    changed = {**old, "type": "kubernetes.io/basic-auth", "data": {"username": "eA=="}}
    assert msgs(validate_builtin(SECRET, changed, old)) == [
        ("type", 'Invalid value: "kubernetes.io/basic-auth": field is immutable')
    ]


def test_namespace_node_event() -> None:
    ns = {"metadata": meta("team-a", None), "spec": {"finalizers": ["kubernetes", "custom"]}}
    assert msgs(validate_builtin(NS, ns, None)) == [
        (
            "spec.finalizers[1]",
            'Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified',
        )
    ]
    node = {
        "metadata": meta("n1", None),
        "spec": {"taints": [{"key": "gpu", "effect": "Sometimes"}, {"key": "x"}]},
    }
    assert msgs(validate_builtin(NODE, node, None)) == [
        (
            "spec.taints[0].effect",
            'Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"',
        ),
        ("spec.taints[1].effect", "Required value"),
    ]
    event = {"metadata": meta("e", "team-a"), "involvedObject": {"kind": "Pod", "namespace": "other"}}
    assert msgs(validate_builtin(EVENT, event, None)) == [
        ("involvedObject.namespace", 'Invalid value: "other": does not match event.namespace')
    ]
    event["involvedObject"]["namespace"] = "team-a"
    assert validate_builtin(EVENT, event, None) == []


# --- workloads ----------------------------------------------------------------------------------------


def test_good_workloads() -> None:
    assert validate_builtin(DEPLOY, deployment(), None) == []
    assert validate_builtin(RS, deployment(), None) == []
    assert (
        validate_builtin(
            DS,
            {
                "metadata": meta(),
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()},
            },
            None,
        )
        == []
    )
    assert (
        validate_builtin(
            STS,
            {
                "metadata": meta(),
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(), "replicas": 1},
            },
            None,
        )
        == []
    )


def test_deployment_selector_errors() -> None:
    causes = msgs(validate_builtin(DEPLOY, deployment(template=template({"app": "other"})), None))
    assert causes == [
        (
            "spec.template.metadata.labels",
            'Invalid value: map[string]string{"app":"other"}: `selector` does not match template `labels`',
        )
    ]
    assert msgs(validate_builtin(DEPLOY, deployment(selector=None), None)) == [
        ("spec.selector", "Required value")
    ]
    empty = msgs(validate_builtin(DEPLOY, deployment(selector={}), None))
    assert empty[0][0] == "spec.selector" and empty[0][1].endswith("empty selector is invalid for deployment")
    expr = deployment(selector={"matchExpressions": [{"key": "app", "operator": "In"}]})
    assert (
        "spec.selector.matchExpressions[0].values",
        "Required value: must be specified when `operator` is 'In' or 'NotIn'",
    ) in msgs(validate_builtin(DEPLOY, expr, None))


def test_deployment_spec_errors() -> None:
    bad = deployment(
        replicas=-1,
        template=template(restartPolicy="Never"),
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}},
    )
    causes = msgs(validate_builtin(DEPLOY, bad, None))
    assert (
        "spec.template.spec.restartPolicy",
        'Unsupported value: "Never": supported values: "Always"',
    ) in causes
    assert (
        "spec.strategy.rollingUpdate.maxUnavailable",
        "Invalid value: 0%: may not be 0 when `maxSurge` is 0",
    ) in causes
    assert ("spec.replicas", "Invalid value: -1: must be greater than or equal to 0") in causes
    recreate = deployment(strategy={"type": "Recreate", "rollingUpdate": {}})
    assert msgs(validate_builtin(DEPLOY, recreate, None)) == [
        ("spec.strategy.rollingUpdate", "Forbidden: may not be specified when strategy `type` is 'Recreate'")
    ]
    percent = deployment(strategy={"rollingUpdate": {"maxSurge": "ten"}})
    assert msgs(validate_builtin(DEPLOY, percent, None))[0][0] == "spec.strategy.rollingUpdate.maxSurge"


def test_deployment_selector_is_immutable() -> None:
    old = deployment()
    new = deployment(
        selector={"matchLabels": {"app": "web", "v": "2"}}, template=template({"app": "web", "v": "2"})
    )
    assert msgs(validate_builtin(DEPLOY, new, old)) == [
        (
            "spec.selector",
            'Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "v":"2"}, '
            "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable",
        )
    ]
    scaled = deployment(replicas=5)
    assert validate_builtin(DEPLOY, scaled, old) == []


def test_statefulset_update_forbidden_fields() -> None:
    old = {
        "metadata": meta(),
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(),
            "serviceName": "a",
            "replicas": 1,
        },
    }
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 3
    assert validate_builtin(STS, new, old) == []
    new["spec"]["serviceName"] = "b"
    causes = validate_builtin(STS, new, old)
    assert [c.field for c in causes] == ["spec"]
    assert "updates to statefulset spec for fields other than" in causes[0].message


def test_jobs() -> None:
    good = {"metadata": meta(), "spec": {"template": template(restartPolicy="Never"), "backoffLimit": 3}}
    assert validate_builtin(JOB, good, None) == []
    bad = {
        "metadata": meta(),
        "spec": {"template": template(), "parallelism": -1, "completionMode": "Indexed"},
    }
    causes = msgs(validate_builtin(JOB, bad, None))
    assert causes == [
        ("spec.parallelism", "Invalid value: -1: must be greater than or equal to 0"),
        ("spec.completions", "Required value: when completion mode is Indexed"),
        (
            "spec.template.spec.restartPolicy",
            'Unsupported value: "Always": supported values: "OnFailure", "Never"',
        ),
    ]
    changed = copy.deepcopy(good)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox"
    assert [c.field for c in validate_builtin(JOB, changed, good)] == ["spec.template"]
    assert validate_builtin(JOB, good, good) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"holderIdentity": "me", "leaseDurationSeconds": 15}, []),
        (
            {"leaseDurationSeconds": 0},
            [("spec.leaseDurationSeconds", "Invalid value: 0: must be greater than 0")],
        ),
        (
            {"leaseTransitions": -1},
            [("spec.leaseTransitions", "Invalid value: -1: must be greater than or equal to 0")],
        ),
    ],
)
def test_leases(spec: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert msgs(validate_builtin(LEASE, {"metadata": meta("l"), "spec": spec}, None)) == expected


def test_unknown_kinds_get_metadata_checks_only() -> None:
    rtype = ResourceType("example.com", "v1", "things", "Thing", True)
    assert validate_builtin(rtype, {"metadata": meta(), "spec": {"anything": -1}}, None) == []
    assert [c.field for c in validate_builtin(rtype, {"metadata": meta("UP")}, None)] == ["metadata.name"]
