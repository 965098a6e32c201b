"""The informer's in-memory cache: objects by namespace/name key, plus secondary indices.

Modelled on client-go's thread-safe store with indexers (k8s.io/client-go/tools/cache/thread_safe_store.go):
an index function maps an object to zero or more index values, and `by_index` answers "which keys have
value V" without scanning. Single-threaded asyncio means no locking is needed.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kplane.runtime.objects import key_of, namespace_of, owner_references_of

IndexFunc = Callable[[Any], Iterable[str]]

NAMESPACE_INDEX = "namespace"
OWNER_UID_INDEX = "owner-uid"


def index_by_namespace(obj: Any) -> list[str]:
    return [namespace_of(obj)]


def index_by_owner_uid(obj: Any) -> list[str]:
    return [ref.uid for ref in owner_references_of(obj) if ref.uid]


def index_by_field(*path: str) -> IndexFunc:
    """An index on a nested field, e.g. `index_by_field("spec", "nodeName")`; unset fields are not indexed."""
    if not path:
        raise ValueError("index_by_field needs at least one field name")

    def index(obj: Any) -> list[str]:
        value: Any = obj
        for part in path:
            value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
            if value is None:
                return []
        return [str(value)]

    return index


class Store:
    def __init__(self, indexers: dict[str, IndexFunc] | None = None) -> None:
        self._items: dict[str, Any] = {}
        self._indexers: dict[str, IndexFunc] = {NAMESPACE_INDEX: index_by_namespace}
        self._indices: dict[str, dict[str, set[str]]] = {NAMESPACE_INDEX: {}}
        for name, func in (indexers or {}).items():
            self.add_indexer(name, func)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        """Add an index; objects already stored are indexed at once, so this may be called at any time."""
        if name in self._indexers:
            raise ValueError(f"indexer {name!r} already exists")
        self._indexers[name] = func
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._index_one(name, key, obj)

    def clear(self) -> None:
        self._items.clear()
        for index in self._indices.values():
            index.clear()

    def get(self, key: str) -> Any | None:
        return self._items.get(key)

    def list(self) -> builtins.list[Any]:
        return list(self._items.values())

    def keys(self) -> builtins.list[str]:
        return list(self._items)

    def by_index(self, index: str, value: str) -> builtins.list[Any]:
        return [self._items[key] for key in sorted(self.index_keys(index, value))]

    def index_keys(self, index: str, value: str) -> set[str]:
        if index not in self._indices:
            raise KeyError(f"no indexer named {index!r}")
        return set(self._indices[index].get(value, ()))

    def put(self, obj: Any) -> Any | None:
        """Store `obj` under its key and return the object it replaced, if any."""
        key = key_of(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name in self._indexers:
            self._index_one(name, key, obj)
        return old

    def delete(self, key: str) -> Any | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _index_one(self, name: str, key: str, obj: Any) -> None:
        index = self._indices[name]
        for value in self._indexers[name](obj):
            index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: Any) -> None:
        for name, func in self._indexers.items():
            index = self._indices[name]
            for value in func(obj):
                keys = index.get(value)
                if keys is None:
                    continue
                keys.discard(key)
                if not keys:
                    del index[value]
