"""Two controller processes with leader election against a real `kplane up` never reconcile at once.

Each process runs this file as a script (see `worker` below): a Manager with a Lease-based elector and a
ConfigMap controller whose reconcile logs its start and end times. The test keeps ConfigMaps changing,
crashes the first leader (SIGKILL, so the lease is not handed back), lets the second take over after the
lease expires, starts a third process, then stops the second one gracefully (it hands the lease back).
Finally it checks that no two processes' reconcile intervals overlap, and that every process led once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube.resources.core_v1 import ConfigMap

from kplane.runtime.client import client_from_kubeconfig
from kplane.runtime.controller import Controller
from kplane.runtime.leader import LeaderElectionConfig
from kplane.runtime.manager import Manager
from tests.e2e.harness import ControlPlane, start_control_plane

LABELS = {"kplane.dev/e2e": "leader-election"}
LEASE_DURATION_S, RENEW_DEADLINE_S, RETRY_PERIOD_S = 2.0, 1.5, 0.25
REPO_ROOT = Path(__file__).resolve().parents[2]


async def worker(kubeconfig: str, log_path: str, identity: str) -> None:
    client = client_from_kubeconfig(kubeconfig)
    manager = Manager(
        client,
        leader_election=LeaderElectionConfig(
            name="runtime-e2e",
            namespace="default",
            identity=identity,
            lease_duration_s=LEASE_DURATION_S,
            renew_deadline_s=RENEW_DEADLINE_S,
            retry_period_s=RETRY_PERIOD_S,
        ),
    )
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    async def reconcile(key: str) -> None:
        log.write(f"start {identity} {time.time():.6f} {key}\n")
        try:
            await asyncio.sleep(0.05)
        finally:
            log.write(f"end {identity} {time.time():.6f} {key}\n")

    manager.add(Controller("cm", client, ConfigMap, reconcile, namespace="default", labels=LABELS, workers=2))
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(manager.run())
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    await asyncio.gather(task, return_exceptions=True)
    await client.close()


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    control_plane = start_control_plane(tmp_path, "--no-controllers", "--nodes", "0")
    yield control_plane
    control_plane.down()


def spawn(plane: ControlPlane, log: Path, identity: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    script = str(Path(__file__).resolve())
    return subprocess.Popen(
        [sys.executable, script, str(plane.kubeconfig), str(log), identity], env=env, cwd=str(REPO_ROOT)
    )


def intervals(log: Path, ends: dict[str, float]) -> list[tuple[float, float, str]]:
    """(start, end, identity) per reconcile; one cut short by SIGKILL ends at the kill time in `ends`."""
    open_starts: dict[tuple[str, str], list[float]] = {}
    spans: list[tuple[float, float, str]] = []
    for line in log.read_text().splitlines():
        kind, identity, stamp, key = line.split(" ", 3)
        slot = (identity, key)
        if kind == "start":
            open_starts.setdefault(slot, []).append(float(stamp))
        else:
            spans.append((open_starts[slot].pop(0), float(stamp), identity))
    for (identity, _), starts in open_starts.items():
        spans.extend((start, ends[identity], identity) for start in starts)
    return sorted(spans)


def overlaps(spans: list[tuple[float, float, str]]) -> list[tuple[tuple[float, float, str], ...]]:
    """Pairs of intervals from different processes that overlap in time (spans sorted by start)."""
    return [
        (first, second)
        for i, first in enumerate(spans)
        for second in spans[i + 1 :]
        if first[2] != second[2] and second[0] < first[1]
    ]


def reconcilers(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [line.split(" ")[1] for line in log.read_text().splitlines() if line.startswith("start")]


def test_two_processes_never_reconcile_at_the_same_time(plane: ControlPlane, tmp_path: Path) -> None:
    log = tmp_path / "reconciles.log"
    kubectl_cm = ["-n", "default", "create", "configmap"]
    churn_index = 0

    def churn(count: int = 1) -> None:
        nonlocal churn_index
        for _ in range(count):
            churn_index += 1
            name = f"cm-{churn_index}"
            plane.kubectl(*kubectl_cm, name, f"--from-literal=v={churn_index}")
            plane.kubectl("-n", "default", "label", "configmap", name, "kplane.dev/e2e=leader-election")

    def churn_until(predicate: object, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            churn()
            if predicate():  # type: ignore[operator]
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; reconcilers so far: {sorted(set(reconcilers(log)))}")

    kill_times: dict[str, float] = {}
    processes = {"a": spawn(plane, log, "a")}
    try:
        churn_until(lambda: "a" in reconcilers(log), "a to lead")
        processes["b"] = spawn(plane, log, "b")
        churn(5)
        assert "b" not in reconcilers(log), "b reconciled while a held the lease"

        processes["a"].send_signal(signal.SIGKILL)
        kill_times["a"] = time.time()
        processes["a"].wait(timeout=30)
        churn_until(lambda: "b" in reconcilers(log), "b to take over from the crashed leader")

        processes["c"] = spawn(plane, log, "c")
        churn(5)
        processes["b"].send_signal(signal.SIGTERM)
        processes["b"].wait(timeout=30)
        kill_times["b"] = time.time()
        churn_until(lambda: "c" in reconcilers(log), "c to take over after b handed the lease back")
        processes["c"].send_signal(signal.SIGTERM)
        processes["c"].wait(timeout=30)
        kill_times["c"] = time.time()
    finally:
        for proc in processes.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)

    spans = intervals(log, kill_times)
    clashes = overlaps(spans)
    assert clashes == [], f"reconciles of different processes overlapped: {clashes[:3]}"
    assert {span[2] for span in spans} == {"a", "b", "c"}


def test_overlap_check_catches_overlaps(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("start a 1.0 k\nstart b 1.5 k\nend b 1.8 k\nstart a 3.0 j\nend a 3.1 j\nstart a 3.2 k\n")
    spans = intervals(log, {"a": 2.0})
    assert spans[0] == (1.0, 2.0, "a")
    assert overlaps(spans) == [((1.0, 2.0, "a"), (1.5, 1.8, "b"))]
    assert overlaps([(1.0, 2.0, "a"), (2.0, 3.0, "b"), (2.5, 2.6, "b")]) == []


if __name__ == "__main__":
    asyncio.run(worker(sys.argv[1], sys.argv[2], sys.argv[3]))
