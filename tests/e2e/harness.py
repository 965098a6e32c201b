"""Starting a real ``kplane up`` for end-to-end tests and driving it with kubectl.

Each test session gets its own data directory, a free port and an isolated kubectl HOME (so kubectl's
discovery cache never leaks between runs).
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KUBECTL = shutil.which("kubectl")
_counter = itertools.count()


def unique(prefix: str) -> str:
    """A name no other test in the session uses."""
    return f"{prefix}-{next(_counter)}"


@dataclass
class ControlPlane:
    data_dir: Path
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["HOME"] = str(self.home)
        env.update(self.extra_env)
        return env

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None, "kubectl is not installed"
        proc = subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True, env=self.env(),
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def kplane(self, *args: str, check: bool = True, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "kplane", *args], capture_output=True, text=True,
                              env=self.env(), timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kplane {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc

    def up(self, *extra: str) -> None:
        self.kplane("up", "--detach", "--data-dir", str(self.data_dir), "--port", "0", *extra)

    def down(self) -> None:
        self.kplane("down", "--data-dir", str(self.data_dir), check=False)

    def server_url(self) -> str:
        import yaml

        config = yaml.safe_load(self.kubeconfig.read_text())
        return str(config["clusters"][0]["cluster"]["server"])

    def credentials(self) -> tuple[str, str, str]:
        """The server URL, the CA certificate (PEM) and the bearer token, for raw HTTPS clients."""
        import base64

        import yaml

        config = yaml.safe_load(self.kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        ca_pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
        return str(cluster["server"]), ca_pem, str(config["users"][0]["user"]["token"])

    def wait_for(self, predicate: Any, timeout: float = 30, interval: float = 0.2, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


def start_control_plane(base: Path, *extra: str, env: dict[str, str] | None = None) -> ControlPlane:
    """``env`` reaches the server process too (``kplane up --detach`` passes its environment on)."""
    home = base / "home"
    home.mkdir(parents=True, exist_ok=True)
    plane = ControlPlane(base / "data", home, dict(env or {}))
    plane.up(*extra)
    return plane


def start_serving_crd(base: Path, crd: str, *extra: str, timeout: float = 60) -> ControlPlane:
    """A control plane whose controllers have installed `crd` (kro's RGD or GraphRevision CRD, say)."""
    plane = start_control_plane(base, *extra)
    plane.wait_for(lambda: plane.kubectl("get", "crd", crd, check=False).returncode == 0, timeout=timeout,
                   what=f"the CRD {crd}")
    return plane


class Background:
    """A kubectl command left running (``get -w``, ``delete``, ``wait``) whose stdout is read line by line."""

    def __init__(self, plane: ControlPlane, *args: str) -> None:
        assert KUBECTL is not None
        self.proc = subprocess.Popen([KUBECTL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=plane.env())
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, predicate: Callable[[str], bool], timeout: float = 20) -> str:
        seen: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no matching line; saw {seen!r}") from None
            seen.append(line)
            if predicate(line):
                return line

    def finish(self, timeout: float = 20) -> tuple[int, str]:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
