"""Reading what a plan needs from a live cluster (kplane's or any other, through a kubeconfig) and manifests.

Requests go through lightkube's request builder, so they carry the kubeconfig's TLS and credentials; only
the parsing is ours. Objects count as *using* a removed API when a managedFields entry or the
``kubectl.kubernetes.io/last-applied-configuration`` annotation names it: that is how pluto/kubent-style
tools tell "a client writes through v1beta3" apart from "the object is merely readable through v1beta3".
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml
from lightkube import Client, KubeConfig

from kplane.upgrades.kapi import ApiUnavailable, get_json, get_raw, list_items
from kplane.upgrades.plan import FoundObject, NodeInfo, PlanInputs, ServerVersion
from kplane.versions import apis, compat
from kplane.versions.gates import Gate, state_at

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_FEATURE_LINE = re.compile(r'^kubernetes_feature_enabled\{([^}]*)\}\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def connect(kubeconfig: Path | None = None, context: str | None = None) -> Client:
    """A lightkube client for the kubeconfig given, else the usual $KUBECONFIG / ~/.kube/config lookup."""
    config = KubeConfig.from_file(kubeconfig) if kubeconfig is not None else KubeConfig.from_env()
    single = config.get(context)
    if single is None:
        raise ValueError(f"kubeconfig has no context {context!r}" if context else "kubeconfig has no current context")
    return Client(config=single, timeout=httpx.Timeout(30.0), field_manager="kplane-upgrade")


def parse_version_info(info: Mapping[str, Any]) -> ServerVersion:
    """``/version`` → levels; servers before 1.33 carry no emulation fields and emulate themselves."""
    try:
        binary = int(str(info["minor"]).rstrip("+"))
    except (KeyError, ValueError):
        raise ApiUnavailable(f"/version has no usable minor version: {dict(info)!r}") from None
    emulated = _int(info.get("emulationMinor"), binary)
    min_compat = _int(info.get("minCompatibilityMinor"), compat.default_min_compat(binary, emulated)
                      if binary >= 31 else binary - 1)
    return ServerVersion(binary=binary, emulated=emulated, min_compat=min_compat,
                         git_version=str(info.get("gitVersion") or ""))


def _int(value: Any, default: int) -> int:
    try:
        return int(str(value).rstrip("+")) if value not in (None, "") else default
    except ValueError:
        return default


def read_nodes(client: Client) -> list[NodeInfo]:
    return [NodeInfo(name=str((n.get("metadata") or {}).get("name", "")),
                     kubelet_version=str(((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")))
            for n in list_items(client, "/api/v1/nodes")]


def served_resources(client: Client) -> dict[str, list[Mapping[str, Any]]]:
    """groupVersion → its top-level resources, for every version of every group (not only preferred)."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    versions = [f"/api/{v}" for v in get_json(client, "/api").get("versions") or []]
    for group in get_json(client, "/apis").get("groups") or []:
        versions += [f"/apis/{v['groupVersion']}" for v in group.get("versions") or []]
    for path in versions:
        try:
            doc = get_json(client, path)
        except ApiUnavailable:
            if path.startswith("/api/"):
                raise
            continue  # an aggregated API that is down must not hide the rest (kubectl skips it too)
        out[str(doc.get("groupVersion"))] = [r for r in doc.get("resources") or [] if "/" not in str(r.get("name"))]
    return out


def used_api_versions(obj: Mapping[str, Any]) -> set[str]:
    """API versions clients wrote this object through (managedFields, last-applied configuration)."""
    meta = obj.get("metadata") or {}
    used = {str(e.get("apiVersion")) for e in meta.get("managedFields") or [] if e.get("apiVersion")}
    applied = (meta.get("annotations") or {}).get(LAST_APPLIED)
    if applied:
        with contextlib.suppress(ValueError, AttributeError):
            used.add(str(json.loads(applied).get("apiVersion")))
    return used


def removed_objects(client: Client, resources: Mapping[str, Sequence[Mapping[str, Any]]],
                    target: int) -> tuple[list[FoundObject], dict[str, int]]:
    """Objects served under an API that ``1.<target>`` removes, split into those written through it and a
    count ("apiVersion Kind" → n) of the ones merely readable there."""
    found: list[FoundObject] = []
    counts: dict[str, int] = {}
    for entry in apis.removed_apis():
        if entry.removed_in > target or entry.api_version not in resources:
            continue
        prefix = f"/apis/{entry.api_version}" if entry.group else f"/api/{entry.api_version}"
        for res in resources[entry.api_version]:
            kind = str(res.get("kind"))
            if kind not in entry.kinds or "list" not in (res.get("verbs") or []):
                continue
            key = f"{entry.api_version} {kind}"
            counts[key] = 0
            for item in list_items(client, f"{prefix}/{res['name']}"):
                meta = item.get("metadata") or {}
                if entry.api_version in used_api_versions(item):
                    found.append(FoundObject("cluster", entry.api_version, kind, str(meta.get("name", "")),
                                             str(meta.get("namespace") or "")))
                else:
                    counts[key] += 1
    return found, counts


def parse_feature_metrics(text: str) -> dict[str, bool]:
    """``kubernetes_feature_enabled{name,stage}`` samples → gate name → enabled."""
    out: dict[str, bool] = {}
    for line in text.splitlines():
        match = _FEATURE_LINE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group(1)))
        if "name" in labels:
            out[labels["name"]] = float(match.group(2)) == 1.0
    return out


def gate_overrides(enabled: Mapping[str, bool], gates: Mapping[str, Gate], emulated: int) -> dict[str, bool]:
    """Gates whose enabled value differs from their default at the emulated level: set by --feature-gates."""
    out = {}
    for name, value in enabled.items():
        gate = gates.get(name)
        if gate is not None and state_at(gate, emulated).default != value:
            out[name] = value
    return out


def _manifest_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
        elif path.is_file():
            yield path
        else:
            raise ValueError(f"-f {path}: no such file or directory")


def _documents(path: Path) -> Iterator[Mapping[str, Any]]:
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ValueError(f"{path}: not valid YAML{where}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file") from None
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise ValueError(f"{path}: every YAML document must be an object")
        if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
            yield from (item for item in doc["items"] if isinstance(item, Mapping))
        else:
            yield doc


def manifest_objects(paths: Iterable[Path]) -> list[FoundObject]:
    """Every object in the given files and directories (multi-document YAML, JSON, ``kind: List``)."""
    out = []
    for path in _manifest_files(paths):
        for doc in _documents(path):
            meta = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
            assert isinstance(meta, Mapping)
            out.append(FoundObject(str(path), str(doc.get("apiVersion", "")), str(doc.get("kind", "")),
                                   str(meta.get("name", "")), str(meta.get("namespace") or "")))
    return out


def inspect_cluster(client: Client, target: int, gates: Mapping[str, Gate],
                    manifests: Sequence[Path] = ()) -> PlanInputs:
    """Gather a plan's inputs; manifests are read first so that a bad file fails before any request."""
    from_files = manifest_objects(manifests)
    server = parse_version_info(get_json(client, "/version"))
    found, counts = removed_objects(client, served_resources(client), target)
    code, body = get_raw(client, "/metrics")
    overrides = gate_overrides(parse_feature_metrics(body.decode(errors="replace")), gates, server.emulated) \
        if code == 200 else {}
    return PlanInputs(server=server, nodes=read_nodes(client), objects=[*found, *from_files],
                      gate_overrides=overrides, served_removed=counts)
