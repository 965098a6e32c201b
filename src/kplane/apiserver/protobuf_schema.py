"""Message tables for the Kubernetes protobuf objects that kubectl's typed commands POST.

Field numbers and wire types come from upstream ``generated.proto`` files; JSON names, declaration order
and presence (pointer, ``omitempty`` or always written) come from the matching ``types.go``:

- k8s.io/apimachinery ``pkg/apis/meta/v1/generated.proto`` + ``types.go`` (ObjectMeta, LabelSelector, …)
- k8s.io/apimachinery ``pkg/util/intstr/generated.proto`` (IntOrString {type=1, intVal=2, strVal=3})
- k8s.io/apimachinery ``pkg/api/resource/generated.proto`` (Quantity {string=1})
- k8s.io/api ``core/v1``, ``apps/v1``, ``batch/v1``, ``authentication/v1``, ``authorization/v1``
  ``generated.proto`` + ``types.go``

Only the fields these commands can set are listed; a field missing here is skipped by the decoder, as an
unknown field would be. Entries are written in Go struct order, which is the order Go's JSON encoder uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Presence(Enum):
    """When the Go JSON encoder writes a field.

    gogo-protobuf writes every non-pointer field even when empty, so wire presence alone cannot decide;
    the Go type and json tag do.
    """

    OMITEMPTY = "omitempty"  # value field tagged omitempty: dropped when zero/empty
    POINTER = "pointer"  # pointer field: written whenever it was set, even to a zero value
    ALWAYS = "always"  # value field without omitempty, or a struct: written even when zero


# Scalar kinds; any other kind names a message in MESSAGES.
STRING = "string"
BYTES = "bytes"
INT32 = "int32"
INT64 = "int64"
BOOL = "bool"
TIME = "time"  # meta/v1 Time {seconds=1, nanos=2} → RFC 3339, seconds precision
INT_OR_STRING = "intstr"  # util/intstr IntOrString
QUANTITY = "quantity"  # api/resource Quantity {string=1} → its string

VARINT_KINDS = frozenset({INT32, INT64, BOOL})
LENGTH_KINDS = frozenset({STRING, BYTES, TIME, INT_OR_STRING, QUANTITY})


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    presence: Presence = Presence.OMITEMPTY
    repeated: bool = False
    map_value: str | None = None  # set for map<string, map_value>
    inline: bool = False  # embedded Go struct: its fields join the parent's JSON object


def opt(name: str, kind: str) -> Field:
    return Field(name, kind)


def ptr(name: str, kind: str) -> Field:
    return Field(name, kind, Presence.POINTER)


def req(name: str, kind: str) -> Field:
    return Field(name, kind, Presence.ALWAYS)


def rep(name: str, kind: str) -> Field:
    return Field(name, kind, repeated=True)


def smap(name: str, value_kind: str = STRING) -> Field:
    return Field(name, "map", map_value=value_kind)


def inline(kind: str) -> Field:
    return Field("", kind, Presence.ALWAYS, inline=True)


Message = dict[int, Field]

META: dict[str, Message] = {
    "ObjectMeta": {
        1: opt("name", STRING),
        2: opt("generateName", STRING),
        3: opt("namespace", STRING),
        4: opt("selfLink", STRING),
        5: opt("uid", STRING),
        6: opt("resourceVersion", STRING),
        7: opt("generation", INT64),
        8: opt("creationTimestamp", TIME),
        9: ptr("deletionTimestamp", TIME),
        10: ptr("deletionGracePeriodSeconds", INT64),
        11: smap("labels"),
        12: smap("annotations"),
        13: rep("ownerReferences", "OwnerReference"),
        14: rep("finalizers", STRING),
    },
    "OwnerReference": {
        5: req("apiVersion", STRING),
        1: req("kind", STRING),
        3: req("name", STRING),
        4: req("uid", STRING),
        6: ptr("controller", BOOL),
        7: ptr("blockOwnerDeletion", BOOL),
    },
    "LabelSelector": {
        1: smap("matchLabels"),
        2: rep("matchExpressions", "LabelSelectorRequirement"),
    },
    "LabelSelectorRequirement": {
        1: req("key", STRING),
        2: req("operator", STRING),
        3: rep("values", STRING),
    },
    "Condition": {
        1: req("type", STRING),
        2: req("status", STRING),
        3: opt("observedGeneration", INT64),
        4: req("lastTransitionTime", TIME),
        5: req("reason", STRING),
        6: req("message", STRING),
    },
}

CORE: dict[str, Message] = {
    "Namespace": {1: req("metadata", "ObjectMeta"), 2: req("spec", "NamespaceSpec"),
                  3: req("status", "NamespaceStatus")},
    "NamespaceSpec": {1: rep("finalizers", STRING)},
    "NamespaceStatus": {1: opt("phase", STRING), 2: rep("conditions", "NamespaceCondition")},
    "NamespaceCondition": {
        1: req("type", STRING),
        2: req("status", STRING),
        4: opt("lastTransitionTime", TIME),
        5: opt("reason", STRING),
        6: opt("message", STRING),
    },
    "ConfigMap": {
        1: req("metadata", "ObjectMeta"),
        4: ptr("immutable", BOOL),
        2: smap("data"),
        3: smap("binaryData", BYTES),
    },
    "Secret": {
        1: req("metadata", "ObjectMeta"),
        5: ptr("immutable", BOOL),
        2: smap("data", BYTES),
        4: smap("stringData"),
        3: opt("type", STRING),
    },
    "ServiceAccount": {
        1: req("metadata", "ObjectMeta"),
        2: rep("secrets", "ObjectReference"),
        3: rep("imagePullSecrets", "LocalObjectReference"),
        4: ptr("automountServiceAccountToken", BOOL),
    },
    "ObjectReference": {
        1: opt("kind", STRING),
        2: opt("namespace", STRING),
        3: opt("name", STRING),
        4: opt("uid", STRING),
        5: opt("apiVersion", STRING),
        6: opt("resourceVersion", STRING),
        7: opt("fieldPath", STRING),
    },
    "LocalObjectReference": {1: opt("name", STRING)},
    "Service": {1: req("metadata", "ObjectMeta"), 2: req("spec", "ServiceSpec"),
                3: req("status", "ServiceStatus")},
    "ServiceSpec": {
        1: rep("ports", "ServicePort"),
        2: smap("selector"),
        3: opt("clusterIP", STRING),
        18: rep("clusterIPs", STRING),
        4: opt("type", STRING),
        5: rep("externalIPs", STRING),
        7: opt("sessionAffinity", STRING),
        8: opt("loadBalancerIP", STRING),
        9: rep("loadBalancerSourceRanges", STRING),
        10: opt("externalName", STRING),
        11: opt("externalTrafficPolicy", STRING),
        12: opt("healthCheckNodePort", INT32),
        13: opt("publishNotReadyAddresses", BOOL),
        19: rep("ipFamilies", STRING),
        17: ptr("ipFamilyPolicy", STRING),
        20: ptr("allocateLoadBalancerNodePorts", BOOL),
        21: ptr("loadBalancerClass", STRING),
        22: ptr("internalTrafficPolicy", STRING),
        23: ptr("trafficDistribution", STRING),
    },
    "ServicePort": {
        1: opt("name", STRING),
        2: opt("protocol", STRING),
        6: ptr("appProtocol", STRING),
        3: req("port", INT32),
        4: req("targetPort", INT_OR_STRING),
        5: opt("nodePort", INT32),
    },
    "ServiceStatus": {1: req("loadBalancer", "LoadBalancerStatus"), 2: rep("conditions", "Condition")},
    "LoadBalancerStatus": {},
    "PodTemplateSpec": {1: req("metadata", "ObjectMeta"), 2: req("spec", "PodSpec")},
    "PodSpec": {
        20: rep("initContainers", "Container"),
        2: rep("containers", "Container"),
        3: opt("restartPolicy", STRING),
        4: ptr("terminationGracePeriodSeconds", INT64),
        5: ptr("activeDeadlineSeconds", INT64),
        6: opt("dnsPolicy", STRING),
        7: smap("nodeSelector"),
        8: opt("serviceAccountName", STRING),
        9: opt("serviceAccount", STRING),
        21: ptr("automountServiceAccountToken", BOOL),
        10: opt("nodeName", STRING),
        11: opt("hostNetwork", BOOL),
        12: opt("hostPID", BOOL),
        13: opt("hostIPC", BOOL),
        27: ptr("shareProcessNamespace", BOOL),
        14: ptr("securityContext", "PodSecurityContext"),
        15: rep("imagePullSecrets", "LocalObjectReference"),
        16: opt("hostname", STRING),
        17: opt("subdomain", STRING),
        19: opt("schedulerName", STRING),
        22: rep("tolerations", "Toleration"),
        24: opt("priorityClassName", STRING),
        25: ptr("priority", INT32),
        29: ptr("runtimeClassName", STRING),
        30: ptr("enableServiceLinks", BOOL),
        31: ptr("preemptionPolicy", STRING),
        35: ptr("setHostnameAsFQDN", BOOL),
        37: ptr("hostUsers", BOOL),
    },
    "Container": {
        1: req("name", STRING),
        2: opt("image", STRING),
        3: rep("command", STRING),
        4: rep("args", STRING),
        5: opt("workingDir", STRING),
        6: rep("ports", "ContainerPort"),
        19: rep("envFrom", "EnvFromSource"),
        7: rep("env", "EnvVar"),
        8: req("resources", "ResourceRequirements"),
        24: ptr("restartPolicy", STRING),
        9: rep("volumeMounts", "VolumeMount"),
        13: opt("terminationMessagePath", STRING),
        20: opt("terminationMessagePolicy", STRING),
        14: opt("imagePullPolicy", STRING),
        15: ptr("securityContext", "SecurityContext"),
        16: opt("stdin", BOOL),
        17: opt("stdinOnce", BOOL),
        18: opt("tty", BOOL),
    },
    "ContainerPort": {
        1: opt("name", STRING),
        2: opt("hostPort", INT32),
        3: req("containerPort", INT32),
        4: opt("protocol", STRING),
        5: opt("hostIP", STRING),
    },
    "EnvVar": {1: req("name", STRING), 2: opt("value", STRING), 3: ptr("valueFrom", "EnvVarSource")},
    "EnvVarSource": {
        1: ptr("fieldRef", "ObjectFieldSelector"),
        2: ptr("resourceFieldRef", "ResourceFieldSelector"),
        3: ptr("configMapKeyRef", "ConfigMapKeySelector"),
        4: ptr("secretKeyRef", "SecretKeySelector"),
    },
    "ObjectFieldSelector": {1: opt("apiVersion", STRING), 2: req("fieldPath", STRING)},
    "ResourceFieldSelector": {
        1: opt("containerName", STRING),
        2: req("resource", STRING),
        3: ptr("divisor", QUANTITY),
    },
    "ConfigMapKeySelector": {1: inline("LocalObjectReference"), 2: req("key", STRING),
                             3: ptr("optional", BOOL)},
    "SecretKeySelector": {1: inline("LocalObjectReference"), 2: req("key", STRING), 3: ptr("optional", BOOL)},
    "EnvFromSource": {
        1: opt("prefix", STRING),
        2: ptr("configMapRef", "ConfigMapEnvSource"),
        3: ptr("secretRef", "SecretEnvSource"),
    },
    "ConfigMapEnvSource": {1: inline("LocalObjectReference"), 2: ptr("optional", BOOL)},
    "SecretEnvSource": {1: inline("LocalObjectReference"), 2: ptr("optional", BOOL)},
    "ResourceRequirements": {1: smap("limits", QUANTITY), 2: smap("requests", QUANTITY)},
    "VolumeMount": {
        1: req("name", STRING),
        2: opt("readOnly", BOOL),
        7: ptr("recursiveReadOnly", STRING),
        3: req("mountPath", STRING),
        4: opt("subPath", STRING),
        5: ptr("mountPropagation", STRING),
        6: opt("subPathExpr", STRING),
    },
    "PodSecurityContext": {
        2: ptr("runAsUser", INT64),
        6: ptr("runAsGroup", INT64),
        3: ptr("runAsNonRoot", BOOL),
        4: rep("supplementalGroups", INT64),
        12: ptr("supplementalGroupsPolicy", STRING),
        5: ptr("fsGroup", INT64),
        9: ptr("fsGroupChangePolicy", STRING),
        13: ptr("seLinuxChangePolicy", STRING),
    },
    "SecurityContext": {
        2: ptr("privileged", BOOL),
        4: ptr("runAsUser", INT64),
        8: ptr("runAsGroup", INT64),
        5: ptr("runAsNonRoot", BOOL),
        6: ptr("readOnlyRootFilesystem", BOOL),
        7: ptr("allowPrivilegeEscalation", BOOL),
        9: ptr("procMount", STRING),
    },
    "Toleration": {
        1: opt("key", STRING),
        2: opt("operator", STRING),
        3: opt("value", STRING),
        4: opt("effect", STRING),
        5: ptr("tolerationSeconds", INT64),
    },
}

APPS: dict[str, Message] = {
    "Deployment": {1: req("metadata", "ObjectMeta"), 2: req("spec", "DeploymentSpec"),
                   3: req("status", "DeploymentStatus")},
    "DeploymentSpec": {
        1: ptr("replicas", INT32),
        2: ptr("selector", "LabelSelector"),
        3: req("template", "PodTemplateSpec"),
        4: req("strategy", "DeploymentStrategy"),
        5: opt("minReadySeconds", INT32),
        6: ptr("revisionHistoryLimit", INT32),
        7: opt("paused", BOOL),
        9: ptr("progressDeadlineSeconds", INT32),
    },
    "DeploymentStrategy": {1: opt("type", STRING), 2: ptr("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: ptr("maxUnavailable", INT_OR_STRING), 2: ptr("maxSurge", INT_OR_STRING)},
    "DeploymentStatus": {
        1: opt("observedGeneration", INT64),
        2: opt("replicas", INT32),
        3: opt("updatedReplicas", INT32),
        7: opt("readyReplicas", INT32),
        4: opt("availableReplicas", INT32),
        5: opt("unavailableReplicas", INT32),
        9: ptr("terminatingReplicas", INT32),
        6: rep("conditions", "DeploymentCondition"),
        8: ptr("collisionCount", INT32),
    },
    "DeploymentCondition": {
        1: req("type", STRING),
        2: req("status", STRING),
        6: opt("lastUpdateTime", TIME),
        7: opt("lastTransitionTime", TIME),
        4: opt("reason", STRING),
        5: opt("message", STRING),
    },
}

BATCH: dict[str, Message] = {
    "Job": {1: req("metadata", "ObjectMeta"), 2: req("spec", "JobSpec"), 3: req("status", "JobStatus")},
    "JobSpec": {
        1: ptr("parallelism", INT32),
        2: ptr("completions", INT32),
        3: ptr("activeDeadlineSeconds", INT64),
        7: ptr("backoffLimit", INT32),
        12: ptr("backoffLimitPerIndex", INT32),
        13: ptr("maxFailedIndexes", INT32),
        4: ptr("selector", "LabelSelector"),
        5: ptr("manualSelector", BOOL),
        6: req("template", "PodTemplateSpec"),
        8: ptr("ttlSecondsAfterFinished", INT32),
        9: ptr("completionMode", STRING),
        10: ptr("suspend", BOOL),
        14: ptr("podReplacementPolicy", STRING),
        15: ptr("managedBy", STRING),
    },
    "JobStatus": {
        1: rep("conditions", "JobCondition"),
        2: ptr("startTime", TIME),
        3: ptr("completionTime", TIME),
        4: opt("active", INT32),
        5: opt("succeeded", INT32),
        6: opt("failed", INT32),
        11: ptr("terminating", INT32),
        7: opt("completedIndexes", STRING),
        10: ptr("failedIndexes", STRING),
        9: ptr("ready", INT32),
    },
    "JobCondition": {
        1: req("type", STRING),
        2: req("status", STRING),
        3: opt("lastProbeTime", TIME),
        4: opt("lastTransitionTime", TIME),
        5: opt("reason", STRING),
        6: opt("message", STRING),
    },
    "CronJob": {1: req("metadata", "ObjectMeta"), 2: req("spec", "CronJobSpec"),
                3: req("status", "CronJobStatus")},
    "CronJobSpec": {
        1: req("schedule", STRING),
        8: ptr("timeZone", STRING),
        2: ptr("startingDeadlineSeconds", INT64),
        3: opt("concurrencyPolicy", STRING),
        4: ptr("suspend", BOOL),
        5: req("jobTemplate", "JobTemplateSpec"),
        6: ptr("successfulJobsHistoryLimit", INT32),
        7: ptr("failedJobsHistoryLimit", INT32),
    },
    "CronJobStatus": {
        1: rep("active", "ObjectReference"),
        4: ptr("lastScheduleTime", TIME),
        5: ptr("lastSuccessfulTime", TIME),
    },
    "JobTemplateSpec": {1: req("metadata", "ObjectMeta"), 2: req("spec", "JobSpec")},
}

# `kubectl create token` and `kubectl auth can-i` (python-k8s.md §1.4).
AUTH: dict[str, Message] = {
    "TokenRequest": {1: req("metadata", "ObjectMeta"), 2: req("spec", "TokenRequestSpec"),
                     3: req("status", "TokenRequestStatus")},
    "TokenRequestSpec": {
        1: rep("audiences", STRING),
        4: ptr("expirationSeconds", INT64),
        3: ptr("boundObjectRef", "BoundObjectReference"),
    },
    "BoundObjectReference": {
        1: opt("kind", STRING),
        2: opt("apiVersion", STRING),
        3: opt("name", STRING),
        4: opt("uid", STRING),
    },
    "TokenRequestStatus": {1: req("token", STRING), 2: req("expirationTimestamp", TIME)},
    "SelfSubjectAccessReview": {
        1: req("metadata", "ObjectMeta"),
        2: req("spec", "SelfSubjectAccessReviewSpec"),
        3: req("status", "SubjectAccessReviewStatus"),
    },
    "SelfSubjectAccessReviewSpec": {
        1: ptr("resourceAttributes", "ResourceAttributes"),
        2: ptr("nonResourceAttributes", "NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: opt("namespace", STRING),
        2: opt("verb", STRING),
        3: opt("group", STRING),
        4: opt("version", STRING),
        5: opt("resource", STRING),
        6: opt("subresource", STRING),
        7: opt("name", STRING),
    },
    "NonResourceAttributes": {1: opt("path", STRING), 2: opt("verb", STRING)},
    "SubjectAccessReviewStatus": {
        1: req("allowed", BOOL),
        4: opt("denied", BOOL),
        2: opt("reason", STRING),
        3: opt("evaluationError", STRING),
    },
}

MESSAGES: dict[str, Message] = {**META, **CORE, **APPS, **BATCH, **AUTH}

# (apiVersion, kind) of the envelope → top-level message.
OBJECTS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Service"): "Service",
    ("apps/v1", "Deployment"): "Deployment",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
}
