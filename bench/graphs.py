"""RGD benchmark: graph build time for a 50-resource RGD, CEL evaluations per second, and instances to ACTIVE.

`python -m bench.graphs [--resources N] [--rounds N]` builds a webapp-like chain of N resources (Deployments,
Services and ConfigMaps, each after the previous one, with readyWhen, includeWhen and status fields) and
prints the median and worst build time over the rounds (after one warm-up build, which loads the built-in
schemas), then evaluates a compiled template expression in a loop.

The end-to-end part (`--instances N`, default 500; 0 skips it) starts an API server and one `kplane
controllers` process (as `kplane up` does, with `--nodes` simulated nodes), applies a 5-resource webapp-like
RGD (ConfigMap, ServiceAccount, Deployment, Service, and a ConfigMap reading the Service's cluster IP) and
creates N instances of it; it prints the wall time until every instance is ACTIVE, the CPU seconds per
instance of the controllers process and of the API server, and the reconciles each controller ran (the
controllers process also runs the Deployment, ReplicaSet, endpoints, scheduler and pod-simulator work the
instances cause). It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from kplane.graphs import build_graph, render

INSTANCE_NAMESPACE = "bench-kro"
CREATE_CONCURRENCY = 20
TIMEOUT_S = 600.0


def chain_rgd(size: int) -> dict[str, Any]:
    """A chain of ``size`` resources cycling Deployment → Service → ConfigMap, each naming the previous one."""
    resources: list[dict[str, Any]] = []
    for i in range(size):
        rid, prev = f"r{i}", f"r{i - 1}"
        name = "${schema.spec.name}-" + str(i) if i == 0 else "${" + prev + ".metadata.name}-" + str(i)
        kind = ("Deployment", "Service", "ConfigMap")[i % 3]
        if kind == "Deployment":
            template: dict[str, Any] = {
                "apiVersion": "apps/v1", "kind": kind,
                "metadata": {"name": name, "labels": {"app": "${schema.spec.name}"}},
                "spec": {"replicas": "${schema.spec.replicas}", "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": "app", "image": "${schema.spec.image}",
                                                               "ports": [{"containerPort": "${schema.spec.port}"}]}]}}}}
            ready = "${" + rid + ".status.availableReplicas == " + rid + ".spec.replicas}"
            extra: dict[str, Any] = {"readyWhen": [ready]}
        elif kind == "Service":
            template = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name},
                        "spec": {"selector": {"app": "${schema.spec.name}"},
                                 "ports": [{"port": 80, "targetPort": "${schema.spec.port}"}]}}
            extra = {"includeWhen": ["${schema.spec.service}"]}
        else:
            template = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name},
                        "data": {"upstream": "${" + prev + ".metadata.name}",
                                 "size": "${string(schema.spec.replicas * 2)}"}}
            extra = {}
        resources.append({"id": rid, "template": template, **extra})
    status = {f"s{i}": "${r" + str(i) + ".metadata.name}" for i in range(0, size, 5)}
    return {"apiVersion": "kro.run/v1alpha1", "kind": "ResourceGraphDefinition", "metadata": {"name": "bench"},
            "spec": {"schema": {"apiVersion": "v1alpha1", "kind": "Bench", "status": status,
                                "spec": {"name": "string", "image": "string | default=nginx",
                                         "replicas": "integer | default=2", "port": "integer | default=8080",
                                         "service": "boolean | default=true"}},
                     "resources": resources}}


def webapp_rgd() -> dict[str, Any]:
    """Five resources in four waves: config and service account, then the Deployment, its Service, and a
    ConfigMap that records the Service's cluster IP."""
    name = "${schema.metadata.name}"
    labels = {"app": name}
    return {"apiVersion": "kro.run/v1alpha1", "kind": "ResourceGraphDefinition", "metadata": {"name": "benchapp"},
            "spec": {"schema": {"apiVersion": "v1alpha1", "kind": "BenchApp",
                                "spec": {"image": "string | default=nginx", "replicas": "integer | default=1",
                                         "port": "integer | default=8080"},
                                "status": {"clusterIP": "${service.spec.clusterIP}"}},
                     "resources": [
                         {"id": "config", "template": {"apiVersion": "v1", "kind": "ConfigMap",
                                                       "metadata": {"name": name + "-config"},
                                                       "data": {"port": "${string(schema.spec.port)}"}}},
                         {"id": "account", "template": {"apiVersion": "v1", "kind": "ServiceAccount",
                                                        "metadata": {"name": name}}},
                         {"id": "deployment", "template": {
                             "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                             "spec": {"replicas": "${schema.spec.replicas}", "selector": {"matchLabels": labels},
                                      "template": {"metadata": {"labels": labels}, "spec": {
                                          "serviceAccountName": "${account.metadata.name}",
                                          "containers": [{"name": "app", "image": "${schema.spec.image}",
                                                          "env": [{"name": "CONFIG",
                                                                   "value": "${config.metadata.name}"}],
                                                          "ports": [{"containerPort": "${schema.spec.port}"}]}]}}}}},
                         {"id": "service", "template": {
                             "apiVersion": "v1", "kind": "Service", "metadata": {"name": "${deployment.metadata.name}"},
                             "spec": {"selector": labels,
                                      "ports": [{"port": 80, "targetPort": "${schema.spec.port}"}]}}},
                         {"id": "endpoint", "template": {"apiVersion": "v1", "kind": "ConfigMap",
                                                         "metadata": {"name": name + "-endpoint"},
                                                         "data": {"ip": "${service.spec.clusterIP}"}}},
                     ]}}


async def _instances_active(kubeconfig: Any, count: int) -> dict[str, Any]:
    from lightkube.generic_resource import create_global_resource, create_namespaced_resource
    from lightkube.resources.core_v1 import Namespace

    from kplane.runtime.client import client_from_kubeconfig

    rgd_resource = create_global_resource("kro.run", "v1alpha1", "ResourceGraphDefinition",
                                          "resourcegraphdefinitions")
    app = create_namespaced_resource("kro.run", "v1alpha1", "BenchApp", "benchapps")
    client = client_from_kubeconfig(kubeconfig)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                await client.create(rgd_resource.from_dict(webapp_rgd()))  # type: ignore[attr-defined]
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        while True:
            rgd = await client.get(rgd_resource, "benchapp")
            if ((rgd.get("status") or {}).get("state")) == "Active":
                break
            await asyncio.sleep(0.2)
        await client.create(Namespace.from_dict({"metadata": {"name": INSTANCE_NAMESPACE}}))
        active: set[str] = set()
        gate = asyncio.Semaphore(CREATE_CONCURRENCY)

        async def watch() -> None:
            async for _event, obj in client.watch(app, namespace=INSTANCE_NAMESPACE):
                name = obj["metadata"]["name"]
                if (obj.get("status") or {}).get("state") == "ACTIVE":
                    active.add(name)
                else:
                    active.discard(name)
                if len(active) >= count:
                    return

        async def create(index: int) -> None:
            async with gate:
                await client.create(app.from_dict({"metadata": {"name": f"app-{index}"}, "spec": {}}),  # type: ignore[attr-defined]
                                    namespace=INSTANCE_NAMESPACE)

        started = time.perf_counter()
        watcher = asyncio.ensure_future(watch())
        await asyncio.gather(*(create(i) for i in range(count)))
        created = time.perf_counter() - started
        try:
            await asyncio.wait_for(watcher, TIMEOUT_S)
        except TimeoutError:
            return {"timed_out": True, "active": len(active)}
        return {"timed_out": False, "create_s": created, "active_s": time.perf_counter() - started}
    finally:
        await client.aclose()


def instances_benchmark(count: int, nodes: int) -> None:
    import tempfile
    from pathlib import Path

    from bench.workloads import control_plane, cpu_by_process, free_port, reconciles

    metrics_port = free_port()
    with tempfile.TemporaryDirectory(prefix="kplane-bench-") as tmp, control_plane(Path(tmp), nodes,
                                                                                    metrics_port) as plane:
        before = cpu_by_process(plane.pids)
        result = asyncio.run(_instances_active(plane.kubeconfig, count))
        after = cpu_by_process(plane.pids)
        counts = reconciles(metrics_port)
    if result["timed_out"]:
        print(f"instances: timed out after {TIMEOUT_S:.0f} s with {result['active']}/{count} ACTIVE")
        return
    print(f"instances: {count} x 5-resource RGD ACTIVE after {result['active_s']:.1f} s "
          f"(created in {result['create_s']:.1f} s; target <= 45 s; {nodes} simulated nodes)")
    for name in plane.pids:
        start, end = before[name], after[name]
        if start is not None and end is not None:
            print(f"  {name}: {end - start:.1f} CPU s, {1000 * (end - start) / count:.1f} ms per instance")
    print("  reconciles: " + ", ".join(f"{name} {n}" for name, n in counts.most_common()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--instances", type=int, default=500, help="instances to bring to ACTIVE (0: skip)")
    parser.add_argument("--nodes", type=int, default=10, help="simulated nodes for the instances' pods")
    args = parser.parse_args()
    rgd = chain_rgd(args.resources)
    graph = build_graph(rgd)
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        build_graph(rgd)
        times.append(time.perf_counter() - start)
    print(f"graph build, {args.resources} resources: median {statistics.median(times) * 1000:.1f} ms, "
          f"max {max(times) * 1000:.1f} ms (target <= 100 ms)")
    program = graph.program('(r2.metadata.name) + "-3"')
    activation = {"schema": {"spec": {"name": "x"}}, "r2": {"metadata": {"name": "demo-2"}}}
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < 1.0:
        for _ in range(1000):
            program.evaluate(activation)
        count += 1000
    print(f"CEL evaluations: {count / (time.perf_counter() - start):,.0f}/s (string template, one field select)")
    start = time.perf_counter()
    result = render(graph, {"metadata": {"name": "i", "namespace": "n"}, "spec": {"name": "demo"}}, {})
    print(f"render, {args.resources} resources, nothing observed: {(time.perf_counter() - start) * 1000:.1f} ms "
          f"({len(result.objects())} objects)")
    if args.instances > 0:
        instances_benchmark(args.instances, args.nodes)


if __name__ == "__main__":
    main()
