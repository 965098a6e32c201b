"""Prometheus metrics of the API server, on a registry of its own (several servers may share a process).

Names follow kube-apiserver where a counterpart exists (``apiserver_request_total``,
``apiserver_request_duration_seconds``, ``kubernetes_feature_enabled``, ``kubernetes_build_info``), so
dashboards written for a real control plane read kplane's too.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class ServerMetrics:
    def __init__(self, feature_gates: Mapping[str, bool], version_info: Mapping[str, str]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("apiserver_request_total", "API requests by verb, resource and HTTP code.",
                                ["verb", "resource", "code"], registry=self.registry)
        self.latency = Histogram("apiserver_request_duration_seconds", "API request latency (watches excluded).",
                                 ["verb", "resource"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        gates = Gauge("kubernetes_feature_enabled", "Whether a feature gate is enabled (1) or not (0).",
                      ["name", "stage"], registry=self.registry)
        for name, enabled in sorted(feature_gates.items()):
            gates.labels(name=name, stage="").set(1 if enabled else 0)
        build = Gauge("kubernetes_build_info", "Version of the server binary.",
                      ["major", "minor", "git_version", "emulation_major", "emulation_minor"],
                      registry=self.registry)
        build.labels(major=version_info.get("major", ""), minor=version_info.get("minor", ""),
                     git_version=version_info.get("gitVersion", ""),
                     emulation_major=version_info.get("emulationMajor", ""),
                     emulation_minor=version_info.get("emulationMinor", "")).set(1)

    def observe(self, verb: str, resource: str, code: int, seconds: float) -> None:
        self.requests.labels(verb=verb, resource=resource, code=str(code)).inc()
        if verb != "watch":
            self.latency.labels(verb=verb, resource=resource).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
