"""core/v1 Events for the scheduler, with client-go's repeat handling.

A repeat of the same reason and message for the same object bumps `count` and `lastTimestamp` of the Event
already written instead of adding another (k8s.io/client-go/tools/record/events_cache.go), so a pod that
stays unschedulable shows `(x5 over 2m)` in `kubectl describe`, not five rows. Names follow client-go:
`<object name>.<hex nanoseconds>`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event
from lightkube.types import PatchType

from kplane.runtime.errors import is_namespace_terminating


@dataclass
class _Written:
    name: str
    count: int


class EventRecorder:
    def __init__(self, client: AsyncClient, component: str) -> None:
        self.client = client
        self.component = component
        self._written: dict[tuple[str, str, str, str, str], _Written] = {}

    async def record(self, involved: ObjectReference, event_type: str, reason: str, message: str) -> None:
        namespace = involved.namespace or "default"
        key = (namespace, involved.name or "", involved.uid or "", reason, message)
        now = datetime.now(UTC).replace(microsecond=0)
        seen = self._written.get(key)
        if seen is not None:
            try:
                await self.client.patch(
                    Event,
                    seen.name,
                    {"count": seen.count + 1, "lastTimestamp": now.isoformat().replace("+00:00", "Z")},
                    namespace=namespace,
                    patch_type=PatchType.MERGE,
                )
                seen.count += 1
                return
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
        name = f"{involved.name}.{time.time_ns():x}"
        event = Event(
            metadata=ObjectMeta(name=name, namespace=namespace),
            involvedObject=involved,
            type=event_type,
            reason=reason,
            message=message,
            count=1,
            firstTimestamp=now,
            lastTimestamp=now,
            source=EventSource(component=self.component),
            reportingComponent=self.component,
            reportingInstance=self.component,
        )
        try:
            await self.client.create(event)
        except ApiError as exc:
            if is_namespace_terminating(exc):
                return  # the object and its events go with the namespace; client-go drops such events too
            raise
        self._written[key] = _Written(name, 1)

    def forget(self, namespace: str, name: str) -> None:
        """Drop memory of an object's events once it is gone."""
        for key in [k for k in self._written if k[0] == namespace and k[1] == name]:
            del self._written[key]
