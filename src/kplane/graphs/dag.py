"""kro's DAG (``pkg/graph/dag/dag.go``): Kahn's order with declaration-order tie-breaks, cycles as paths.

The topological sort pops ready nodes from a min-heap keyed by (declaration index, id), so the published
``topologicalOrder`` follows the author's order wherever dependencies allow. A cycle is reported as the path
that closes it, ``graph contains a cycle: a -> b -> a``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence


class CycleError(ValueError):
    """The dependencies form a cycle; ``cycle`` is the closed path (first node repeated at the end)."""

    def __init__(self, cycle: list[str]) -> None:
        super().__init__(f"graph contains a cycle: {' -> '.join(cycle)}")
        self.cycle = cycle


def find_cycle(nodes: Sequence[str], deps: Mapping[str, Iterable[str]]) -> list[str] | None:
    """The first cycle a depth-first walk in declaration order meets, as a closed path."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in deps.get(node, ()):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in nodes:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def topological_order(nodes: Sequence[str], deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Dependencies before dependents; ties by declaration index then id. :class:`CycleError` on a cycle."""
    cycle = find_cycle(nodes, deps)
    if cycle:
        raise CycleError(cycle)
    index = {node: i for i, node in enumerate(nodes)}
    waiting = {node: len(set(deps.get(node, ()))) for node in nodes}
    dependents: dict[str, list[str]] = {node: [] for node in nodes}
    for node in nodes:
        for dep in set(deps.get(node, ())):
            dependents[dep].append(node)
    heap = [(index[n], n) for n in nodes if waiting[n] == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        _, node = heapq.heappop(heap)
        order.append(node)
        for dependent in dependents[node]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(heap, (index[dependent], dependent))
    return order


def reverse_layers(nodes: Sequence[str], deps: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Deletion waves: dependents before their dependencies, each wave in declaration order."""
    index = {node: i for i, node in enumerate(nodes)}
    dependents: dict[str, set[str]] = {node: set() for node in nodes}
    for node in nodes:
        for dep in deps.get(node, ()):
            dependents[dep].add(node)
    remaining = set(nodes)
    layers: list[list[str]] = []
    while remaining:
        layer = sorted((n for n in remaining if not dependents[n] & remaining), key=index.__getitem__)
        if not layer:
            raise CycleError(find_cycle(sorted(remaining, key=index.__getitem__), deps) or sorted(remaining))
        layers.append(layer)
        remaining -= set(layer)
    return layers
