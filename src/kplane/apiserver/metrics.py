"""Prometheus metrics of the API server, on a registry of its own (several servers may share a process).

Names follow kube-apiserver where a counterpart exists (``apiserver_request_total``,
``apiserver_request_duration_seconds``, ``kubernetes_feature_enabled``, ``kubernetes_build_info``,
``version_info``), so dashboards written for a real control plane read kplane's too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from kplane.versions.gates import PRE_ALPHA, GateState


class ServerMetrics:
    def __init__(self, feature_gates: Mapping[str, GateState], version_info: Mapping[str, str]) -> None:
        self.registry = CollectorRegistry()
        self._bound: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.requests = Counter("apiserver_request_total", "API requests by verb, resource and HTTP code.",
                                ["verb", "resource", "code"], registry=self.registry)
        self.latency = Histogram("apiserver_request_duration_seconds", "API request latency (watches excluded).",
                                 ["verb", "resource"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        gates = Gauge("kubernetes_feature_enabled", "Whether a feature gate is enabled (1) or not (0).",
                      ["name", "stage"], registry=self.registry)
        # As featuregate.AddMetrics: every gate known at the emulated version (PreAlpha ones are not), with
        # its stage there ("" for GA).
        for name, state in sorted(feature_gates.items()):
            if state.stage != PRE_ALPHA:
                gates.labels(name=name, stage=state.stage_label).set(1 if state.enabled else 0)
        # component-base metrics/prometheus/compatversion: one series per component, labelled with its levels.
        compat = Gauge("version_info", "Provides the compatibility version info of the component. "
                       "The component label is the name of the component, usually kube, but is relevant for "
                       "aggregated-apiservers.", ["component", "binary", "emulation", "min_compat"],
                       registry=self.registry)
        minor = str(version_info.get("minor", "0"))
        # Before 1.33 /version has no compatibility fields: such binaries emulate themselves, min-compat one below.
        min_compat = version_info.get("minCompatibilityMinor", str(int(minor) - 1) if minor.isdigit() else "")
        compat.labels(component="kube", binary=f"1.{minor}.0",
                      emulation=f"1.{version_info.get('emulationMinor', minor)}",
                      min_compat=f"1.{min_compat}").set(1)
        build = Gauge("kubernetes_build_info", "Version of the server binary.",
                      ["major", "minor", "git_version", "emulation_major", "emulation_minor"],
                      registry=self.registry)
        build.labels(major=version_info.get("major", ""), minor=version_info.get("minor", ""),
                     git_version=version_info.get("gitVersion", ""),
                     emulation_major=version_info.get("emulationMajor", ""),
                     emulation_minor=version_info.get("emulationMinor", "")).set(1)

    def observe(self, verb: str, resource: str, code: int, seconds: float) -> None:
        # The label children, looked up by a plain dict: ``labels()`` validates and locks on every call.
        key = (verb, resource, code)
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bound[key] = (
                self.requests.labels(verb=verb, resource=resource, code=str(code)),
                None if verb == "watch" else self.latency.labels(verb=verb, resource=resource))
        bound[0].inc()
        if bound[1] is not None:
            bound[1].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
