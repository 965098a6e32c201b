"""The scheduler's picture of the cluster: nodes, and what the pods on each node request.

It counts pods the informer shows bound *and* pods the scheduler has just placed but not yet seen bound
("assumed", as kube-scheduler's cache calls them, pkg/scheduler/backend/cache/cache.go), so a burst of
pods placed before the watch catches up cannot over-commit a node. Terminal pods (Succeeded, Failed) free
their share, as upstream's scheduler does by not caching them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kplane.scheduler.placement import NodeInfo
from kplane.scheduler.resources import NodeUsage, Resources

log = logging.getLogger(__name__)

TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Placed:
    node: str
    requests: Resources
    assumed: bool


class ClusterView:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        self._usage: dict[str, NodeUsage] = {}
        self._placed: dict[str, Placed] = {}
        self._sorted: list[NodeInfo] | None = None
        """`node_infos`, kept until a node changes: every placement asks for it."""

    def clear(self) -> None:
        self._sorted = None
        self._nodes.clear()
        self._usage.clear()
        self._placed.clear()

    # --- nodes ---------------------------------------------------------------------------------------

    def set_node(self, node: Mapping[str, Any]) -> None:
        name = str((node.get("metadata") or {}).get("name") or "")
        self._nodes[name] = NodeInfo(node, self._usage_of(name))
        self._sorted = None

    def remove_node(self, name: str) -> None:
        self._nodes.pop(name, None)
        self._sorted = None

    def node_infos(self) -> list[NodeInfo]:
        if self._sorted is None:
            self._sorted = [self._nodes[name] for name in sorted(self._nodes)]
        return self._sorted

    def usage(self, node: str) -> NodeUsage:
        return self._usage_of(node)

    def _usage_of(self, node: str) -> NodeUsage:
        usage = self._usage.get(node)
        if usage is None:
            usage = self._usage[node] = NodeUsage()
        return usage

    # --- pods ----------------------------------------------------------------------------------------

    def is_placed(self, key: str) -> bool:
        return key in self._placed

    def is_assumed(self, key: str) -> bool:
        placed = self._placed.get(key)
        return placed is not None and placed.assumed

    def assume(self, key: str, node: str, requests: Resources) -> None:
        """Count a pod on `node` before its binding is visible."""
        self.release(key)
        self._placed[key] = Placed(node, dict(requests), assumed=True)
        self._usage_of(node).add(requests)

    def release(self, key: str) -> bool:
        """Stop counting a pod (deleted, terminal, or its binding failed); whether it was counted."""
        placed = self._placed.pop(key, None)
        if placed is None:
            return False
        self._usage_of(placed.node).remove(placed.requests)
        return True

    def observe(self, key: str, node: str | None, phase: str | None, requests: Callable[[], Resources]) -> bool:
        """Account for a pod as the informer now shows it (`requests` is called only when needed); whether
        capacity was freed, which makes a retry of pods that did not fit worthwhile."""
        placed = self._placed.get(key)
        if not node:
            # An assumed pod whose binding the watch has not delivered yet stays counted.
            if placed is not None and not placed.assumed:
                return self.release(key)
            return False
        if phase in TERMINAL_PHASES:
            return self.release(key)
        if placed is not None and placed.node == node:
            if placed.assumed:
                self._placed[key] = Placed(node, placed.requests, assumed=False)
            return False
        freed = self.release(key)
        try:
            wanted = requests()
        except ValueError as exc:
            log.warning("pod %s has unreadable requests, counting it as empty: %s", key, exc)
            wanted = {}
        self._placed[key] = Placed(node, wanted, assumed=False)
        self._usage_of(node).add(wanted)
        return freed
