"""Durability: ``kill -9`` the API server during a stream of creates; after a restart on the same data dir
every acknowledged create is there, and every stored object is whole.

A write is acknowledged only after it is fsynced (issue 2), so a 201 that reached the client must survive a
crash at any point. The writer runs in its own process (``python -m tests.e2e.test_durability``) with
several requests in flight and prints each name once its 201 arrived; whatever it printed before the kill
is the set that must survive.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson

from tests.e2e.harness import ControlPlane, start_control_plane

NS = "durability"
CONCURRENCY = 8
ACKS_BEFORE_KILL = 300
ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"^w\d+-\d+$")


def expected_data(name: str) -> dict[str, str]:
    """Content derived from the name alone, so the reader can tell a whole object from a torn one."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    return {"name": name, "payload": digest * 64, "tail": digest[::-1]}


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"writer": "durability"}}, "data": expected_data(name)}


def tls(ca_pem: str) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca_pem)


# --- the writer process ----------------------------------------------------------------------------------


async def write_until_refused(data_dir: Path, concurrency: int) -> None:
    server, ca_pem, token = ControlPlane(data_dir, data_dir).credentials()
    path = f"/api/v1/namespaces/{NS}/configmaps"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=server, verify=tls(ca_pem), limits=limits, timeout=30,
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"}) as client:

        async def worker(index: int) -> None:
            sequence = 0
            while True:
                name = f"w{index}-{sequence}"
                try:
                    response = await client.post(path, content=orjson.dumps(configmap(name)))
                except (httpx.TransportError, OSError):
                    return  # the server is gone
                if response.status_code != 201:
                    sys.stdout.write(f"! {name} {response.status_code} {response.text}\n")
                    sys.stdout.flush()
                    return
                sys.stdout.write(f"{name}\n")
                sys.stdout.flush()
                sequence += 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))


def main() -> None:
    parser = argparse.ArgumentParser(description="Create ConfigMaps until the server goes away.")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    args = parser.parse_args()
    asyncio.run(write_until_refused(args.data_dir, args.concurrency))


# --- the test --------------------------------------------------------------------------------------------


class Acks:
    """Collects the writer's output lines on a thread, so the test can wait for a count."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.lines.append("")  # end of output
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.lines) < count and "" not in self.lines and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            return len(self.lines)

    def finish(self, timeout: float) -> list[str]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the writer did not stop after the server was killed"
        return [line for line in self.lines if line]


def list_configmaps(plane: ControlPlane) -> list[dict[str, Any]]:
    server, ca_pem, token = plane.credentials()
    with httpx.Client(base_url=server, verify=tls(ca_pem), timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.get(f"/api/v1/namespaces/{NS}/configmaps")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        probe = client.post(f"/api/v1/namespaces/{NS}/configmaps", content=orjson.dumps(configmap("after-restart")),
                            headers={"Content-Type": "application/json"})
        assert probe.status_code == 201, probe.text
    return items


def test_acknowledged_creates_survive_kill_9(tmp_path: Path) -> None:
    plane = start_control_plane(tmp_path, "--no-controllers", "--nodes", "0")
    writer: subprocess.Popen[str] | None = None
    try:
        server, ca_pem, token = plane.credentials()
        created = httpx.post(f"{server}/api/v1/namespaces", content=orjson.dumps({"metadata": {"name": NS}}),
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                             verify=tls(ca_pem), timeout=30)
        assert created.status_code == 201, created.text
        server_pid = int((plane.data_dir / "kplane.pid").read_text())

        writer = subprocess.Popen([sys.executable, "-m", "tests.e2e.test_durability", "--data-dir",
                                   str(plane.data_dir)], cwd=ROOT, env=plane.env(), stdout=subprocess.PIPE,
                                  text=True)
        acks = Acks(writer)
        assert acks.wait_for(ACKS_BEFORE_KILL, timeout=15) >= ACKS_BEFORE_KILL, acks.lines[-3:]
        os.kill(server_pid, signal.SIGKILL)  # mid-stream: the writer still has requests in flight
        writer.wait(timeout=15)
        acknowledged = acks.finish(timeout=5)
        failures = [line for line in acknowledged if line.startswith("!")]
        assert not failures, failures[:3]
        assert len(acknowledged) >= ACKS_BEFORE_KILL
        assert len(set(acknowledged)) == len(acknowledged)

        plane.up("--no-controllers", "--nodes", "0")
        items = list_configmaps(plane)
    finally:
        if writer is not None and writer.poll() is None:
            writer.kill()
            writer.wait()
        plane.down()

    stored = {item["metadata"]["name"]: item for item in items}
    missing = [name for name in acknowledged if name not in stored]
    assert not missing, f"{len(missing)} acknowledged creates were lost, e.g. {missing[:5]}"
    for name, item in stored.items():
        assert NAME.match(name), name
        assert item["data"] == expected_data(name), f"{name} is not whole"
        assert item["metadata"]["labels"] == {"writer": "durability"}
        assert item["metadata"]["uid"] and int(item["metadata"]["resourceVersion"]) > 0
    versions = [int(item["metadata"]["resourceVersion"]) for item in items]
    assert len(set(versions)) == len(versions)


if __name__ == "__main__":
    main()
