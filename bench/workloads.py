"""Workload benchmark: 100 Deployments x 10 replicas on 50 simulated nodes.

`python -m bench.workloads [--deployments N] [--replicas N] [--nodes N]` starts a fresh API server
(`kplane up --no-controllers`) and, as `kplane up` would, one `kplane controllers` process with the built-in
controllers, the scheduler and the node simulator, this time with its Prometheus metrics on a local port.
It then applies the Deployments and prints the wall time until every pod is Running, and the controllers'
reconciles per second over that window (`controller_runtime_reconcile_total`, summed over results), and the
CPU seconds the API server and the controllers process each used in it (from /proc where there is one), to
show which side bounds the run. It prints figures; it asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Node, Pod
from prometheus_client.parser import text_string_to_metric_families

from kplane.runtime.client import client_from_kubeconfig

NAMESPACE = "bench"
RECONCILE_METRIC = "controller_runtime_reconcile"
TIMEOUT_S = 600.0
CREATE_CONCURRENCY = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kplane(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "kplane", *args], check=True, stdout=subprocess.DEVNULL)


@dataclass(frozen=True)
class Plane:
    kubeconfig: Path
    pids: dict[str, int]  # "apiserver", "controllers"


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a live process (Linux /proc), or None where it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def cpu_by_process(pids: dict[str, int]) -> dict[str, float | None]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


@contextlib.contextmanager
def control_plane(data_dir: Path, nodes: int, metrics_port: int) -> Iterator[Plane]:
    """An API server plus one controllers process; both stopped on exit."""
    kplane("up", "--detach", "--data-dir", str(data_dir), "--port", "0", "--no-controllers", "--nodes", "0")
    kubeconfig = data_dir / "kubeconfig"
    log = (data_dir / "controllers.log").open("ab")
    controllers = subprocess.Popen(
        [sys.executable, "-m", "kplane", "controllers", "--kubeconfig", str(kubeconfig), "--nodes", str(nodes),
         "--metrics-port", str(metrics_port)],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL,
    )
    try:
        yield Plane(kubeconfig, {"apiserver": int((data_dir / "kplane.pid").read_text()),
                                 "controllers": controllers.pid})
    finally:
        controllers.terminate()
        try:
            controllers.wait(10)
        except subprocess.TimeoutExpired:
            controllers.kill()
        log.close()
        kplane("down", "--data-dir", str(data_dir))


def reconciles(port: int) -> Counter[str]:
    """Reconciles so far by controller, from the controllers' Prometheus endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name != RECONCILE_METRIC:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                counts[sample.labels.get("controller", "")] += int(sample.value)
    return counts


def deployment(index: int, replicas: int) -> Deployment:
    labels = {"app": f"bench-{index}"}
    return Deployment.from_dict({
        "metadata": {"name": f"bench-{index}", "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                {"name": "app", "image": "nginx:1.27", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}},
        },
    })


async def wait_for_nodes(client: AsyncClient, count: int) -> None:
    while True:
        ready = 0
        async for node in client.list(Node):
            conditions = (node.status.conditions if node.status is not None else None) or []
            ready += any(c.type == "Ready" and c.status == "True" for c in conditions)
        if ready >= count:
            return
        await asyncio.sleep(0.2)


async def wait_running(client: AsyncClient, want: int, progress: dict[str, float]) -> None:
    """Until `want` pods in the namespace are Running at once (a watch, so no polling lag)."""
    running: set[str] = set()
    async for event, pod in client.watch(Pod, namespace=NAMESPACE):
        name = pod.metadata.name if pod.metadata is not None else ""
        phase = pod.status.phase if pod.status is not None else None
        if event != "DELETED" and phase == "Running":
            running.add(name)
        else:
            running.discard(name)
        progress["running"] = len(running)
        if len(running) >= want:
            return


async def create_all(client: AsyncClient, deployments: int, replicas: int) -> None:
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def one(index: int) -> None:
        async with gate:
            await client.create(deployment(index, replicas))

    await asyncio.gather(*(one(i) for i in range(deployments)))


async def measure(plane: Plane, metrics_port: int, args: argparse.Namespace) -> dict[str, Any]:
    client = client_from_kubeconfig(plane.kubeconfig)
    try:
        await asyncio.wait_for(wait_for_nodes(client, args.nodes), 120)
        await client.create(Namespace.from_dict({"metadata": {"name": NAMESPACE}}))
        want = args.deployments * args.replicas
        before = reconciles(metrics_port)
        cpu_before = cpu_by_process(plane.pids)
        progress = {"running": 0.0}
        started = time.perf_counter()
        watcher = asyncio.ensure_future(wait_running(client, want, progress))
        await create_all(client, args.deployments, args.replicas)
        created = time.perf_counter() - started
        try:
            await asyncio.wait_for(watcher, TIMEOUT_S)
        except TimeoutError:
            return {"timed_out": True, "running": int(progress["running"]), "wanted": want}
        elapsed = time.perf_counter() - started
        cpu_after = cpu_by_process(plane.pids)
        after = reconciles(metrics_port)
        delta = after - before
        cpu = {name: (end - start if end is not None and start is not None else None)
               for name, start, end in ((n, cpu_before[n], cpu_after[n]) for n in plane.pids)}
        return {"timed_out": False, "pods": want, "create_s": created, "running_s": elapsed, "cpu_s": cpu,
                "reconciles": sum(delta.values()), "by_controller": dict(delta.most_common())}
    finally:
        await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workloads", description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=50)
    args = parser.parse_args()
    if importlib.util.find_spec("kplane.controllers.workloads") is None:
        print("the workload controllers (kplane.controllers.workloads) are not there yet", file=sys.stderr)
        return 2
    port = free_port()
    with (tempfile.TemporaryDirectory(prefix="kplane-bench-") as tmp,
          control_plane(Path(tmp), args.nodes, port) as plane):
        result = asyncio.run(measure(plane, port, args))
    pods = args.deployments * args.replicas
    print(f"workloads: {args.deployments} Deployments x {args.replicas} replicas on {args.nodes} simulated nodes "
          f"(cpu count {os.cpu_count()})")
    if result["timed_out"]:
        print(f"  timed out after {TIMEOUT_S:.0f} s with {result['running']}/{result['wanted']} pods Running")
        return 1
    seconds = result["running_s"]
    print(f"  all {pods} pods Running after {seconds:.2f} s (Deployments created in {result['create_s']:.2f} s)")
    print(f"  {pods / seconds:.0f} pods/s; controllers: {result['reconciles']} reconciles, "
          f"{result['reconciles'] / seconds:.0f} reconciles/s")
    for name, count in result["by_controller"].items():
        print(f"    {name:<24} {count:>7}")
    shares = [f"{name} {used:.1f} s ({100 * used / seconds:.0f}% of a core)"
              for name, used in result["cpu_s"].items() if used is not None]
    if shares:
        print(f"  cpu over the run: {', '.join(shares)}; load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
