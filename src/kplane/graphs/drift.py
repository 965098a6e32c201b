"""When a child need not be applied again: the instance controller's memory of its own applies.

kro re-applies every child on every reconcile, and most reconciles are caused by children's status changing
(a Deployment's replicas becoming available). A server-side apply of an unchanged body is a no-op for the
object but not for the API server and the controller, so the instance controller remembers, per child, the
body it last applied and the object that apply returned. The next pass skips the apply when the body is the
same and the live object still carries every field of it. Anything else (another writer changed one of
those fields, the child was deleted or is terminating, the graph or the instance changed the body) means
applying again, which is how drift is corrected.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

BOOKKEEPING = ("resourceVersion", "managedFields", "generation")
"""Metadata the server rewrites on every write, status writes included: not part of what kro set."""


def digest(value: Any) -> bytes:
    return hashlib.blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()


def shape(obj: Mapping[str, Any]) -> bytes:
    """A digest of everything but status and bookkeeping: it changes when anyone changes what kro applies
    (spec, labels, annotations, finalizers, deletion), and not when only status does."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in BOOKKEEPING}
    return digest({**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta})


def resource_version(obj: Mapping[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


def behind(candidate: str, reference: str) -> bool:
    """Whether resourceVersion ``candidate`` is known to be older than ``reference``: only when both are
    numbers (kplane and etcd count up), never for opaque ones."""
    return candidate.isdigit() and reference.isdigit() and int(candidate) < int(reference)


def reflects(obj: Any, body: Any) -> bool:
    """Whether ``obj`` still carries every field of ``body`` with the same value (lists item by item): what
    a server-side apply of ``body`` would leave alone. Fields others own (a Service's allocated clusterIP, a
    Deployment's revision annotation, defaults) do not matter."""
    if isinstance(body, Mapping):
        return isinstance(obj, Mapping) and all(k in obj and reflects(obj[k], v) for k, v in body.items())
    if isinstance(body, list):
        return isinstance(obj, list) and len(obj) == len(body) and all(map(reflects, obj, body))
    return obj == body and isinstance(obj, bool) == isinstance(body, bool)


@dataclass(frozen=True)
class Applied:
    """The last apply of one child: the body sent and what the server answered."""

    body: Mapping[str, Any]
    obj: Mapping[str, Any]
    shape: bytes
    reflected: bool
    """Whether the answer carried the body as sent. When the server rewrote some of it (a null dropped, a
    value normalised), the body cannot be compared with later versions, and the whole shape is instead."""

    @classmethod
    def of(cls, body: Mapping[str, Any], response: Mapping[str, Any]) -> Applied:
        return cls(body, response, shape(response), reflects(response, body))

    @property
    def resource_version(self) -> str:
        return resource_version(self.obj)


def still_applied(last: Applied | None, body: Mapping[str, Any], live: Mapping[str, Any] | None,
                  cache_version: str | None) -> Mapping[str, Any] | None:
    """The object to observe when ``last`` still stands for ``body``; ``None`` when the body must be applied.

    ``live`` is the cached child (``None`` when the cache has none) and ``cache_version`` the last
    resourceVersion the cache has seen: a cache that is behind the apply has simply not caught up, while a
    cache that is past it and lacks the child saw it deleted. A terminating child is applied again, as kro
    does on every pass.
    """
    if last is None or last.body != body:
        return None
    applied_version = last.resource_version
    if live is None:
        return last.obj if behind(cache_version or "", applied_version) else None
    live_version = resource_version(live)
    if behind(live_version, applied_version):
        return last.obj
    if live_version == applied_version:
        return live
    if (live.get("metadata") or {}).get("deletionTimestamp"):
        return None
    unchanged = reflects(live, body) if last.reflected else shape(live) == last.shape
    return live if unchanged else None
