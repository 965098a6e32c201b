"""The default scheduler: a pure placement function and a controller that binds pending pods.

Talks to the API through lightkube only, so it runs unchanged against the embedded server or a real cluster.
"""

from kplane.scheduler.placement import (
    DEFAULT_FILTERS,
    FilterStatus,
    NodeInfo,
    NodeUsage,
    PlacementResult,
    PodInfo,
    place,
)
from kplane.scheduler.scheduler import SCHEDULER_NAME, Scheduler, run_scheduler

__all__ = [
    "DEFAULT_FILTERS",
    "SCHEDULER_NAME",
    "FilterStatus",
    "NodeInfo",
    "NodeUsage",
    "PlacementResult",
    "PodInfo",
    "Scheduler",
    "place",
    "run_scheduler",
]
