"""`kplane controllers`: every built-in controller, kro's RGD controller, the scheduler and the node simulator,
in one process.

It is an ordinary API client of whatever cluster the kubeconfig names. `kplane up` runs it as a child
process (`ControllersSupervisor`): restarted with backoff when it dies, stopped on shutdown, its output in
`<data-dir>/controllers.log`. The child also watches its parent, so a killed `kplane up` leaves nothing
behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from lightkube import AsyncClient

from kplane.cli import eventloop
from kplane.controllers.builtin import builtin_controllers
from kplane.controllers.resourceclaim import dra_api_served
from kplane.graphs.controller import RgdController
from kplane.graphs.revisions import DEFAULT_MAX_REVISIONS as DEFAULT_MAX_GRAPH_REVISIONS
from kplane.runtime import LeaderElectionConfig, LeaderElector, Manager, SharedInformers, client_from_kubeconfig
from kplane.runtime.client import KubeconfigError, load_kubeconfig
from kplane.runtime.gctune import tune_gc
from kplane.scheduler import run_scheduler
from kplane.sim import NodeConfig, default_node_configs, node_configs_from_yaml, run_node_simulator
from kplane.sim.gpudriver import run_gpu_driver

log = logging.getLogger("kplane.controllers")

LEASE_NAME = "kplane-controllers"
PARENT_POLL_S = 1.0
RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0
STABLE_RUN_S = 60.0
STOP_TIMEOUT_S = 10.0
NODE_FILE = "nodes.yaml"


@dataclass(frozen=True)
class ControllersOptions:
    kubeconfig: Path
    nodes: int = 1
    nodes_file: Path | None = None
    sim: bool = True
    leader_elect: bool = False
    metrics_port: int | None = None
    context: str | None = None
    parent_pid: int | None = None
    rgd_max_graph_revisions: int = DEFAULT_MAX_GRAPH_REVISIONS


def node_configs(options: ControllersOptions) -> list[NodeConfig]:
    """The simulated nodes: those of the nodes file when given, else `--nodes` default ones."""
    if not options.sim:
        return []
    if options.nodes_file is not None:
        try:
            return node_configs_from_yaml(options.nodes_file.read_text())
        except ValueError as exc:
            raise ValueError(f"{options.nodes_file}: {exc}") from None
    return default_node_configs(options.nodes)


def validate(options: ControllersOptions) -> list[NodeConfig]:
    try:
        load_kubeconfig(options.kubeconfig, context=options.context)
    except KubeconfigError as exc:
        raise ValueError(str(exc)) from None
    return node_configs(options)


def run(options: ControllersOptions) -> None:
    """Run until SIGTERM/SIGINT (or the parent process going away)."""
    nodes = validate(options)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "httpcore"):  # one line per request otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if options.metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(options.metrics_port, addr="127.0.0.1")
        log.info("metrics on http://127.0.0.1:%d/metrics", options.metrics_port)
    tune_gc()
    with contextlib.suppress(KeyboardInterrupt):
        eventloop.run(_main(options, nodes))


async def _main(options: ControllersOptions, nodes: list[NodeConfig]) -> None:
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main.cancel)
    watcher = asyncio.ensure_future(_exit_with_parent(options.parent_pid, main.cancel)) if options.parent_pid else None
    client = client_from_kubeconfig(options.kubeconfig, context=options.context)
    try:
        await run_all(client, nodes, leader_elect=options.leader_elect,
                      max_graph_revisions=options.rgd_max_graph_revisions)
    except asyncio.CancelledError:
        log.info("stopping")
    finally:
        if watcher is not None:
            watcher.cancel()
        await client.close()


async def run_simulated_gpu_driver(client: AsyncClient, informers: SharedInformers) -> None:
    """The simulated GPU DRA driver publishes ResourceSlices for simulated nodes, where the API serves DRA."""
    if await dra_api_served(client):
        await run_gpu_driver(client, informers)


async def run_all(client: AsyncClient, nodes: list[NodeConfig], *, leader_elect: bool = False,
                  max_graph_revisions: int = DEFAULT_MAX_GRAPH_REVISIONS) -> None:
    """All built-in components against `client`; with `leader_elect`, only while holding the Lease."""
    informers = SharedInformers(client)
    builtin = builtin_controllers(client, informers)
    manager = Manager(client, informers=informers)
    for controller in builtin.controllers:
        manager.add(controller)
    components: list[Callable[[], Awaitable[None]]] = [manager.run, *builtin.runnables,
                                                       lambda: run_scheduler(client, informers=informers),
                                                       RgdController(client, informers,
                                                                     max_graph_revisions=max_graph_revisions).run]
    if nodes:
        components.append(lambda: run_node_simulator(client, nodes, informers=informers))
        components.append(lambda: run_simulated_gpu_driver(client, informers))

    async def lead() -> None:
        async with asyncio.TaskGroup() as group:
            for component in components:
                group.create_task(supervised(component))

    if leader_elect:
        await LeaderElector(client, LeaderElectionConfig(name=LEASE_NAME)).run(lead)
    else:
        await lead()


async def _exit_with_parent(parent_pid: int, stop: Callable[[], object]) -> None:
    while os.getppid() == parent_pid:
        await asyncio.sleep(PARENT_POLL_S)
    log.warning("parent process %d is gone", parent_pid)
    stop()


async def supervised(component: Callable[[], Awaitable[None]]) -> None:
    """Run a component until it returns; a crash is logged and the component restarted with backoff,
    so one failing part (say, the API is not up yet) never takes the others down."""
    failures = 0
    while True:
        started = time.monotonic()
        try:
            await component()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s crashed; restarting", getattr(component, "__qualname__", component))
        failures = 1 if time.monotonic() - started > STABLE_RUN_S else failures + 1
        await asyncio.sleep(restart_delay(failures))


def restart_delay(failures: int) -> float:
    return min(RESTART_MAX_S, RESTART_MIN_S * 2.0 ** max(0, failures - 1))


class ControllersSupervisor:
    """Keeps one `kplane controllers` child running for `kplane up`."""

    def __init__(self, data_dir: Path, nodes: int) -> None:
        self.data_dir = data_dir
        self.nodes = nodes
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = False

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "kplane", "controllers", "--kubeconfig", str(self.data_dir / "kubeconfig"),
                "--nodes", str(self.nodes), "--parent-pid", str(os.getpid())]
        if (self.data_dir / NODE_FILE).is_file():
            args += ["--nodes-file", str(self.data_dir / NODE_FILE)]
        return args

    def start(self) -> None:
        with open(self.data_dir / "controllers.log", "ab") as log_file:
            # A session of its own: a Ctrl-C on the terminal reaches `kplane up`, which stops the child.
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log_file,
                                         stderr=log_file, start_new_session=True)
        log.info("controllers started (pid %d); log: %s", self.proc.pid, self.data_dir / "controllers.log")

    async def run(self) -> None:
        """Start the child and restart it whenever it exits, until cancelled."""
        failures = 0
        while not self._stopping:
            started = time.monotonic()
            self.start()
            assert self.proc is not None
            while self.proc.poll() is None:
                await asyncio.sleep(0.5)
            if self._stopping:
                return
            failures = 1 if time.monotonic() - started > STABLE_RUN_S else failures + 1
            delay = restart_delay(failures)
            log.warning("controllers exited with %s; restarting in %.0fs", self.proc.returncode, delay)
            await asyncio.sleep(delay)

    def stop(self) -> None:
        self._stopping = True
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
