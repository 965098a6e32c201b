"""Human text (rich) and JSON for plans and apply/rollback reports. Blockers always come first."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape

from kplane.upgrades.apply import RunReport, StepRecord
from kplane.upgrades.plan import Plan


def plan_json(plan: Plan) -> str:
    return orjson.dumps(plan.to_dict(), option=orjson.OPT_INDENT_2).decode()


def print_plan(plan: Plan, console: Console) -> None:
    cur = plan.current
    console.print(f"[bold]Upgrade plan[/bold]: 1.{cur.binary} (emulating 1.{cur.emulated}, min compatibility "
                  f"1.{cur.min_compat}) → 1.{plan.target}")
    if plan.blockers:
        console.print(f"\n[bold red]Blockers ({len(plan.blockers)})[/bold red]")
        for finding in plan.blockers:
            console.print(f"  [red]✗[/red] {escape(f'[{finding.code}]')} {escape(finding.message)}")
    else:
        console.print("\n[green]No blockers.[/green]")
    if plan.warnings:
        console.print(f"\n[bold yellow]Warnings ({len(plan.warnings)})[/bold yellow]")
        for finding in plan.warnings:
            console.print(f"  [yellow]![/yellow] {escape(f'[{finding.code}]')} {escape(finding.message)}")
    console.print("\n[bold]Steps[/bold]")
    for step in plan.steps:
        mark = {"done": "[green]✓[/green]", "unavailable": "[dim]-[/dim]"}.get(step.status, "•")
        tags = [t for t, on in (("optional", step.optional), ("point of no return", step.point_of_no_return)) if on]
        console.print(f"  {mark} {step.number}. [bold]{escape(step.title)}[/bold]"
                      + (f" [dim]({', '.join(tags)})[/dim]" if tags else "")
                      + (f" [dim]{step.status}[/dim]" if step.status != "pending" else ""))
        console.print(f"       {escape(step.detail)}")
        if step.flags is not None:
            flags = [f"--kube-version {step.flags.kube_version}"]
            if step.flags.emulated_version:
                flags.append(f"--emulated-version {step.flags.emulated_version}")
            if step.flags.min_compatibility_version:
                flags.append(f"--min-compatibility-version {step.flags.min_compatibility_version}")
            console.print(f"       flags: {' '.join(flags)}")
        if step.rollback:
            console.print(f"       rollback: {escape(step.rollback)}")
    if plan.removed_apis:
        console.print(f"\n[bold]APIs no longer served at 1.{plan.target}[/bold]")
        for line in plan.removed_apis:
            console.print(f"  - {escape(line)}")
    if plan.gate_changes:
        console.print(f"\n[bold]Feature gates changing at step 3 ({len(plan.gate_changes)})[/bold]")
        for change in plan.gate_changes:
            console.print(f"  - {change.name}: {change.stage_from} {_onoff(change.default_from)} → "
                          f"{change.stage_to} {_onoff(change.default_to)}")


def _onoff(value: bool) -> str:
    return "on" if value else "off"


def _step_dict(step: StepRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"step": step.name, "ok": step.ok, "args": step.args, "error": step.error}
    if step.timing is not None:
        out["timing"] = asdict(step.timing)
    if step.soak is not None:
        out["checks"] = [asdict(c) for c in step.soak.checks]
        out["objectsListed"] = sum(step.soak.objects.values())
    return out


def report_json(report: RunReport) -> str:
    data: dict[str, Any] = {"status": report.status, "message": report.message,
                            "steps": [_step_dict(s) for s in report.steps]}
    if report.plan is not None:
        data["plan"] = report.plan.to_dict()
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


def print_report(report: RunReport, console: Console) -> None:
    if report.plan is not None and report.status == "blocked":
        print_plan(report.plan, console)
        console.print()
    for step in report.steps:
        head = f"[green]✓[/green] {step.name}" if step.ok else f"[red]✗[/red] {step.name}"
        timing = f" (restart {step.timing.total_ms:.0f} ms)" if step.timing is not None else ""
        console.print(head + timing)
        if step.soak is not None:
            for check in step.soak.checks:
                console.print(f"    {'ok' if check.ok else '[red]FAILED[/red]'} {check.name}: {escape(check.detail)}")
        if step.error:
            console.print(f"    [red]{escape(step.error)}[/red]")
    style = {"done": "green", "blocked": "red", "failed": "red", "refused": "yellow"}[report.status]
    console.print(f"[{style}]{escape(report.message)}[/{style}]")
