"""Built-in kinds' columns for ``kubectl get``: kubectl's server-side printers, as data plus row functions.

Facts from ``pkg/printers/internalversion/printers.go``: the columns, their order and priority (1 = shown only
with ``-o wide``), how a pod's STATUS is derived, ages in kubectl's HumanDuration. Column descriptions quote the
upstream SwaggerDoc texts (first sentence where they are long).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

NAME_DESC = ("Name must be unique within a namespace. Is required when creating resources, although some "
             "resources may allow a client to request the generation of an appropriate name automatically. "
             "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
             "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
CREATED_DESC = ("CreationTimestamp is a timestamp representing the server time when this object was "
                "created. It is not guaranteed to be set in happens-before order across separate operations. "
                "Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\n"
                "Populated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/"
                "contributors/devel/sig-architecture/api-conventions.md#metadata")
CONTAINERS_DESC = "Names of each container in the template."
IMAGES_DESC = "Images referenced by each container in the template."
READY_PODS_DESC = "Number of the pod with ready state"

Column = tuple[str, str, str, int]  # name, type, description, priority
Row = list[Any]
Printer = Callable[[Mapping[str, Any], datetime], Row]


def human_duration(seconds: float) -> str:
    """apimachinery's ``duration.HumanDuration``: two significant units while small, one when large."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        rest = secs % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y{rest}d" if rest else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(value: Any, now: datetime) -> str:
    """``translateTimestampSince``: ``<unknown>`` for an unset time."""
    when = parse_time(value)
    if when is None:
        return "<unknown>"
    return human_duration((now - when).total_seconds())


def object_meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _get(obj: Any, *path: str | int) -> Any:
    for key in path:
        if isinstance(key, int):
            obj = obj[key] if isinstance(obj, list) and -len(obj) <= key < len(obj) else None
        else:
            obj = obj.get(key) if isinstance(obj, Mapping) else None
    return obj


def object_name(obj: Mapping[str, Any]) -> str:
    return str(object_meta(obj).get("name", ""))


def _created(obj: Mapping[str, Any], now: datetime) -> str:
    return age(object_meta(obj).get("creationTimestamp"), now)


def format_labels(labels: Mapping[str, Any] | None) -> str:
    if not labels:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def format_selector(selector: Mapping[str, Any] | None) -> str:
    """``metav1.FormatLabelSelector``: ``<none>`` when nil or empty, else the selector string."""
    if not selector:
        return "<none>"
    parts = [(k, f"{k}={v}") for k, v in (selector.get("matchLabels") or {}).items()]
    for req in selector.get("matchExpressions") or []:
        op, key, values = req.get("operator"), req.get("key", ""), sorted(req.get("values") or [])
        text = {"In": f"{key} in ({','.join(values)})", "NotIn": f"{key} notin ({','.join(values)})",
                "Exists": key, "DoesNotExist": f"!{key}"}.get(str(op))
        if text is not None:
            parts.append((key, text))
    # LabelSelectorAsSelector sorts requirements by key before printing them.
    return ",".join(text for _, text in sorted(parts, key=lambda p: p[0])) or "<none>"


def _containers(template_spec: Any) -> tuple[str, str]:
    containers = _get(template_spec, "containers") or []
    return (",".join(str(c.get("name", "")) for c in containers),
            ",".join(str(c.get("image", "")) for c in containers))


# --- pods -------------------------------------------------------------------------------------------


def _terminated_reason(state: Mapping[str, Any], prefix: str) -> str:
    if state.get("reason"):
        return prefix + state["reason"]
    if state.get("signal"):
        return f"{prefix}Signal:{state['signal']}"
    return f"{prefix}ExitCode:{state.get('exitCode', 0)}"


def _later(current: datetime | None, status: Mapping[str, Any]) -> datetime | None:
    finished = parse_time(_get(status, "lastState", "terminated", "finishedAt"))
    if finished and (current is None or finished > current):
        return finished
    return current


def _pod_status(pod: Mapping[str, Any]) -> tuple[str, int, int, datetime | None]:
    """Status text, ready count, restarts, last restart, following printPod's precedence rules."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase = status.get("phase", "")
    reason = status.get("reason") or phase
    conditions = status.get("conditions") or []
    if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated" for c in conditions):
        reason = "SchedulingGated"
    sidecars = {c.get("name") for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"}
    ready = restarts = sidecar_restarts = 0
    last: datetime | None = None
    sidecar_last: datetime | None = None
    initializing = False
    init_total = len(spec.get("initContainers") or [])
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(cs.get("restartCount") or 0)
        last = _later(last, cs)
        state = cs.get("state") or {}
        if cs.get("name") in sidecars:
            sidecar_restarts += int(cs.get("restartCount") or 0)
            sidecar_last = _later(sidecar_last, cs)
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
            continue
        if cs.get("name") in sidecars and cs.get("started"):
            ready += 1 if cs.get("ready") else 0
            continue
        if terminated is not None:
            reason = _terminated_reason(terminated, "Init:")
        elif waiting and waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{init_total}"
        initializing = True
        break
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True" for c in conditions)
    if not initializing or initialized:
        restarts, last = sidecar_restarts, sidecar_last
        running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last = _later(last, cs)
            state = cs.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None:
                reason = _terminated_reason(terminated, "")
            elif cs.get("ready") and state.get("running") is not None:
                running = True
                ready += 1
        if reason == "Completed" and running:
            pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            reason = "Running" if pod_ready else "NotReady"
    if object_meta(pod).get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return reason, ready, restarts, last


def _pod(pod: Mapping[str, Any], now: datetime) -> Row:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    reason, ready, restarts, last = _pod_status(pod)
    sidecars = sum(1 for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always")
    total = len(spec.get("containers") or []) + sidecars
    restarts_text = str(restarts)
    if restarts and last is not None:
        restarts_text = f"{restarts} ({human_duration((now - last).total_seconds())} ago)"
    gates = spec.get("readinessGates") or []
    gates_text = "<none>"
    if gates:
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        passed = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
        gates_text = f"{passed}/{len(gates)}"
    return [object_name(pod), f"{ready}/{total}", reason, restarts_text, _created(pod, now),
            _get(status, "podIPs", 0, "ip") or "<none>", spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>", gates_text]


def pod_conditions(pod: Mapping[str, Any]) -> list[dict[str, str]] | None:
    phase = _get(pod, "status", "phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return None


# --- workloads --------------------------------------------------------------------------------------


def _deployment(obj: Mapping[str, Any], now: datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(_get(spec, "template", "spec"))
    return [object_name(obj), f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0), _created(obj, now),
            names, images, format_selector(spec.get("selector")).replace("<none>", "")]


def _replicaset(obj: Mapping[str, Any], now: datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(_get(spec, "template", "spec"))
    return [object_name(obj), spec.get("replicas", 0), status.get("replicas", 0),
            status.get("readyReplicas", 0), _created(obj, now), names, images,
            format_selector(spec.get("selector"))]


def _statefulset(obj: Mapping[str, Any], now: datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(_get(spec, "template", "spec"))
    return [object_name(obj), f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            _created(obj, now), names, images]


def _daemonset(obj: Mapping[str, Any], now: datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(_get(spec, "template", "spec"))
    return [object_name(obj), status.get("desiredNumberScheduled", 0),
            status.get("currentNumberScheduled", 0), status.get("numberReady", 0),
            status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0),
            format_labels(_get(spec, "template", "spec", "nodeSelector")), _created(obj, now), names, images,
            format_selector(spec.get("selector"))]


def _job_condition(status: Mapping[str, Any], kind: str) -> bool:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            return bool(cond.get("status") == "True")
    return False


def _job(obj: Mapping[str, Any], now: datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    succeeded = status.get("succeeded", 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif int(spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    duration = "" if start is None else human_duration(((end or now) - start).total_seconds())
    if _job_condition(status, "Complete"):
        state = "Complete"
    elif _job_condition(status, "Failed"):
        state = "Failed"
    elif object_meta(obj).get("deletionTimestamp"):
        state = "Terminating"
    elif _job_condition(status, "Suspended"):
        state = "Suspended"
    elif _job_condition(status, "FailureTarget"):
        state = "FailureTarget"
    else:
        state = "Running"
    names, images = _containers(_get(spec, "template", "spec"))
    return [object_name(obj), state, completions, duration, _created(obj, now), names, images,
            format_selector(spec.get("selector"))]


# --- core -------------------------------------------------------------------------------------------


def _external_ip(svc: Mapping[str, Any]) -> str:
    spec = svc.get("spec") or {}
    kind, external = spec.get("type", "ClusterIP"), spec.get("externalIPs") or []
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        ingress = _get(svc, "status", "loadBalancer", "ingress") or []
        lb = sorted({i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")})
        if external:
            return ",".join([*lb, *external])
        return ",".join(lb) if lb else "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


def _service(obj: Mapping[str, Any], now: datetime) -> Row:
    spec = obj.get("spec") or {}
    ports = []
    for p in spec.get("ports") or []:
        node = f":{p['nodePort']}" if p.get("nodePort") else ""
        ports.append(f"{p.get('port', 0)}{node}/{p.get('protocol', 'TCP')}")
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [object_name(obj), spec.get("type", "ClusterIP"),
            cluster_ips[0] if cluster_ips else "<none>", _external_ip(obj), ",".join(ports) or "<none>",
            _created(obj, now), format_labels(spec.get("selector"))]


def _endpoints_text(obj: Mapping[str, Any]) -> str:
    subsets = obj.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    for subset in subsets:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        # net.JoinHostPort: IPv6 addresses get brackets; every port pairs with every address.
        entries = addresses if not ports else [
            f"[{ip}]:{p.get('port')}" if ":" in ip else f"{ip}:{p.get('port')}"
            for p in ports for ip in addresses]
        count += len(entries)
        shown.extend(entries[:max(0, 3 - len(shown))])
    text = ",".join(shown)
    return f"{text} + {count - 3} more..." if count > 3 else text


def _secret(obj: Mapping[str, Any], now: datetime) -> Row:
    keys = set(obj.get("data") or {}) | set(obj.get("stringData") or {})
    return [object_name(obj), obj.get("type", "Opaque"), len(keys), _created(obj, now)]


def _node_roles(labels: Mapping[str, Any]) -> str:
    roles = set()
    for key, value in labels.items():
        if key.startswith("node-role.kubernetes.io/") and key[len("node-role.kubernetes.io/"):]:
            roles.add(key[len("node-role.kubernetes.io/"):])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(obj: Mapping[str, Any], kind: str) -> str:
    for address in _get(obj, "status", "addresses") or []:
        if address.get("type") == kind:
            return str(address.get("address", ""))
    return "<none>"


def _node(obj: Mapping[str, Any], now: datetime) -> Row:
    status = obj.get("status") or {}
    states = [("Ready" if c.get("status") == "True" else "NotReady")
              for c in status.get("conditions") or [] if c.get("type") == "Ready"][-1:] or ["Unknown"]
    if _get(obj, "spec", "unschedulable"):
        states.append("SchedulingDisabled")
    info = status.get("nodeInfo") or {}
    return [object_name(obj), ",".join(states), _node_roles(object_meta(obj).get("labels") or {}),
            _created(obj, now), info.get("kubeletVersion", ""), _node_address(obj, "InternalIP"),
            _node_address(obj, "ExternalIP"), info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>", info.get("containerRuntimeVersion") or "<unknown>"]


def _event(obj: Mapping[str, Any], now: datetime) -> Row:
    first = age(obj.get("firstTimestamp") or obj.get("eventTime"), now)
    last = age(obj.get("lastTimestamp"), now) if obj.get("lastTimestamp") else first
    count = obj.get("count") or 0
    if obj.get("series"):
        last = age(_get(obj, "series", "lastObservedTime"), now)
        count = _get(obj, "series", "count") or 0
    elif not count:
        count = 1
    involved = obj.get("involvedObject") or {}
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = obj.get("source") or {}
    component = source.get("component") or obj.get("reportingComponent") or ""
    host = source.get("host") or obj.get("reportingInstance") or ""
    return [last, obj.get("type", ""), obj.get("reason", ""), target, involved.get("fieldPath", ""),
            f"{component}, {host}" if host else component, str(obj.get("message", "")).strip(), first, count,
            object_name(obj)]


def _c(name: str, kind: str = "string", desc: str = "", priority: int = 0) -> Column:
    return (name, kind, desc, priority)


NAME_COLUMN = _c("Name", "string", NAME_DESC)
_AGE = _c("Age", "string", CREATED_DESC)
_WIDE_TEMPLATE = (_c("Containers", desc=CONTAINERS_DESC, priority=1),
                  _c("Images", desc=IMAGES_DESC, priority=1))


_WIDE = 1
_POD_SELECTOR = _c("Selector", desc="A label query over pods that should match the replica count.",
                   priority=_WIDE)

BUILTIN_PRINTERS: dict[tuple[str, str], tuple[tuple[Column, ...], Printer]] = {
    ("", "pods"): ((
        NAME_COLUMN, _c("Ready", desc="The aggregate readiness state of this pod for accepting traffic."),
        _c("Status", desc="The aggregate status of the containers in this pod."),
        _c("Restarts", desc="The number of times the containers in this pod have been restarted and when "
                            "the last container in this pod has restarted."),
        _AGE, _c("IP", desc="podIP address allocated to the pod.", priority=_WIDE),
        _c("Node", desc="NodeName indicates in which node this pod is scheduled.", priority=_WIDE),
        _c("Nominated Node", desc="nominatedNodeName is set only when this pod preempts other pods.",
           priority=_WIDE),
        _c("Readiness Gates", desc="If specified, all readiness gates will be evaluated for pod readiness.",
           priority=_WIDE)), _pod),
    ("apps", "deployments"): ((
        NAME_COLUMN, _c("Ready", desc=READY_PODS_DESC),
        _c("Up-to-date", desc="Total number of non-terminating pods targeted by this deployment that have "
                              "the desired template spec."),
        _c("Available", desc="Total number of available non-terminating pods targeted by this deployment."),
        _AGE, *_WIDE_TEMPLATE, _c("Selector", desc="Label selector for pods.", priority=_WIDE)), _deployment),
    ("apps", "replicasets"): ((
        NAME_COLUMN, _c("Desired", "integer", "Replicas is the number of desired pods."),
        _c("Current", "integer", "Replicas is the most recently observed number of non-terminating pods."),
        _c("Ready", "integer", "The number of non-terminating pods targeted by this ReplicaSet with a "
                               "Ready Condition."),
        _AGE, *_WIDE_TEMPLATE, _POD_SELECTOR), _replicaset),
    ("apps", "statefulsets"): ((NAME_COLUMN, _c("Ready", desc=READY_PODS_DESC), _AGE, *_WIDE_TEMPLATE),
                               _statefulset),
    ("apps", "daemonsets"): ((
        NAME_COLUMN, _c("Desired", "integer", "The total number of nodes that should be running the daemon pod."),
        _c("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are "
                                 "supposed to run the daemon pod."),
        _c("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or "
                               "more of the daemon pod running with a Ready Condition."),
        _c("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
        _c("Available", "integer", "The number of nodes that should be running the daemon pod and have one "
                                   "or more of the daemon pod running and available."),
        _c("Node Selector", desc="NodeSelector is a selector which must be true for the pod to fit."),
        _AGE, *_WIDE_TEMPLATE, _POD_SELECTOR), _daemonset),
    ("batch", "jobs"): ((
        NAME_COLUMN, _c("Status", desc="Status of the job."),
        _c("Completions", desc="The number of pods which reached phase Succeeded."),
        _c("Duration", desc="Time required to complete the job."), _AGE, *_WIDE_TEMPLATE,
        _c("Selector", desc="A label query over pods that should match the pod count.", priority=_WIDE)),
        _job),
    ("", "services"): ((
        NAME_COLUMN, _c("Type", desc="type determines how the Service is exposed."),
        _c("Cluster-IP", desc="clusterIP is the IP address of the service."),
        _c("External-IP", desc="externalIPs is a list of IP addresses for which nodes in the cluster will "
                               "also accept traffic for this service."),
        _c("Port(s)", desc="The list of ports that are exposed by this service."), _AGE,
        _c("Selector", desc="Route service traffic to pods with labels matching this selector.",
           priority=_WIDE)),
        _service),
    ("", "endpoints"): ((NAME_COLUMN, _c("Endpoints", desc="The set of all endpoints is the union of all subsets."),
                         _AGE), lambda o, now: [object_name(o), _endpoints_text(o), _created(o, now)]),
    ("", "namespaces"): ((NAME_COLUMN, _c("Status", desc="The status of the namespace"), _AGE),
                         lambda o, now: [object_name(o), _get(o, "status", "phase") or "", _created(o, now)]),
    ("", "configmaps"): ((NAME_COLUMN, _c("Data", desc="Data contains the configuration data."), _AGE),
                         lambda o, now: [object_name(o), len(o.get("data") or {}) + len(o.get("binaryData") or {}),
                                         _created(o, now)]),
    ("", "secrets"): ((NAME_COLUMN, _c("Type", desc="Used to facilitate programmatic handling of secret data."),
                       _c("Data", desc="Data contains the secret data."), _AGE), _secret),
    ("", "serviceaccounts"): ((NAME_COLUMN, _c("Secrets", desc="Secrets is a list of the secrets in the same "
                                                        "namespace that pods running using this "
                                                        "ServiceAccount are allowed to use."), _AGE),
                              lambda o, now: [object_name(o), len(o.get("secrets") or []), _created(o, now)]),
    ("", "nodes"): ((
        NAME_COLUMN, _c("Status", desc="The status of the node"), _c("Roles", desc="The roles of the node"), _AGE,
        _c("Version", desc="Kubelet Version reported by the node."),
        _c("Internal-IP", desc="List of addresses reachable to the node.", priority=_WIDE),
        _c("External-IP", desc="List of addresses reachable to the node.", priority=_WIDE),
        _c("OS-Image", desc="OS Image reported by the node from /etc/os-release.", priority=_WIDE),
        _c("Kernel-Version", desc="Kernel Version reported by the node from 'uname -r'.", priority=_WIDE),
        _c("Container-Runtime", desc="ContainerRuntime Version reported by the node.", priority=_WIDE)),
        _node),
    ("", "events"): ((
        _c("Last Seen", desc="The time at which the most recent occurrence of this event was recorded."),
        _c("Type", desc="Type of this event (Normal, Warning), new types could be added in the future"),
        _c("Reason", desc="A short, machine understandable string that gives the reason for the "
                          "transition into the object's current status."),
        _c("Object", desc="The object that this event is about."),
        _c("Subobject", desc="The piece of the object the event is about.", priority=_WIDE),
        _c("Source", desc="The component reporting this event.", priority=_WIDE),
        _c("Message", desc="A human-readable description of the status of this operation."),
        _c("First Seen", desc="The time at which the event was first recorded.", priority=_WIDE),
        _c("Count", desc="The number of times this event has occurred.", priority=_WIDE),
        _c("Name", desc=NAME_DESC, priority=_WIDE)), _event),
    ("coordination.k8s.io", "leases"): ((
        NAME_COLUMN, _c("Holder", desc="holderIdentity contains the identity of the holder of a current lease."),
        _AGE), lambda o, now: [object_name(o), _get(o, "spec", "holderIdentity") or "", _created(o, now)]),
}
