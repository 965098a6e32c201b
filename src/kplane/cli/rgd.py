"""``kplane rgd``: validate a ResourceGraphDefinition and render an instance's children, offline.

``validate`` prints the generated CRD and the topological order (or kro's error and exit 1); ``render``
prints the objects an instance produces before any child exists, as a YAML stream in topological order, with
expressions over children left as ``${…}`` and listed in trailing comments. Kinds that are not built in come
from ``--crd`` files (CRDs, or RGDs whose generated CRDs are used, for chained RGDs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml

from kplane.graphs import Graph, GraphError, RenderError, build_graph, crd_schemas, render

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Validate kro ResourceGraphDefinitions and render their instances offline.")

F = TypeVar("F", bound=Callable[..., Any])
RgdFile = Annotated[Path, typer.Option("-f", "--filename", help="The ResourceGraphDefinition YAML file.")]
CrdFiles = Annotated[list[Path] | None, typer.Option("--crd", help="CRD or RGD YAML files for non-built-in kinds "
                                                     "(repeatable).")]
KubeVersion = Annotated[str, typer.Option("--kube-version", help="Kubernetes API level of built-in schemas.")]


def _one_line(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (GraphError, RenderError, OSError, ValueError, yaml.YAMLError) as err:
            text = " ".join(str(err).split())
            typer.echo(f"error: {text}", err=True)
            raise typer.Exit(1) from None
    return wrapper  # type: ignore[return-value]


def _documents(path: Path) -> list[Mapping[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ValueError(f"{path}: not valid YAML{where}") from None
    if not all(isinstance(d, Mapping) for d in docs):
        raise ValueError(f"{path}: every YAML document must be an object")
    return docs


def _single(path: Path, kind: str) -> Mapping[str, Any]:
    docs = [d for d in _documents(path) if d.get("kind") == kind] if kind else _documents(path)
    if len(docs) != 1:
        raise ValueError(f"{path}: expected exactly one {kind or 'object'}, found {len(docs)}")
    return docs[0]


def _minor(kube_version: str) -> int:
    major, _, minor = kube_version.removeprefix("v").partition(".")
    if major != "1" or not minor.isdigit():
        raise ValueError(f"invalid --kube-version {kube_version!r}: expected 1.<minor>")
    return int(minor)


def _crds(paths: list[Path], minor: int) -> Iterator[Mapping[str, Any]]:
    known: list[Mapping[str, Any]] = []
    for path in paths:
        for doc in _documents(path):
            if doc.get("kind") == "CustomResourceDefinition":
                known.append(doc)
            elif doc.get("kind") == "ResourceGraphDefinition":
                known.append(build_graph(doc, schemas=crd_schemas(list(known)), kube_minor=minor).crd)
    yield from known


def _graph(rgd_file: Path, crd_files: list[Path] | None, kube_version: str) -> Graph:
    minor = _minor(kube_version)
    rgd = _single(rgd_file, "ResourceGraphDefinition")
    return build_graph(rgd, schemas=crd_schemas(list(_crds(crd_files or [], minor))), kube_minor=minor)


def _dump(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)


@app.command()
@_one_line
def validate(rgd_file: RgdFile, crd: CrdFiles = None, kube_version: KubeVersion = "1.36") -> None:
    """Print the generated CRD and the topological order, or kro's error (exit 1)."""
    graph = _graph(rgd_file, crd, kube_version)
    summary = {
        "topologicalOrder": list(graph.order),
        "resources": [{"id": r.id, "dependencies": [{"id": d} for d in r.dependencies]}
                      for r in graph.ordered() if r.dependencies],
    }
    typer.echo(_dump(dict(graph.crd)) + "---\n" + _dump(summary), nl=False)


@app.command("render")
@_one_line
def render_cmd(
    rgd_file: RgdFile,
    instance_file: Annotated[Path, typer.Option("-i", "--instance", help="The instance YAML file.")],
    crd: CrdFiles = None,
    kube_version: KubeVersion = "1.36",
) -> None:
    """Print the child objects an instance produces (topological order), pending expressions listed."""
    graph = _graph(rgd_file, crd, kube_version)
    instance = _single(instance_file, "")
    if instance.get("kind") not in (None, graph.kind):
        raise ValueError(f"{instance_file}: kind {instance.get('kind')} does not match the RGD's kind {graph.kind}")
    result = render(graph, instance, {})
    if result.errors:
        raise RenderError(result.errors[0])
    docs = [_dump(obj) for obj in result.objects()]
    typer.echo("---\n".join(docs), nl=False)
    notes = [f"# pending {r.id}: ${{{expr}}}" for r in result.resources.values() for expr in r.pending]
    notes += [f"# skipped {r.id} (includeWhen)" for r in result.resources.values() if r.included is False]
    notes += [f"# pending status.{path}" for path in result.pending_status]
    if notes:
        typer.echo("\n".join(notes))
