"""Running a plan on the kplane control plane of a data directory, and rolling it back.

State lives in ``<data-dir>/upgrade-state.json`` (written atomically after every restart), so that a later
``kplane upgrade apply`` resumes and ``kplane upgrade rollback`` knows the previous binary level and the
flags it ran with. Phases: ``step1`` (binary at V, emulating the old level: rollback-safe), ``step3``
(emulating V), ``step4`` (min-compatibility V), ``rolled-back``.

Rollback follows KEP-4330 (keps/sig-architecture/4330-compatibility-versions, "binary rollback during the
soak window"): it is offered only while the emulated version is still the old one, because once a server
emulates V it may have stored data and turned on behaviour that an older binary cannot read.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
from lightkube import Client

from kplane.upgrades.inspect import connect, inspect_cluster, parse_version_info
from kplane.upgrades.kapi import ApiUnavailable, get_json, get_raw
from kplane.upgrades.plan import Plan, ServerVersion, build_plan
from kplane.upgrades.process import ControlPlaneProcess, RestartTiming, UpArgs
from kplane.upgrades.soak import SoakReport, WatchProbe, soak
from kplane.versions.gates import all_gates

STATE_FILE = "upgrade-state.json"
THROUGH = ("step1", "step3", "step4")
Progress = Callable[[str, str], None]  # (step name, message)


class RollbackRefused(Exception):
    """Rollback is not possible in the recorded state; the message names the reason."""


@dataclass
class UpgradeState:
    target: int
    from_binary: int
    from_emulated: int
    from_min_compat: int
    from_args: dict[str, Any]  # UpArgs of the pre-upgrade server
    binary: int
    emulated: int
    min_compat: int
    phase: str = "planned"
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, raw: bytes) -> UpgradeState:
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return cls(**data)


@dataclass
class StepRecord:
    name: str
    args: dict[str, Any]
    timing: RestartTiming | None = None
    soak: SoakReport | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.soak is not None and self.soak.ok


@dataclass
class RunReport:
    """What ``apply`` / ``rollback`` did: ``status`` is done, blocked, failed or refused."""

    status: str
    message: str
    plan: Plan | None = None
    steps: list[StepRecord] = field(default_factory=list)


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def load_state(data_dir: Path) -> UpgradeState | None:
    path = state_path(data_dir)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return UpgradeState.from_json(raw)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a kplane upgrade state ({err}); remove it to start over") from None


def save_state(data_dir: Path, state: UpgradeState) -> None:
    path = state_path(data_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(state.to_json())
    os.replace(tmp, path)


def rollback_refusal(state: UpgradeState | None, live: ServerVersion) -> str | None:
    """Why a binary rollback is not possible now; None when it is (pure)."""
    if state is None:
        return "no upgrade is recorded for this control plane; nothing to roll back"
    if state.phase == "rolled-back":
        return f"already rolled back to 1.{state.from_binary}"
    if live.min_compat > state.from_min_compat and live.min_compat > state.from_emulated:
        return (f"the min-compatibility version is 1.{live.min_compat} (step 4, the point of no return): stored "
                f"data may no longer be readable by 1.{state.from_binary}")
    if live.emulated != state.from_emulated:
        return (f"the control plane already emulates 1.{live.emulated} (step 3 done): data and behaviour of "
                f"1.{live.emulated} may be in use, which a 1.{state.from_binary} binary cannot read; binary rollback "
                f"is only possible while emulating 1.{state.from_emulated}")
    if live.binary == state.from_binary:
        return f"the control plane already runs the 1.{state.from_binary} binary; nothing to roll back"
    return None


def steps_to_run(plan: Plan, through: str) -> list[str]:
    """The restart steps (step1, step3, step4) still pending up to ``through``."""
    if through not in THROUGH:
        raise ValueError(f"--through must be one of {', '.join(THROUGH)}, got {through!r}")
    wanted = THROUGH[: THROUGH.index(through) + 1]
    return [s.name for s in plan.steps if s.name in wanted and s.status == "pending"]


def _ready(client: Client) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return get_raw(client, "/readyz", timeout=1)[0] == 200
        except httpx.HTTPError:
            return False
    return check


def _live_version(client: Client) -> ServerVersion:
    return parse_version_info(get_json(client, "/version"))


class Runner:
    """Restarts with soak checks, shared by apply and rollback."""

    def __init__(self, data_dir: Path, progress: Progress | None = None) -> None:
        self.data_dir = data_dir
        self.process = ControlPlaneProcess(data_dir)
        self.progress = progress or (lambda step, message: None)

    def client(self) -> Client:
        return connect(self.process.kubeconfig)

    def live_version(self) -> ServerVersion:
        with contextlib.closing(self.client()) as client:
            return _live_version(client)

    def restart_and_soak(self, name: str, old: UpArgs, new: UpArgs) -> StepRecord:
        record = StepRecord(name, asdict(new))
        # Every client is closed once its phase is over: an idle keep-alive connection makes the server wait
        # out its graceful-shutdown timeout at the next restart.
        with contextlib.closing(self.client()) as client:
            probe = WatchProbe(client)
            try:
                probe.start(f"before-{name}")
            except (ApiUnavailable, httpx.HTTPError) as err:
                probe.abandon()
                record.error = f"cannot open the watch probe: {err}"
                return record
            self.progress(name, f"restarting with {' '.join(new.argv(self.data_dir)[3:])}")
            try:
                with contextlib.closing(self.client()) as ready:
                    record.timing = self.process.restart(new, _ready(ready), before_stop=probe.interrupt)
            except ValueError as err:
                probe.abandon()
                record.error = f"the new server did not come up: {err}"
                self.progress(name, "restoring the previous flags")
                try:
                    with contextlib.closing(self.client()) as ready:
                        self.process.restart(old, _ready(ready))
                except ValueError as again:
                    record.error += f"; restoring the previous flags failed too: {again}"
                return record
            self.progress(name, f"up in {record.timing.total_ms:.0f} ms; soak checks")
            with contextlib.closing(self.client()) as checker:
                record.soak = soak(checker, probe, f"after-{name}")
        for check in record.soak.checks:
            self.progress(name, f"{'ok' if check.ok else 'FAILED'} {check.name}: {check.detail}")
        return record


def _failure(step: StepRecord) -> str:
    if step.error:
        return step.error
    failed = step.soak.failed() if step.soak is not None else []
    return "; ".join(f"{c.name}: {c.detail}" for c in failed) or "unknown failure"


def _args_for(step: str, plan: Plan, current: UpArgs) -> UpArgs:
    flags = next(s.flags for s in plan.steps if s.name == step)
    assert flags is not None
    return current.with_levels(flags.kube_version, flags.emulated_version, flags.min_compatibility_version)


def _record(state: UpgradeState, step: StepRecord, live: ServerVersion | None) -> None:
    entry: dict[str, Any] = {"step": step.name, "args": step.args, "ok": step.ok, "error": step.error}
    if step.timing is not None:
        entry["restartMs"] = round(step.timing.total_ms, 1)
    if step.soak is not None:
        entry["checks"] = [asdict(c) for c in step.soak.checks]
    state.history.append(entry)
    if live is not None:
        state.binary, state.emulated, state.min_compat = live.binary, live.emulated, live.min_compat


def _fresh_state(target: int, live: ServerVersion, args: UpArgs, previous: UpgradeState | None) -> UpgradeState:
    """Keep the recorded origin while an upgrade to the same target is under way (resuming after step 1)."""
    if previous is not None and previous.target == target and previous.phase != "rolled-back" \
            and live.binary == target:
        return previous
    return UpgradeState(target=target, from_binary=live.binary, from_emulated=live.emulated,
                        from_min_compat=live.min_compat, from_args=asdict(args), binary=live.binary,
                        emulated=live.emulated, min_compat=live.min_compat)


def apply(data_dir: Path, target: int, through: str = "step3", progress: Progress | None = None) -> RunReport:
    if through not in THROUGH:
        raise ValueError(f"--through must be one of {', '.join(THROUGH)}, got {through!r}")
    runner = Runner(data_dir, progress)
    args = runner.process.running_args()
    gates = all_gates()
    with contextlib.closing(runner.client()) as client:
        plan = build_plan(inspect_cluster(client, target, gates), target, gates)
    if plan.blockers:
        return RunReport("blocked", f"{len(plan.blockers)} blocker(s); nothing was changed", plan)
    state = _fresh_state(target, plan.current, args, load_state(data_dir))
    todo = steps_to_run(plan, through)
    report = RunReport("done", "", plan)
    current = args
    for name in todo:
        new = _args_for(name, plan, current)
        step = runner.restart_and_soak(name, current, new)
        report.steps.append(step)
        live = None
        if step.timing is not None:
            try:
                live = runner.live_version()
            except (ApiUnavailable, httpx.HTTPError):
                live = None
            state.phase = name
        _record(state, step, live)
        save_state(data_dir, state)
        if not step.ok:
            report.status = "failed"
            report.message = f"{name} failed: {_failure(step)}"
            if name == "step1" and step.timing is not None:
                report.message += " (still rollback-safe: `kplane upgrade rollback` returns to the old binary)"
            return report
        current = new
    skipped = [s.name for s in plan.steps if s.name == through and s.status == "unavailable"]
    done = todo[-1] if todo else "nothing to do"
    report.message = f"upgrade to 1.{target}: {done} complete" + (
        f" ({', '.join(skipped)} not available at 1.{target})" if skipped else "")
    return report


def rollback(data_dir: Path, progress: Progress | None = None) -> RunReport:
    runner = Runner(data_dir, progress)
    state = load_state(data_dir)
    args = runner.process.running_args()
    live = runner.live_version()
    reason = rollback_refusal(state, live)
    if reason is not None:
        return RunReport("refused", f"rollback refused: {reason}")
    assert state is not None
    previous = UpArgs(**{**state.from_args, "port": args.port})
    step = runner.restart_and_soak("rollback", args, previous)
    after = None
    if step.timing is not None:
        try:
            after = runner.live_version()
        except (ApiUnavailable, httpx.HTTPError):
            after = None
        state.phase = "rolled-back"
    _record(state, step, after)
    save_state(data_dir, state)
    report = RunReport("done" if step.ok else "failed", "", None, [step])
    report.message = (f"rolled back to the 1.{state.from_binary} binary emulating 1.{state.from_emulated}"
                      if step.ok else f"rollback failed: {_failure(step)}")
    return report
