"""The ``kplane`` command.

Every failure the user can cause (a busy port, a bad flag value, a missing data directory) ends in one
readable line on stderr and a non-zero exit; tracebacks are for bugs only.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from kplane.cli import controllers as controllers_cmd
from kplane.cli import dra as dra_cmd
from kplane.cli import gpu as gpu_cmd
from kplane.cli import rgd as rgd_cmd
from kplane.cli import up as up_cmd
from kplane.cli import upgrade as upgrade_cmd

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="kplane: a Kubernetes platform control plane that starts on a laptop.")
app.add_typer(dra_cmd.app, name="dra")
app.add_typer(gpu_cmd.app, name="gpu")
app.add_typer(rgd_cmd.app, name="rgd")
app.add_typer(upgrade_cmd.app, name="upgrade")

F = TypeVar("F", bound=Callable[..., Any])


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code carried along."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def one_line_errors(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CliError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(err.code) from None
        except (OSError, ValueError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from None
    return wrapper  # type: ignore[return-value]


DataDir = Annotated[Path, typer.Option("--data-dir", help="Where kplane keeps its state, certificates and kubeconfig.",
                                       envvar="KPLANE_DATA_DIR")]


@app.command()
@one_line_errors
def up(
    data_dir: DataDir = Path(".kplane"),
    port: Annotated[int, typer.Option(help="HTTPS port on 127.0.0.1 (0 picks a free one).", min=0, max=65535)] = 6443,
    detach: Annotated[bool, typer.Option("--detach", help="Run in the background; stop with `kplane down`.")] = False,
    kube_version: Annotated[str, typer.Option("--kube-version", help="Kubernetes API level to serve (1.31-1.36).")]
    = "1.36",
    nodes: Annotated[int, typer.Option(help="Simulated nodes to run.", min=0)] = 1,
    controllers: Annotated[bool, typer.Option("--controllers/--no-controllers",
                                              help="Run the built-in controllers.")] = True,
    emulated_version: Annotated[str | None, typer.Option(
        "--emulated-version", help="Act as this earlier level (KEP-4330): served APIs and gate defaults of it. "
        "Format [kube=]1.N; floor max(binary-3, 1.31).")] = None,
    min_compatibility_version: Annotated[str | None, typer.Option(
        "--min-compatibility-version", help="Oldest level the stored data must stay readable by (1.35+; "
        "default emulated-1).")] = None,
    feature_gates: Annotated[str, typer.Option(
        "--feature-gates", help="Gate=true|false pairs, comma-separated; only gates known and not locked "
        "at the emulated version.")] = "",
) -> None:
    """Start the embedded control plane (API server over HTTPS on loopback)."""
    options = up_cmd.UpOptions(data_dir=data_dir.resolve(), port=port, kube_version=kube_version, nodes=nodes,
                               controllers=controllers, emulated_version=emulated_version,
                               min_compatibility_version=min_compatibility_version, feature_gates=feature_gates)
    up_cmd.validate(options)
    if detach:
        pid = up_cmd.start_detached(options)
        typer.echo(f"kplane is up (pid {pid}); kubeconfig: {options.data_dir / 'kubeconfig'}")
        return
    up_cmd.run_foreground(options)


@app.command()
@one_line_errors
def down(data_dir: DataDir = Path(".kplane")) -> None:
    """Stop a control plane started with `kplane up --detach`."""
    pid = up_cmd.stop_detached(data_dir.resolve())
    typer.echo(f"kplane stopped (pid {pid})")


@app.command()
@one_line_errors
def controllers(
    kubeconfig: Annotated[Path, typer.Option("--kubeconfig", help="Kubeconfig of the cluster to run against.")],
    nodes: Annotated[int, typer.Option(help="Simulated nodes to run (0: none).", min=0)] = 1,
    nodes_file: Annotated[Path | None, typer.Option("--nodes-file", help="Node-like YAML describing the "
                                                    "simulated nodes (overrides --nodes).")] = None,
    sim: Annotated[bool, typer.Option("--sim/--no-sim", help="Run the node simulator.")] = True,
    leader_elect: Annotated[bool, typer.Option("--leader-elect", help="Run only while holding the "
                                               "kube-system/kplane-controllers Lease.")] = False,
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", min=1, max=65535,
                                                     help="Serve Prometheus metrics on 127.0.0.1:PORT.")] = None,
    context: Annotated[str | None, typer.Option("--context", help="Kubeconfig context to use.")] = None,
    rgd_max_graph_revisions: Annotated[int, typer.Option(
        "--rgd-max-graph-revisions", min=1,
        help="GraphRevisions kept per ResourceGraphDefinition (kro's flag of the same name).")] = (
        controllers_cmd.DEFAULT_MAX_GRAPH_REVISIONS),
    parent_pid: Annotated[int | None, typer.Option("--parent-pid", hidden=True)] = None,
) -> None:
    """Run the built-in controllers, the scheduler and the node simulator against any cluster."""
    controllers_cmd.run(controllers_cmd.ControllersOptions(
        kubeconfig=kubeconfig, nodes=nodes, nodes_file=nodes_file, sim=sim, leader_elect=leader_elect,
        metrics_port=metrics_port, context=context, parent_pid=parent_pid,
        rgd_max_graph_revisions=rgd_max_graph_revisions))


def main() -> None:
    app(prog_name="kplane")


if __name__ == "__main__":
    main()
