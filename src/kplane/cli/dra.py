"""`kplane dra allocate`: run the DRA allocator on objects from a YAML file, without a cluster.

Exit codes: 0 allocated (the claims are printed with ``status.allocation``), 2 no fit (one line: why),
1 invalid input or an allocation error (one line: upstream's error text)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from kplane.dra.allocator import allocate
from kplane.dra.features import features_for, parse_gates
from kplane.dra.model import AllocatedState, InvalidInput

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Dynamic Resource Allocation tools.")

KINDS = ("DeviceClass", "ResourceSlice", "Node", "ResourceClaim")


class InputError(ValueError):
    """The file cannot be used as allocator input."""


def load_objects(text: str) -> dict[str, list[dict[str, Any]]]:
    """Objects of the four kinds, in file order; InputError for anything else or unparsable YAML."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        raise InputError(f"invalid YAML: {str(err).splitlines()[0]}") from None
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    for i, doc in enumerate(docs):
        items = doc.get("items") if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") else [doc]
        for obj in items or ():
            kind = obj.get("kind") if isinstance(obj, dict) else None
            if kind not in KINDS:
                raise InputError(f"document {i + 1}: unsupported kind {kind!r}; expected one of {', '.join(KINDS)}")
            if not (obj.get("metadata") or {}).get("name"):
                raise InputError(f"document {i + 1}: {kind} without metadata.name")
            out[kind].append(obj)
    return out


def pick_node(nodes: list[dict[str, Any]], name: str | None) -> dict[str, Any]:
    if name is not None:
        for node in nodes:
            if node["metadata"]["name"] == name:
                return node
        # A node not in the file is a bare node of that name (no labels), as upstream would see it.
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    if len(nodes) == 1:
        return nodes[0]
    raise InputError("--node is required when the file has no Node or several" if nodes else
                     "--node is required when the file has no Node")


def run(text: str, node_name: str | None, gates: str) -> tuple[int, str]:
    """(exit code, output): YAML of the allocated claims, or one line."""
    try:
        features = features_for(parse_gates(gates))
        objects = load_objects(text)
        node = pick_node(objects["Node"], node_name)
        claims = objects["ResourceClaim"]
        done = [c for c in claims if (c.get("status") or {}).get("allocation")]
        pending = [c for c in claims if not (c.get("status") or {}).get("allocation")]
        allocated = AllocatedState.from_claims(done)
    except (InputError, InvalidInput, ValueError) as err:
        return 1, f"error: {err}"
    outcome = allocate(node, pending, objects["ResourceSlice"], objects["DeviceClass"], allocated, features)
    if outcome.kind == "error":
        return 1, f"error: {outcome.error}"
    if outcome.kind == "unsatisfiable":
        return 2, f"no fit on node {node['metadata']['name']}: {outcome.reason}"
    printed = []
    for claim, allocation in zip(pending, outcome.results or [], strict=True):
        out = copy.deepcopy(claim)
        out.setdefault("status", {})["allocation"] = allocation
        printed.append(out)
    return 0, yaml.safe_dump_all(printed, sort_keys=False).rstrip("\n")


@app.command("allocate")
def allocate_cmd(
    file: Annotated[Path, typer.Option("-f", "--filename", help="YAML stream of DeviceClass, ResourceSlice, "
                                                                "Node and ResourceClaim objects.")],
    node: Annotated[str | None, typer.Option("--node", help="Node to allocate for (default: the only Node).")]
    = None,
    feature_gates: Annotated[str, typer.Option("--feature-gates", help="DRA gates, e.g. DRADeviceTaints=true "
                                                                       "(defaults: Kubernetes 1.35).")] = "",
) -> None:
    """Allocate devices for the unallocated claims in FILE and print them with status.allocation."""
    try:
        text = file.read_text()
    except OSError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    code, output = run(text, node, feature_gates)
    typer.echo(output, err=code != 0)
    raise typer.Exit(code)
