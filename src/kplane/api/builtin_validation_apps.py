"""Semantic validation of workload controllers (``apps/v1``, ``batch/v1``) and ``coordination.k8s.io`` Leases.

After ``pkg/apis/apps/validation``, ``pkg/apis/batch/validation`` and ``pkg/apis/coordination/validation``.
Strategy defaults (``RollingUpdate`` with 25%/25% for Deployments, 1/0 for DaemonSets) stand in for absent
fields, as upstream validates the defaulted object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kplane.api import names
from kplane.api.builtin_validation_core import validate_pod_spec
from kplane.api.builtin_validation_meta import (
    FIELD_IMMUTABLE,
    go_value,
    int_or_string,
    invalid_raw,
    nonnegative,
    required,
    selector_is_empty,
    selector_matches,
    validate_label_selector,
    validate_template_meta,
)
from kplane.api.status import Cause, field_forbidden, field_invalid, field_unsupported

STATEFULSET_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy",
                       "persistentVolumeClaimRetentionPolicy", "minReadySeconds")
STATEFULSET_UPDATE_FORBIDDEN = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")


def _selector_text(selector: Any) -> str:
    """``%#v`` of the internal LabelSelector, as an immutable-selector error prints it (abridged)."""
    if not isinstance(selector, Mapping):
        return "null"
    labels = go_value(selector.get("matchLabels") or {}) if selector.get("matchLabels") else \
        "map[string]string(nil)"
    return f"v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}"


def _template(spec: Mapping[str, Any], kind: str, restart: list[str]) -> list[Cause]:
    """``ValidatePodTemplateSpecForReplicaSet`` (and the Job variant): labels match, policy allowed."""
    template = spec.get("template")
    if not isinstance(template, Mapping):
        return [required("spec.template")]
    labels = (template.get("metadata") or {}).get("labels") or {}
    selector = spec.get("selector")
    causes: list[Cause] = []
    if isinstance(selector, Mapping) and not selector_is_empty(selector) \
            and not selector_matches(selector, labels):
        causes.append(invalid_raw("spec.template.metadata.labels", go_value(labels),
                                  "`selector` does not match template `labels`"))
    causes += validate_template_meta(template.get("metadata"), "spec.template.metadata")
    causes += validate_pod_spec(template.get("spec"), "spec.template.spec")
    policy = (template.get("spec") or {}).get("restartPolicy") or "Always"
    if policy not in restart:
        causes.append(field_unsupported("spec.template.spec.restartPolicy", policy, restart))
    if kind != "job" and (template.get("spec") or {}).get("activeDeadlineSeconds") is not None:
        causes.append(field_forbidden("spec.template.spec.activeDeadlineSeconds",
                                      "activeDeadlineSeconds in ReplicaSet is not Supported"))
    return causes


def _selector(spec: Mapping[str, Any], noun: str) -> list[Cause]:
    selector = spec.get("selector")
    if selector is None:
        return [required("spec.selector")]
    causes = validate_label_selector("spec.selector", selector)
    if selector_is_empty(selector):
        causes.append(field_invalid("spec.selector", selector, f"empty selector is invalid for {noun}"))
    return causes


def _int_or_percent(path: str, value: Any) -> list[Cause]:
    if isinstance(value, str):
        causes = [invalid_raw(path, value, m) for m in names.is_valid_percent(value)]
        return causes
    if isinstance(value, int) and not isinstance(value, bool):
        return nonnegative(path, value)
    return [invalid_raw(path, go_value(value), "must be an integer or percentage (e.g '5%')")]


def _amount(value: Any) -> int:
    if isinstance(value, str):
        digits = value.rstrip("%")
        return int(digits) if digits.isdigit() else -1
    return int(value) if isinstance(value, int) else -1


def _rolling_update(path: str, update: Mapping[str, Any], defaults: tuple[Any, Any]) -> list[Cause]:
    """``defaults`` is (maxSurge, maxUnavailable) as the kind's defaulting would set them."""
    surge = update.get("maxSurge", defaults[0])
    unavailable = update.get("maxUnavailable", defaults[1])
    causes = _int_or_percent(f"{path}.maxUnavailable", unavailable)
    causes += _int_or_percent(f"{path}.maxSurge", surge)
    if _amount(unavailable) == 0 and _amount(surge) == 0:
        causes.append(invalid_raw(f"{path}.maxUnavailable", int_or_string(unavailable),
                                  "may not be 0 when `maxSurge` is 0"))
    if isinstance(unavailable, str) and _amount(unavailable) > 100:
        causes.append(invalid_raw(f"{path}.maxUnavailable", unavailable, "must not be greater than 100%"))
    return causes


def _deployment_strategy(strategy: Mapping[str, Any]) -> list[Cause]:
    kind = strategy.get("type") or "RollingUpdate"
    if kind == "Recreate":
        if strategy.get("rollingUpdate") is not None:
            return [field_forbidden("spec.strategy.rollingUpdate",
                                    "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if kind == "RollingUpdate":
        return _rolling_update("spec.strategy.rollingUpdate", strategy.get("rollingUpdate") or {},
                               ("25%", "25%"))
    return [field_unsupported("spec.strategy.type", kind, ["Recreate", "RollingUpdate"])]


def _replicas(spec: Mapping[str, Any]) -> list[Cause]:
    return nonnegative("spec.replicas", spec.get("replicas")) + \
        nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))


def _selector_update(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    if old is None:
        return []
    new_sel, old_sel = (obj.get("spec") or {}).get("selector"), (old.get("spec") or {}).get("selector")
    if new_sel == old_sel:
        return []
    return [invalid_raw("spec.selector", _selector_text(new_sel), FIELD_IMMUTABLE)]


def validate_deployment(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes = _selector(spec, "deployment") + _template(spec, "deployment", ["Always"])
    causes += _deployment_strategy(spec.get("strategy") or {}) + _replicas(spec)
    causes += nonnegative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    deadline, ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds") or 0
    if isinstance(deadline, int) and deadline <= ready:
        causes.append(field_invalid("spec.progressDeadlineSeconds", deadline,
                                    "must be greater than minReadySeconds"))
    return causes + _selector_update(obj, old)


def validate_replicaset(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    # Upstream's ReplicaSet check reuses the Deployment wording.
    causes = _replicas(spec) + _selector(spec, "deployment") + _template(spec, "replicaset", ["Always"])
    return causes + _selector_update(obj, old)


def validate_daemonset(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes = _selector(spec, "daemonset") + _template(spec, "daemonset", ["Always"])
    causes += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    strategy = spec.get("updateStrategy") or {}
    kind = strategy.get("type") or "RollingUpdate"
    if kind == "RollingUpdate":
        causes += _rolling_update("spec.updateStrategy.rollingUpdate", strategy.get("rollingUpdate") or {},
                                  (0, 1))
    elif kind != "OnDelete":
        causes.append(field_unsupported("spec.updateStrategy.type", kind, ["OnDelete", "RollingUpdate"]))
    return causes + _selector_update(obj, old)


def validate_statefulset(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes = _selector(spec, "statefulset") + _template(spec, "statefulset", ["Always"]) + _replicas(spec)
    policy = spec.get("podManagementPolicy")
    if policy is not None and policy not in ("OrderedReady", "Parallel"):
        causes.append(field_unsupported("spec.podManagementPolicy", policy, ["OrderedReady", "Parallel"]))
    kind = (spec.get("updateStrategy") or {}).get("type")
    if kind is not None and kind not in ("OnDelete", "RollingUpdate"):
        causes.append(field_unsupported("spec.updateStrategy.type", kind, ["OnDelete", "RollingUpdate"]))
    if old is not None:
        fixed = {k: v for k, v in spec.items() if k not in STATEFULSET_MUTABLE}
        was = {k: v for k, v in (old.get("spec") or {}).items() if k not in STATEFULSET_MUTABLE}
        if fixed != was:
            causes.append(field_forbidden("spec", STATEFULSET_UPDATE_FORBIDDEN))
    return causes


def validate_job(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    """Selector is checked only when set: the Job strategy generates it before validation upstream."""
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    if spec.get("selector") is not None:
        causes += validate_label_selector("spec.selector", spec["selector"])
    for field in ("parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished"):
        causes += nonnegative(f"spec.{field}", spec.get(field))
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and deadline <= 0:
        causes.append(field_invalid("spec.activeDeadlineSeconds", deadline, "must be greater than 0"))
    mode = spec.get("completionMode")
    if mode is not None and mode not in ("NonIndexed", "Indexed"):
        causes.append(field_unsupported("spec.completionMode", mode, ["NonIndexed", "Indexed"]))
    if mode == "Indexed" and spec.get("completions") is None:
        causes.append(required("spec.completions", "when completion mode is Indexed"))
    causes += _template(spec, "job", ["OnFailure", "Never"])
    if old is not None:
        old_spec = old.get("spec") or {}
        if spec.get("selector") != old_spec.get("selector") and old_spec.get("selector") is not None:
            causes.append(invalid_raw("spec.selector", _selector_text(spec.get("selector")), FIELD_IMMUTABLE))
        if spec.get("template") != old_spec.get("template"):
            causes.append(invalid_raw("spec.template", go_value(spec.get("template")), FIELD_IMMUTABLE))
    return causes


def validate_lease(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    duration = spec.get("leaseDurationSeconds")
    if isinstance(duration, int) and duration <= 0:
        causes.append(field_invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if isinstance(transitions, int) and transitions < 0:
        causes.append(field_invalid("spec.leaseTransitions", transitions,
                                    "must be greater than or equal to 0"))
    return causes
