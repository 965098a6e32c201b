"""RGD benchmark, pure part: graph build time for a 50-resource RGD and CEL evaluations per second.

`python -m bench.graphs [--resources N] [--rounds N]` builds a webapp-like chain of N resources (Deployments,
Services and ConfigMaps, each after the previous one, with readyWhen, includeWhen and status fields) and
prints the median and worst build time over the rounds (after one warm-up build, which loads the built-in
schemas), then evaluates a compiled template expression in a loop. The end-to-end figure (500 instances to
ACTIVE on `kplane up`) joins this once the instance controller exists. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from kplane.graphs import build_graph, render


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
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


if __name__ == "__main__":
    main()
