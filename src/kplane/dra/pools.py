"""Which resource pools a node can use: node selection, generations, completeness, validity and order.

Semantics of ``GatherPools`` in k8s.io/dynamic-resource-allocation ``structured/internal/incubating/
pools_incubating.go`` (v0.36.2): only the newest generation of a pool counts; a pool with fewer slices than
``resourceSliceCount`` is re-checked against every slice of the cluster (obsolete → dropped, still short →
incomplete); duplicate device or counter-set names and consumption of unknown counters make a pool invalid.
Order as in 1.36: pools by (driver, pool), slices by name, pools with binding conditions last."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from kplane.dra.features import Features
from kplane.dra.model import Obj, Slice


class NodeSelectorError(ValueError):
    """A node selector that upstream's nodeaffinity.NewNodeSelector refuses."""


@dataclass(eq=False)
class Pool:
    driver: str
    name: str
    incomplete: bool = False
    invalid: bool = False
    invalid_reason: str = ""
    slices: list[Slice] = field(default_factory=list)
    """Device slices targeting the node, sorted by name."""
    other_slices: list[Slice] = field(default_factory=list)
    """Device slices of the pool for other nodes (their allocated devices still consume shared counters)."""
    counter_sets: dict[str, dict[str, Fraction]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.driver}/{self.name}"


_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


def _requirement_matches(req: Obj, values: Mapping[str, str]) -> bool:
    key, op, wanted = req.get("key") or "", req.get("operator"), [str(v) for v in req.get("values") or ()]
    present, have = key in values, values.get(key)
    if op == "In":
        return present and have in wanted
    if op == "NotIn":
        return not present or have not in wanted
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    try:
        left, right = int(str(have)), int(wanted[0])
    except (ValueError, IndexError):
        return False
    return present and (left > right if op == "Gt" else left < right)


def _check_selector(selector: Obj) -> None:
    for term in selector.get("nodeSelectorTerms") or ():
        for req in [*(term.get("matchExpressions") or ()), *(term.get("matchFields") or ())]:
            if req.get("operator") not in _OPERATORS:
                raise NodeSelectorError(f"{req.get('operator')!r} is not a valid node selector operator")
        for req in term.get("matchFields") or ():
            if req.get("key") != "metadata.name":
                raise NodeSelectorError(f"{req.get('key')!r} is not a valid field selector key")


def selector_matches(node: Obj | None, selector: Obj) -> bool:
    """core/v1 NodeSelector semantics (k8s.io/component-helpers nodeaffinity): terms are ORed, a term's
    requirements ANDed, an empty term matches nothing."""
    _check_selector(selector)
    if node is None:
        return False
    meta = node.get("metadata") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    fields = {"metadata.name": str(meta.get("name") or "")}
    for term in selector.get("nodeSelectorTerms") or ():
        exprs, flds = term.get("matchExpressions") or (), term.get("matchFields") or ()
        if not exprs and not flds:
            continue
        if all(_requirement_matches(r, labels) for r in exprs) and all(_requirement_matches(r, fields) for r in flds):
            return True
    return False


def node_matches(node: Obj | None, node_name: str, all_nodes: bool, selector: Obj | None) -> bool:
    if node_name:
        return node is not None and (node.get("metadata") or {}).get("name") == node_name
    if all_nodes:
        return True
    if selector is not None:
        return selector_matches(node, selector)
    return False


def _relevant(slice_: Slice, node: Obj | None) -> bool:
    if slice_.counter_sets:
        return True
    try:
        if slice_.node_name or slice_.all_nodes or slice_.node_selector is not None:
            return node_matches(node, slice_.node_name, slice_.all_nodes, slice_.node_selector)
        if slice_.per_device:
            return any(node_matches(node, d.node_name, d.all_nodes, d.node_selector) for d in slice_.devices)
    except NodeSelectorError as err:
        raise NodeSelectorError(f"failed to perform node selection for slice {slice_.name}: {err}") from None
    return False


def _newest(slices: Sequence[Slice]) -> dict[tuple[str, str], list[Slice]]:
    pools: dict[tuple[str, str], list[Slice]] = {}
    for s in slices:
        key = (s.driver, s.pool)
        current = pools.get(key)
        if current is None or s.generation > current[0].generation:
            pools[key] = [s]
        elif s.generation == current[0].generation:
            current.append(s)
    return pools


def _validate(pool: Pool, device_slices: Sequence[Slice], counter_slices: Sequence[Slice], features: Features,
              other_slices: Sequence[Slice]) -> None:
    names: set[str] = set()
    for s in device_slices:
        for d in s.devices:
            if d.name in names:
                pool.invalid, pool.invalid_reason = True, f"duplicate device name {d.name}"
                return
            names.add(d.name)
    if not features.partitionable_devices:
        return
    for s in counter_slices:
        for name, counters in s.counter_sets:
            if name in pool.counter_sets:
                pool.invalid, pool.invalid_reason = True, f"duplicate counter set name {name}"
                return
            pool.counter_sets[name] = counters
    for s in [*device_slices, *other_slices]:
        for d in s.devices:
            for set_name, counters in d.consumes:
                available = pool.counter_sets.get(set_name)
                if available is None:
                    pool.invalid, pool.invalid_reason = True, f"counter set {set_name} not found"
                    return
                for counter in counters:
                    if counter not in available:
                        pool.invalid = True
                        pool.invalid_reason = f"counter {counter} not found in counter set {set_name}"
                        return


def _build(driver: str, name: str, slices: list[Slice], features: Features, all_of_pool: list[Slice] | None) -> Pool:
    slices = sorted(slices, key=lambda s: s.name)
    pool = Pool(driver, name)
    if features.partitionable_devices:
        device_slices = [s for s in slices if not s.counter_sets]
        counter_slices = [s for s in slices if s.counter_sets]
    else:
        device_slices, counter_slices = slices, []
    targeting = {id(s) for s in slices}
    others = sorted((s for s in all_of_pool or () if id(s) not in targeting and not s.counter_sets),
                    key=lambda s: s.name) if features.partitionable_devices else []
    _validate(pool, device_slices, counter_slices, features, others)
    if not pool.invalid:
        pool.slices, pool.other_slices = device_slices, others
    return pool


class SliceIndex:
    """A cluster's parsed slices, indexed so that a node's pools cost what its own slices cost.

    A scheduler tries every node for every pod; scanning all slices per node makes that quadratic in the
    number of nodes. A slice that names another node (and defines no shared counters) can never be relevant
    (``_relevant``), so only the node's own slices and the node-independent ones are looked at. The pools of
    a node are remembered per node object and feature set: :class:`Pool` is read-only to the allocator, and
    the index itself is immutable (build a new one when slices change)."""

    def __init__(self, slices: Sequence[Slice]) -> None:
        self.slices: tuple[Slice, ...] = tuple(slices)
        self._by_node: dict[str, list[Slice]] = {}
        self._general: list[Slice] = []
        self._by_pool: dict[tuple[str, str], list[Slice]] = {}
        for s in self.slices:
            if s.node_name and not s.counter_sets:
                self._by_node.setdefault(s.node_name, []).append(s)
            else:
                self._general.append(s)
            self._by_pool.setdefault((s.driver, s.pool), []).append(s)
        self._pools: dict[str, tuple[Obj | None, Features, list[Pool]]] = {}

    def candidates(self, node: Obj | None) -> list[Slice]:
        """Every slice that may be relevant to ``node`` (a superset of those ``_relevant`` accepts)."""
        name = str(((node or {}).get("metadata") or {}).get("name") or "")
        return [*self._by_node.get(name, ()), *self._general] if name else list(self._general)

    def of_pool(self, driver: str, pool: str) -> list[Slice]:
        return list(self._by_pool.get((driver, pool), ()))

    def pools(self, node: Obj | None, features: Features) -> list[Pool]:
        """``gather_pools`` for ``node``, computed once per node object (compared by identity)."""
        name = str(((node or {}).get("metadata") or {}).get("name") or "")
        known = self._pools.get(name)
        if known is not None and known[0] is node and known[1] == features:
            return known[2]
        pools = gather_pools(node, self, features)
        self._pools[name] = (node, features, pools)
        return pools


def gather_pools(node: Obj | None, slices: Sequence[Slice] | SliceIndex, features: Features) -> list[Pool]:
    """The pools usable on ``node``, in allocation order; NodeSelectorError for a selector upstream refuses."""
    index = slices if isinstance(slices, SliceIndex) else SliceIndex(slices)
    candidates = [
        s for s in index.candidates(node)
        if (features.partitionable_devices or not s.uses_partitionable_fields) and _relevant(s, node)
    ]
    plain: list[Pool] = []
    binding: list[Pool] = []
    for (driver, name), pool_slices in _newest(candidates).items():
        generation, wanted = pool_slices[0].generation, pool_slices[0].slice_count
        all_of_pool: list[Slice] | None = None
        if len(pool_slices) != wanted:
            same = index.of_pool(driver, name)
            if any(s.generation > generation for s in same):
                continue
            all_of_pool = [s for s in same if s.generation == generation]
            if len(all_of_pool) != wanted:
                plain.append(Pool(driver, name, incomplete=True))
                continue
        pool = _build(driver, name, pool_slices, features, all_of_pool)
        has_binding = any(d.binding_conditions for s in pool.slices for d in s.devices)
        (binding if has_binding else plain).append(pool)
    order: Any = lambda p: (p.driver, p.name)  # noqa: E731
    return sorted(plain, key=order) + sorted(binding, key=order)


def merge_requirements(source: Sequence[Obj], target: list[Obj]) -> None:
    """Add node selector requirements not present yet (same key, operator and set of values)."""
    for req in source:
        values = set(req.get("values") or ())
        if not any(t.get("key") == req.get("key") and t.get("operator") == req.get("operator")
                   and set(t.get("values") or ()) == values for t in target):
            target.append(dict(req))
