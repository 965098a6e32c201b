"""``kplane upgrade plan | apply | rollback``: two-step control-plane upgrades with a rollback-safe soak.

Exit codes: 0 success (plan: no blockers); 1 bad input or an unreachable cluster (one line on stderr);
3 blockers found (plan, apply) or rollback refused; 4 a restart or soak check failed (apply stops there,
rollback reports it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx2
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from kplane.upgrades import apply as apply_mod
from kplane.upgrades import render
from kplane.upgrades.inspect import connect, inspect_cluster
from kplane.upgrades.kapi import ApiUnavailable
from kplane.upgrades.plan import build_plan, parse_target
from kplane.versions.gates import all_gates

EXIT_BLOCKED = 3
EXIT_FAILED = 4

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Plan, apply and roll back two-step control-plane upgrades (compatibility versions).")

F = TypeVar("F", bound=Callable[..., Any])
Target = Annotated[str, typer.Option("--to", help="Target Kubernetes minor version, e.g. 1.36.")]
DataDir = Annotated[Path, typer.Option("--data-dir", help="Data directory of the kplane control plane.",
                                       envvar="KPLANE_DATA_DIR")]
Output = Annotated[str, typer.Option("-o", "--output", help="text or json.")]


def _one_line(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ValueError, OSError, ApiUnavailable, httpx2.HTTPError) as err:
            text = " ".join(str(err).split()) or type(err).__name__
            typer.echo(f"error: {text}", err=True)
            raise typer.Exit(1) from None
        except Exception as err:  # lightkube's config errors have no common base
            if type(err).__module__.startswith("lightkube"):
                typer.echo(f"error: {' '.join(str(err).split())}", err=True)
                raise typer.Exit(1) from None
            raise
    return wrapper  # type: ignore[return-value]


def _output(value: str) -> str:
    if value not in ("text", "json"):
        raise ValueError(f"-o must be text or json, got {value!r}")
    return value


@app.command()
@_one_line
def plan(
    to: Target,
    kubeconfig: Annotated[Path | None, typer.Option("--kubeconfig", help="Cluster to inspect (default: "
                                                    "$KUBECONFIG or ~/.kube/config).")] = None,
    context: Annotated[str | None, typer.Option("--context", help="Kubeconfig context.")] = None,
    filename: Annotated[list[Path] | None, typer.Option("-f", "--filename", help="Manifest files or directories "
                                                        "to check for removed APIs (repeatable).")] = None,
    output: Output = "text",
) -> None:
    """Inspect a cluster and print blockers, then the step-by-step plan (exit 3 when blocked)."""
    target, fmt = parse_target(to), _output(output)
    if kubeconfig is not None and not kubeconfig.is_file():
        raise ValueError(f"--kubeconfig {kubeconfig}: no such file")
    gates = all_gates()
    result = build_plan(inspect_cluster(connect(kubeconfig, context), target, gates, filename or []), target, gates)
    if fmt == "json":
        typer.echo(render.plan_json(result))
    else:
        render.print_plan(result, Console(highlight=False, soft_wrap=True))
    if result.blockers:
        raise typer.Exit(EXIT_BLOCKED)


@contextmanager
def _progress(enabled: bool) -> Iterator[apply_mod.Progress | None]:
    if not enabled:
        yield None
        return
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.fields[step]}[/bold] {task.description}"),
                  TimeElapsedColumn(), console=Console(stderr=True)) as bar:
        tasks: dict[str, Any] = {}

        def show(step: str, message: str) -> None:
            if step not in tasks:
                for other in tasks.values():
                    bar.update(other, completed=1, total=1)
                tasks[step] = bar.add_task(message, total=None, step=step)
            bar.update(tasks[step], description=message)
            bar.console.print(f"[dim]{step}:[/dim] {escape(message)}")

        yield show
        for task in tasks.values():
            bar.update(task, completed=1, total=1)


def _finish(report: apply_mod.RunReport, fmt: str) -> None:
    if fmt == "json":
        typer.echo(render.report_json(report))
    else:
        render.print_report(report, Console(highlight=False, soft_wrap=True))
    code = {"done": 0, "blocked": EXIT_BLOCKED, "refused": EXIT_BLOCKED}.get(report.status, EXIT_FAILED)
    if code:
        raise typer.Exit(code)


def _data_dir(path: Path) -> Path:
    if not path.is_dir():
        raise ValueError(f"--data-dir {path}: no such directory")
    return path.resolve()


@app.command()
@_one_line
def apply(
    to: Target,
    data_dir: DataDir = Path(".kplane"),
    through: Annotated[str, typer.Option("--through", help="Last step to run: step1 (binaries, rollback-safe), "
                                         "step3 (emulated version) or step4 (min-compatibility, no return).")]
    = "step3",
    progress: Annotated[bool, typer.Option("--progress", help="Show each step as it runs.")] = False,
    output: Output = "text",
) -> None:
    """Run the plan on the kplane control plane of DIR: restart at each step, soak-check, stop on failure."""
    target, fmt, directory = parse_target(to), _output(output), _data_dir(data_dir)
    if through not in apply_mod.THROUGH:
        raise ValueError(f"--through must be one of {', '.join(apply_mod.THROUGH)}, got {through!r}")
    with _progress(progress) as show:
        report = apply_mod.apply(directory, target, through, show)
    _finish(report, fmt)


@app.command()
@_one_line
def rollback(
    data_dir: DataDir = Path(".kplane"),
    progress: Annotated[bool, typer.Option("--progress", help="Show the restart as it runs.")] = False,
    output: Output = "text",
) -> None:
    """Return to the previous binary while the emulated version is still the old one (exit 3: refused)."""
    fmt, directory = _output(output), _data_dir(data_dir)
    with _progress(progress) as show:
        report = apply_mod.rollback(directory, show)
    _finish(report, fmt)
