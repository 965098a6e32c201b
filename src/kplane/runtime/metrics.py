"""Prometheus metrics for controllers, named after controller-runtime's so existing dashboards fit.

Names follow sigs.k8s.io/controller-runtime/pkg/internal/controller/metrics/metrics.go
(`controller_runtime_reconcile_total{controller,result}`, `..._reconcile_errors_total`,
`..._reconcile_time_seconds`) and client-go's workqueue metrics (`workqueue_depth`), labelled by controller.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

RESULT_SUCCESS = "success"
RESULT_ERROR = "error"
RESULT_REQUEUE = "requeue"
RESULT_REQUEUE_AFTER = "requeue_after"


@dataclass(frozen=True)
class ControllerMetrics:
    queue_depth: Gauge
    reconcile_total: Counter
    reconcile_errors: Counter
    reconcile_time: Histogram


_by_registry: dict[int, ControllerMetrics] = {}


def metrics_for(registry: CollectorRegistry | None = None) -> ControllerMetrics:
    """The metric family set for `registry`, created once: prometheus-client refuses duplicate names."""
    registry = registry if registry is not None else REGISTRY
    found = _by_registry.get(id(registry))
    if found is not None:
        return found
    metrics = ControllerMetrics(
        queue_depth=Gauge(
            "workqueue_depth", "Current depth of the work queue.", ["controller"], registry=registry
        ),
        reconcile_total=Counter(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller.",
            ["controller", "result"],
            registry=registry,
        ),
        reconcile_errors=Counter(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller.",
            ["controller"],
            registry=registry,
        ),
        reconcile_time=Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller.",
            ["controller"],
            registry=registry,
        ),
    )
    _by_registry[id(registry)] = metrics
    return metrics
