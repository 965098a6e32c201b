"""Restarting the kplane control plane of a data directory with new flags, keeping the API gap short.

The control plane is driven through its CLI only (``python -m kplane up``), never imported: the upgrade tool
must work the same whether the server is kplane's or another process. Two things shorten the gap between
the old server closing its port and the new one answering:

- the new process is started *before* the old one is stopped, in a launcher that already imported the CLI
  (the ~0.6 s of imports happen while the old server still serves) and waits for a go signal on stdin;
- readiness is polled every few milliseconds;
- the old process is killed once it has released the store and the port (see ``_stop``).

The old process must be gone before the new one opens the store (one writer per SQLite database), so the
remaining gap is the old server's shutdown plus the new one's store opening.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

STOP_TIMEOUT = 30.0
START_TIMEOUT = 60.0
POLL = 0.005

# The launcher: import the CLI and load the version profile of the new flags (this validates them, and
# warms the caches of the version tables), say "warm" (or the flag error), move output to the log, wait for
# "go", then run `kplane up`.
_LAUNCHER = """
import json, os, sys
import kplane.cli.main as cli
from kplane.versions.profile import load_profile
try:
    load_profile(*json.loads(sys.argv[2]))
except ValueError as err:
    sys.stdout.write(f"{err}\\n"); sys.exit(1)
log = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
sys.stdout.write("warm\\n"); sys.stdout.flush()
os.dup2(log, 1); os.dup2(log, 2)
if sys.stdin.readline().strip() != "go":
    sys.exit(0)
sys.argv = ["kplane", *sys.argv[3:]]
cli.main()
"""


@dataclass(frozen=True)
class UpArgs:
    """How ``kplane up`` was (or is to be) started: the flags the upgrade keeps or changes."""

    port: int = 6443
    nodes: int = 1
    controllers: bool = True
    kube_version: str = "1.36"
    emulated_version: str | None = None
    min_compatibility_version: str | None = None
    feature_gates: str = ""

    def with_levels(self, kube_version: str, emulated: str | None, min_compat: str | None) -> UpArgs:
        return replace(self, kube_version=kube_version, emulated_version=emulated, min_compatibility_version=min_compat)

    def argv(self, data_dir: Path) -> list[str]:
        args = ["up", "--data-dir", str(data_dir), "--port", str(self.port), "--kube-version", self.kube_version,
                "--nodes", str(self.nodes), "--controllers" if self.controllers else "--no-controllers"]
        if self.emulated_version is not None:
            args += ["--emulated-version", self.emulated_version]
        if self.min_compatibility_version is not None:
            args += ["--min-compatibility-version", self.min_compatibility_version]
        if self.feature_gates:
            args += ["--feature-gates", self.feature_gates]
        return args


_VALUE_FLAGS = {"--port": "port", "--nodes": "nodes", "--kube-version": "kube_version",
                "--emulated-version": "emulated_version", "--min-compatibility-version": "min_compatibility_version",
                "--feature-gates": "feature_gates"}


def parse_up_argv(argv: Sequence[str]) -> UpArgs:
    """The flags of a running ``kplane up`` from its command line (``/proc/<pid>/cmdline``)."""
    try:
        start = list(argv).index("up") + 1
    except ValueError:
        raise ValueError(f"not a `kplane up` command line: {shlex.join(argv)}") from None
    values: dict[str, object] = {}
    rest = list(argv[start:])
    i = 0
    while i < len(rest):
        token = rest[i]
        name, eq, inline = token.partition("=")
        if name in _VALUE_FLAGS:
            if eq:
                value = inline
            else:
                i += 1
                if i >= len(rest):
                    raise ValueError(f"`kplane up` command line ends after {name}")
                value = rest[i]
            key = _VALUE_FLAGS[name]
            values[key] = int(value) if key in ("port", "nodes") else value
        elif token in ("--controllers", "--no-controllers"):
            values["controllers"] = token == "--controllers"
        i += 1
    return UpArgs(**values)  # type: ignore[arg-type]


def kubeconfig_port(kubeconfig: Path) -> int:
    """The port the server really listens on (``--port 0`` picks one; the kubeconfig names it)."""
    try:
        config = yaml.safe_load(kubeconfig.read_text())
        server = str(config["clusters"][0]["cluster"]["server"])
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        raise ValueError(f"{kubeconfig}: no readable kubeconfig (is the control plane up?)") from None
    return int(server.rsplit(":", 1)[1].split("/", 1)[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


@dataclass(frozen=True)
class RestartTiming:
    stop_ms: float  # SIGTERM → old process gone
    start_ms: float  # go → new server ready
    total_ms: float  # SIGTERM → new server ready (an upper bound of the API gap)


class ControlPlaneProcess:
    """The ``kplane up`` process of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    def pid(self) -> int | None:
        try:
            pid = int((self.data_dir / "kplane.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        child = self._children.get(pid)
        if child is not None:
            return pid if child.poll() is None else None
        return pid if _alive(pid) else None

    def running_args(self) -> UpArgs:
        pid = self.pid()
        if pid is None:
            raise ValueError(f"no control plane is running on {self.data_dir} (start it with `kplane up --detach`)")
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError as err:
            raise ValueError(f"cannot read how the control plane of {self.data_dir} was started: {err}") from None
        args = parse_up_argv([a for a in argv if a])
        return replace(args, port=kubeconfig_port(self.kubeconfig))

    def _spawn(self, args: UpArgs) -> subprocess.Popen[bytes]:
        log = self.data_dir / "kplane.log"
        levels = json.dumps([args.kube_version, args.emulated_version, args.min_compatibility_version,
                             args.feature_gates])
        child = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(log), levels, *args.argv(self.data_dir)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        assert child.stdout is not None
        answer = child.stdout.readline().decode(errors="replace").strip()
        if answer != "warm":
            child.kill()
            child.wait()
            raise ValueError(answer or "the kplane launcher did not start (is kplane installed in this Python?)")
        child.stdout.close()
        self._children[child.pid] = child
        return child

    def _stop(self, pid: int) -> None:
        """SIGTERM, then wait until the server has released everything (its pid file goes last, after the
        store is closed, the port released and its controllers stopped). What remains is the interpreter
        freeing memory, which would only compete with the new server for CPU, so it is killed at that point."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.pid() == pid and time.monotonic() < deadline:
            time.sleep(POLL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        child = self._children.pop(pid, None)
        if child is not None:
            child.wait()
        while _alive(pid):
            time.sleep(POLL)

    def restart(self, args: UpArgs, ready: Callable[[], bool],
                before_stop: Callable[[], None] | None = None) -> RestartTiming:
        """Replace the running server with one started with ``args``; raise ValueError if it does not come
        up (the caller decides whether to restore the old flags). ``before_stop`` runs just before SIGTERM."""
        old = self.pid()
        child = self._spawn(args)
        began = time.monotonic()
        if before_stop is not None:
            before_stop()
        if old is not None:
            self._stop(old)
        stopped = time.monotonic()
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.close()
        deadline = stopped + START_TIMEOUT
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise ValueError(f"kplane exited during start-up: {self.last_log_line()}")
            if ready():
                done = time.monotonic()
                return RestartTiming(stop_ms=(stopped - began) * 1000, start_ms=(done - stopped) * 1000,
                                     total_ms=(done - began) * 1000)
            time.sleep(POLL)
        raise ValueError(f"kplane did not become ready in {START_TIMEOUT:.0f}s; see {self.data_dir / 'kplane.log'}")

    def last_log_line(self) -> str:
        try:
            lines = [line for line in (self.data_dir / "kplane.log").read_text().splitlines() if line.strip()]
        except OSError:
            return "no log"
        return lines[-1] if lines else "no output"
