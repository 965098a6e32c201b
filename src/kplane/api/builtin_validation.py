"""Semantic validation of built-in kinds: the rules upstream writes in Go rather than in the schema.

:func:`validate_builtin` is the one entry point the API server calls after schema validation. It checks
object metadata with each kind's name rule (``pkg/apis/*/validation``: most kinds take DNS-1123 subdomain
names, Namespaces DNS-1123 labels, Services DNS-1035 labels) and then the kind's own rules, found by
(group, plural). Kinds without rules here get the metadata checks only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kplane.api import builtin_validation_apps as apps
from kplane.api import builtin_validation_core as core
from kplane.api import builtin_validation_dra as dra
from kplane.api import builtin_validation_dra_slice as dra_slice
from kplane.api import names
from kplane.api.builtin_validation_meta import NameFn, validate_object_meta
from kplane.api.resources import ResourceType
from kplane.api.status import Cause

KindRule = Callable[[Mapping[str, Any], Mapping[str, Any] | None], list[Cause]]

NAME_RULES: dict[tuple[str, str], NameFn] = {
    ("", "namespaces"): names.name_is_dns_label,
    ("", "services"): names.name_is_dns1035_label,
}

KIND_RULES: dict[tuple[str, str], KindRule] = {
    ("", "pods"): core.validate_pod,
    ("", "services"): core.validate_service,
    ("", "configmaps"): core.validate_configmap,
    ("", "secrets"): core.validate_secret,
    ("", "namespaces"): core.validate_namespace,
    ("", "nodes"): core.validate_node,
    ("", "endpoints"): core.validate_endpoints,
    ("", "events"): core.validate_event,
    ("apps", "deployments"): apps.validate_deployment,
    ("apps", "replicasets"): apps.validate_replicaset,
    ("apps", "statefulsets"): apps.validate_statefulset,
    ("apps", "daemonsets"): apps.validate_daemonset,
    ("batch", "jobs"): apps.validate_job,
    ("coordination.k8s.io", "leases"): apps.validate_lease,
    **dra.KIND_RULES,
    **dra_slice.KIND_RULES,
}


def validate_builtin(rtype: ResourceType, obj: Mapping[str, Any],
                     old: Mapping[str, Any] | None) -> list[Cause]:
    """All causes for ``obj`` (``old`` is the stored object on update, else ``None``); empty when valid."""
    key = (rtype.group, rtype.plural)
    name_fn = NAME_RULES.get(key, names.name_is_dns_subdomain)
    causes = validate_object_meta(obj, rtype.namespaced, name_fn)
    rule = KIND_RULES.get(key)
    if rule is not None:
        causes += rule(obj, old)
    for extra in dra.EXTRA_RULES.get(key, ()):
        causes += extra(obj, old)
    return causes
