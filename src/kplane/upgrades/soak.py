"""Soak checks run after each restart: is the control plane healthy at its new level?

- readiness: ``/readyz`` answers 200;
- API error rate: the share of 5xx answers in ``apiserver_request_total`` since the restart (the counters
  start at zero with the new process), at most :data:`MAX_ERROR_RATE`;
- every stored object readable: every served resource (every group/version) lists without error;
- a watch that survives the restart: a watch opened before the restart resumes afterwards from the last
  resourceVersion it saw (as client-go's reflector does) and receives a change made after it, with no
  410 Gone in between.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx2 as httpx
import orjson
from lightkube import Client

from kplane.upgrades.inspect import served_resources
from kplane.upgrades.kapi import ApiUnavailable, get_raw, list_items, send

MAX_ERROR_RATE = 0.01
PROBE_NAMESPACE = "kube-system"
PROBE_NAME = "kplane-upgrade-probe"
_REQUESTS = re.compile(r'^apiserver_request_total\{([^}]*)\}\s+(\S+)')
_CODE = re.compile(r'code="(\d+)"')


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


@dataclass
class SoakReport:
    checks: list[CheckResult] = field(default_factory=list)
    objects: dict[str, int] = field(default_factory=dict)  # "group/version/resource" → items listed

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.ok]


def request_totals(metrics_text: str) -> tuple[float, float]:
    """(all requests, 5xx answers) from ``apiserver_request_total`` samples."""
    total = errors = 0.0
    for line in metrics_text.splitlines():
        match = _REQUESTS.match(line)
        if match is None:
            continue
        value = float(match.group(2))
        total += value
        code = _CODE.search(match.group(1))
        if code is not None and code.group(1).startswith("5"):
            errors += value
    return total, errors


def error_rate_check(before: tuple[float, float], after: tuple[float, float],
                     limit: float = MAX_ERROR_RATE) -> CheckResult:
    requests, errors = after[0] - before[0], after[1] - before[1]
    if requests <= 0:
        return CheckResult("api-error-rate", True, "no requests counted")
    rate = errors / requests
    return CheckResult("api-error-rate", rate <= limit,
                       f"{errors:.0f} of {requests:.0f} requests answered 5xx ({rate:.2%}; limit {limit:.0%})")


def wait_ready(client: Client, timeout: float = 60.0) -> CheckResult:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            code, body = get_raw(client, "/readyz", timeout=2)
            if code == 200:
                return CheckResult("readiness", True, "/readyz ok")
            last = f"/readyz HTTP {code}: {body[:120].decode(errors='replace')}"
        except httpx.HTTPError as err:
            last = str(err) or type(err).__name__
        time.sleep(0.05)
    return CheckResult("readiness", False, f"not ready after {timeout:.0f}s: {last}")


def _metrics(client: Client) -> tuple[float, float] | None:
    code, body = get_raw(client, "/metrics")
    return request_totals(body.decode(errors="replace")) if code == 200 else None


def read_everything(client: Client, report: SoakReport) -> CheckResult:
    """List every served resource in every served version; any failure means stored data is unreadable."""
    failures: list[str] = []
    try:
        resources = served_resources(client)
    except ApiUnavailable as err:
        return CheckResult("objects-readable", False, f"discovery failed: {err}")
    for group_version, entries in sorted(resources.items()):
        prefix = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
        for entry in entries:
            if "list" not in (entry.get("verbs") or []):
                continue
            key = f"{group_version}/{entry['name']}"
            try:
                report.objects[key] = sum(1 for _ in list_items(client, f"{prefix}/{entry['name']}"))
            except (ApiUnavailable, httpx.HTTPError, ValueError) as err:
                failures.append(f"{key}: {err}")
    total = sum(report.objects.values())
    if failures:
        return CheckResult("objects-readable", False, f"{len(failures)} resource(s) unreadable: "
                           + "; ".join(failures[:5]))
    return CheckResult("objects-readable", True, f"{total} objects in {len(report.objects)} resources listed")


class WatchProbe:
    """A watch on one marker ConfigMap kept open across a restart, resuming from its last resourceVersion."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: list[str] = []  # data.step values seen in events
        self.errors: list[str] = []
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rv = ""
        self._response: httpx.Response | None = None
        self._resumed = threading.Event()
        self._resumed.set()

    def _put(self, step: str) -> str:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"step": step},
                "metadata": {"name": PROBE_NAME, "namespace": PROBE_NAMESPACE}}
        path = f"/api/v1/namespaces/{PROBE_NAMESPACE}/configmaps/{PROBE_NAME}"
        # Connection: close, so that no idle connection of ours holds the old server in its graceful shutdown.
        headers = {"Content-Type": "application/json", "Connection": "close"}
        response = send(self.client, "PUT", path, data=body, timeout=10, headers=headers)
        if response.status_code == 404:
            response = send(self.client, "POST", f"/api/v1/namespaces/{PROBE_NAMESPACE}/configmaps", data=body,
                            timeout=10, headers=headers)
        if response.status_code not in (200, 201):
            raise ApiUnavailable(f"writing the watch probe: HTTP {response.status_code}: "
                                 f"{response.content[:200].decode(errors='replace')}")
        return str(orjson.loads(response.content)["metadata"]["resourceVersion"])

    def start(self, step: str) -> None:
        self._rv = self._put(step)
        self._thread = threading.Thread(target=self._run, name="watch-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        path = f"/api/v1/namespaces/{PROBE_NAMESPACE}/configmaps"
        while not self._stop.is_set():
            self._resumed.wait()
            params = {"watch": "1", "fieldSelector": f"metadata.name={PROBE_NAME}", "resourceVersion": self._rv,
                      "timeoutSeconds": "1"}
            try:
                response = send(self.client, "GET", path, params=params, timeout=5, stream=True)
                self._response = response
                with contextlib.closing(response):
                    if response.status_code != 200:
                        self.errors.append(f"watch HTTP {response.status_code}")
                        if response.status_code == 410:
                            return
                    else:
                        for line in response.iter_lines():
                            self._event(line)
                            if self._stop.is_set():
                                return
            except Exception:  # a dropped connection, or the stream closed by interrupt(): resume, as a reflector
                self.reconnects += 1
                self._stop.wait(0.02)
            finally:
                self._response = None

    def interrupt(self) -> None:
        """Drop the open watch connection as the old server is told to stop, and hold off until
        :meth:`resume`: the old server would otherwise wait for this stream during its graceful shutdown,
        lengthening the very gap being measured. The watch then resumes from its last resourceVersion."""
        self._resumed.clear()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()

    def resume(self) -> None:
        self._resumed.set()

    def _event(self, line: str) -> None:
        if not line.strip():
            return
        event = orjson.loads(line)
        obj: Mapping[str, object] = event.get("object") or {}
        if event.get("type") == "ERROR":
            self.errors.append(f"watch error event: {obj.get('message')}")
            if obj.get("code") == 410:
                self._stop.set()
            return
        meta = obj.get("metadata")
        if isinstance(meta, Mapping) and meta.get("resourceVersion"):
            self._rv = str(meta["resourceVersion"])
        data = obj.get("data")
        if isinstance(data, Mapping) and "step" in data:
            self.seen.append(str(data["step"]))

    def finish(self, step: str, timeout: float = 15.0) -> CheckResult:
        """Change the marker after the restart and wait for the open watch to report it."""
        self.resume()
        try:
            self._put(step)
        except (ApiUnavailable, httpx.HTTPError) as err:
            self._stop.set()
            return CheckResult("watch-survives-restart", False, str(err))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and step not in self.seen and not self.errors:
            time.sleep(0.02)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.errors:
            return CheckResult("watch-survives-restart", False, "; ".join(self.errors))
        if step not in self.seen:
            return CheckResult("watch-survives-restart", False, f"the watch did not see the change {step!r} "
                               f"within {timeout:.0f}s")
        return CheckResult("watch-survives-restart", True,
                           f"resumed after {self.reconnects} reconnect(s) with no event lost")

    def abandon(self) -> None:
        self._stop.set()
        self._resumed.set()


def soak(client: Client, probe: WatchProbe | None, step: str, ready_timeout: float = 60.0) -> SoakReport:
    """All checks, in order; the error rate covers every request since the restart, the checks' included."""
    report = SoakReport()
    ready = wait_ready(client, ready_timeout)
    report.checks.append(ready)
    if not ready.ok:
        if probe is not None:
            probe.abandon()
        return report
    if probe is not None:
        report.checks.append(probe.finish(step))
    report.checks.append(read_everything(client, report))
    after = _metrics(client)
    if after is not None:
        report.checks.append(error_rate_check((0.0, 0.0), after))
    else:
        report.checks.append(CheckResult("api-error-rate", False, "/metrics is not readable"))
    return report
