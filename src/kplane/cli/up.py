"""Starting and stopping the embedded control plane, in the foreground or detached.

A detached control plane is the same process as a foreground one, started in its own session with its
output in ``<data-dir>/kplane.log`` and its pid in ``<data-dir>/kplane.pid``; ``up`` returns once the API
server answers ``/readyz``, so scripts can use the kubeconfig right away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kplane.apiserver.server import ServerOptions, serve
from kplane.cli import eventloop
from kplane.cli.controllers import ControllersSupervisor
from kplane.runtime.gctune import tune_gc
from kplane.versions.profile import load_profile

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class UpOptions:
    data_dir: Path
    port: int = 6443
    kube_version: str = "1.36"
    nodes: int = 1
    controllers: bool = True
    emulated_version: str | None = None
    min_compatibility_version: str | None = None
    feature_gates: str = ""


def validate(options: UpOptions) -> None:
    load_profile(options.kube_version, options.emulated_version, options.min_compatibility_version,
                 options.feature_gates)
    if options.data_dir.exists() and not options.data_dir.is_dir():
        raise ValueError(f"--data-dir {options.data_dir} exists and is not a directory")


def pid_file(data_dir: Path) -> Path:
    return data_dir / "kplane.pid"


def running_pid(data_dir: Path) -> int | None:
    path = pid_file(data_dir)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return None if _is_zombie(pid) else pid


def _is_zombie(pid: int) -> bool:
    """A killed server whose parent never reaps it still answers ``kill(pid, 0)``; it is not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


def run_foreground(options: UpOptions) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options.data_dir.mkdir(parents=True, exist_ok=True)
    pid = running_pid(options.data_dir)
    if pid is not None and pid != os.getpid():
        raise ValueError(f"a control plane is already running on {options.data_dir} (pid {pid})")
    pid_file(options.data_dir).write_text(f"{os.getpid()}\n")
    server_options = ServerOptions(data_dir=options.data_dir, port=options.port, kube_version=options.kube_version,
                                   emulated_version=options.emulated_version,
                                   min_compatibility_version=options.min_compatibility_version,
                                   feature_gates=options.feature_gates)
    supervisor = ControllersSupervisor(options.data_dir, options.nodes) if options.controllers else None
    signal.signal(signal.SIGTERM, _interrupt)
    tune_gc()
    try:
        _run(_serve(server_options, supervisor))
    finally:
        if supervisor is not None:
            supervisor.stop()
        with contextlib.suppress(OSError):
            if pid_file(options.data_dir).read_text().strip() == str(os.getpid()):
                pid_file(options.data_dir).unlink()


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (`kplane down`) stops like Ctrl-C: cleanup runs, the controllers child is stopped too.

    uvicorn re-raises the signal after its own graceful shutdown; without this handler that would end the
    process on the spot."""
    raise KeyboardInterrupt


async def _serve(server_options: ServerOptions, supervisor: ControllersSupervisor | None) -> None:
    """Serve the API; once it listens (kubeconfig written), keep the controllers child running beside it."""
    if supervisor is None:
        await serve(server_options)
        return
    ready = asyncio.Event()
    server = asyncio.ensure_future(serve(server_options, ready=ready,
                                         before_shutdown=lambda: asyncio.to_thread(supervisor.stop)))
    listening = asyncio.ensure_future(ready.wait())
    keeper: asyncio.Future[None] | None = None
    try:
        await asyncio.wait({server, listening}, return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set():
            keeper = asyncio.ensure_future(supervisor.run())
        await server
    finally:
        for task in (listening, keeper):
            if task is not None:
                task.cancel()
        supervisor.stop()


def _run(coro: Coroutine[Any, Any, None]) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        eventloop.run(coro)


def start_detached(options: UpOptions) -> int:
    options.data_dir.mkdir(parents=True, exist_ok=True)
    existing = running_pid(options.data_dir)
    if existing is not None:
        raise ValueError(f"a control plane is already running on {options.data_dir} (pid {existing})")
    kubeconfig = options.data_dir / "kubeconfig"
    with contextlib.suppress(FileNotFoundError):
        kubeconfig.unlink()
    args = [sys.executable, "-m", "kplane", "up", "--data-dir", str(options.data_dir), "--port", str(options.port),
            "--kube-version", options.kube_version, "--nodes", str(options.nodes),
            "--controllers" if options.controllers else "--no-controllers", *_compat_args(options)]
    log = open(options.data_dir / "kplane.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    log.close()
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ValueError(f"kplane exited during start-up: {_last_log_line(options.data_dir)}")
        if kubeconfig.exists() and _ready(kubeconfig):
            return proc.pid
        time.sleep(0.1)
    proc.terminate()
    raise ValueError(f"kplane did not become ready in {READY_TIMEOUT:.0f}s; see {options.data_dir / 'kplane.log'}")


def _compat_args(options: UpOptions) -> list[str]:
    """The KEP-4330 flags, passed on only when given, so that the child applies upstream's defaults itself."""
    args: list[str] = []
    if options.emulated_version is not None:
        args += ["--emulated-version", options.emulated_version]
    if options.min_compatibility_version is not None:
        args += ["--min-compatibility-version", options.min_compatibility_version]
    if options.feature_gates:
        args += ["--feature-gates", options.feature_gates]
    return args


def _last_log_line(data_dir: Path) -> str:
    try:
        lines = [line for line in (data_dir / "kplane.log").read_text().splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


def _ready(kubeconfig: Path) -> bool:
    try:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        return False
    import base64

    context = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    try:
        with urllib.request.urlopen(cluster["server"] + "/readyz", context=context, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def stop_detached(data_dir: Path) -> int:
    pid = running_pid(data_dir)
    if pid is None:
        raise ValueError(f"no control plane is running on {data_dir}")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if running_pid(data_dir) is None:
            return pid
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return pid
