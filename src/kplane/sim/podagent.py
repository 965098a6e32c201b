"""Drive pods bound to simulated nodes through the stages: the simulator's stand-in for a kubelet.

Each change to such a pod picks the first matching stage; if it differs from the one already waiting for
that pod, the wait restarts. When the delay is over the stage is checked again against the latest cached
pod, then applied: status patch (pods/status), finalizer change, Event, delete. An applied stage is
remembered with the resourceVersion it acted on, so the same object version never triggers it twice.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event, Pod
from lightkube.types import PatchType

from kplane.runtime import EventHandler, Informer, SharedInformers, key_of, split_key
from kplane.runtime.tasks import cancel_and_wait
from kplane.sim.nodes import NodeConfig
from kplane.sim.podstatus import NEEDS_POD_IP, StatusContext, render_status
from kplane.sim.stages import Stage, match_stage

log = logging.getLogger(__name__)

COMPONENT = "kubelet"
RETRY_S = 1.0
TERMINAL = ("Succeeded", "Failed")


class PodIPs:
    """Per-node pod IP allocation from the node's CIDR (network and first address kept back, as a gateway)."""

    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        self._first = int(self.network.network_address) + 2
        self._last = int(self.network.broadcast_address) - 1
        self._used: dict[str, str] = {}
        self._next = self._first

    def take(self, key: str, ip: str) -> None:
        """Note an IP already on a pod (e.g. after a restart of the simulator)."""
        self._used[ip] = key

    def allocate(self, key: str) -> str:
        size = self._last - self._first + 1
        for step in range(size):
            candidate = self._first + (self._next - self._first + step) % size
            ip = str(ipaddress.ip_address(candidate))
            if ip not in self._used:
                self._used[ip] = key
                self._next = candidate + 1
                return ip
        raise RuntimeError(f"pod CIDR {self.network} is exhausted")

    def release(self, key: str) -> None:
        for ip in [ip for ip, owner in self._used.items() if owner == key]:
            del self._used[ip]


@dataclass
class _Waiting:
    stage: Stage
    task: asyncio.Task[None] | None = None
    applying: bool = False  # past its delay and writing: never cancelled, re-checks the pod when done


class PodAgent:
    def __init__(
        self,
        client: AsyncClient,
        nodes: Sequence[NodeConfig],
        stages: Sequence[Stage],
        *,
        informers: SharedInformers | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.nodes = {config.name: config for config in nodes}
        self.stages = list(stages)
        self.informer: Informer = (informers or SharedInformers(client)).get(Pod)
        self._ips = {config.name: PodIPs(config.cidr) for config in nodes}
        self._waiting: dict[str, _Waiting] = {}
        self._applied: dict[str, tuple[str, str]] = {}
        self._deleting: set[str] = set()  # deleted already; waiting only for finalizers to go
        self._rng = rng or random.Random()

    async def run(self) -> None:
        handler = self.informer.add_handler(
            EventHandler(self._changed, lambda _old, new: self._changed(new), self._deleted)
        )
        self.informer.start()
        try:
            await asyncio.Event().wait()
        finally:
            self.informer.remove_handler(handler)
            waiting, self._waiting = list(self._waiting.values()), {}
            await cancel_and_wait(*(w.task for w in waiting if w.task is not None))
            await self.informer.stop()

    # --- events ---------------------------------------------------------------------------------------

    def _changed(self, pod: Any) -> None:
        node = pod.spec.nodeName if pod.spec is not None else None
        if node not in self.nodes:
            return
        key = key_of(pod)
        obj = pod.to_dict()
        self._track_ip(key, node, obj)
        stage = match_stage(obj, self.stages)
        waiting = self._waiting.get(key)
        if waiting is not None:
            if waiting.applying or waiting.stage is stage:
                return
            self._cancel(key)
        if stage is None or self._applied.get(key) == (stage.name, obj["metadata"].get("resourceVersion")):
            return
        if stage.next.delete and key in self._deleting:
            return
        self._schedule(key, stage, stage.delay.seconds(obj, datetime.now(UTC), self._rng.random))

    def _deleted(self, pod: Any) -> None:
        key = key_of(pod)
        self._cancel(key)
        self._applied.pop(key, None)
        self._deleting.discard(key)
        node = pod.spec.nodeName if pod.spec is not None else None
        if node in self._ips:
            self._ips[node].release(key)

    def _track_ip(self, key: str, node: str, obj: Mapping[str, Any]) -> None:
        status = obj.get("status") or {}
        if status.get("phase") in TERMINAL:
            self._ips[node].release(key)
        elif status.get("podIP") and not (obj.get("spec") or {}).get("hostNetwork"):
            self._ips[node].take(key, str(status["podIP"]))

    def _schedule(self, key: str, stage: Stage, delay: float) -> None:
        waiting = _Waiting(stage)
        waiting.task = asyncio.get_running_loop().create_task(
            self._after(key, waiting, delay), name=f"stage {stage.name} {key}"
        )
        self._waiting[key] = waiting

    def _cancel(self, key: str) -> None:
        waiting = self._waiting.pop(key, None)
        if waiting is not None and waiting.task is not None:
            waiting.task.cancel()

    # --- applying a stage ------------------------------------------------------------------------------

    async def _after(self, key: str, waiting: _Waiting, delay: float) -> None:
        stage = waiting.stage
        if delay > 0:
            await asyncio.sleep(delay)
        pod = self.informer.store.get(key)
        obj = pod.to_dict() if pod is not None else None
        if obj is None or match_stage(obj, self.stages) is not stage:
            self._waiting.pop(key, None)
            return
        waiting.applying = True
        retry = False
        try:
            await self._apply(key, stage, obj)
            self._applied[key] = (stage.name, str(obj["metadata"].get("resourceVersion")))
        except ApiError as exc:
            retry = exc.status.code != 404
            log.warning("stage %s for pod %s failed: %s", stage.name, key, exc.status.message)
        except Exception:
            log.exception("stage %s for pod %s failed", stage.name, key)
        if self._waiting.get(key) is not waiting:
            return
        del self._waiting[key]
        if retry:
            self._schedule(key, stage, RETRY_S)
            return
        latest = self.informer.store.get(key)
        if latest is not None:
            self._changed(latest)

    async def _apply(self, key: str, stage: Stage, obj: Mapping[str, Any]) -> None:
        namespace, name = split_key(key)
        action = stage.next
        if action.patches_status:
            status = render_status(action.status_template, action.status, obj, self._context(key, stage, obj))
            await self.client.patch(
                Pod.Status, name, {"status": status}, namespace=namespace, patch_type=PatchType.MERGE
            )
        if action.finalizers is not None:
            finalizers = action.finalizers.apply(obj["metadata"].get("finalizers") or [])
            patch = {
                "metadata": {
                    "finalizers": finalizers or None,
                    "resourceVersion": obj["metadata"].get("resourceVersion"),
                }
            }
            await self.client.patch(Pod, name, patch, namespace=namespace, patch_type=PatchType.MERGE)
        if action.event is not None:
            await self._event(obj, action.event.type, action.event.reason, action.event.message)
        if action.delete:
            await self.client.delete(Pod, name, namespace=namespace, grace_period=0)
            self._deleting.add(key)

    def _context(self, key: str, stage: Stage, obj: Mapping[str, Any]) -> StatusContext:
        node = self.nodes[str(obj["spec"]["nodeName"])]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        pod_ip = (obj.get("status") or {}).get("podIP")
        if (obj.get("spec") or {}).get("hostNetwork"):
            pod_ip = node.internal_ip
        elif not pod_ip and stage.next.status_template in NEEDS_POD_IP:
            pod_ip = self._ips[node.name].allocate(key)
        return StatusContext(now=now, host_ip=node.internal_ip, pod_ip=pod_ip)

    async def _event(self, obj: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        now = datetime.now(UTC).replace(microsecond=0)
        event = Event(
            metadata=ObjectMeta(name=f"{meta['name']}.{time.time_ns():x}", namespace=meta.get("namespace")),
            involvedObject=ObjectReference(
                apiVersion="v1", kind="Pod", name=meta["name"], namespace=meta.get("namespace"), uid=meta.get("uid")
            ),
            type=kind,
            reason=reason,
            message=message,
            count=1,
            firstTimestamp=now,
            lastTimestamp=now,
            source=EventSource(component=COMPONENT, host=str(obj["spec"]["nodeName"])),
            reportingComponent=COMPONENT,
            reportingInstance=str(obj["spec"]["nodeName"]),
        )
        await self.client.create(event)
