"""Upgrade benchmark: a full two-step upgrade of a control plane holding 10,000 objects.

`python -m bench.upgrade [--objects N] [--from 1.35] [--to 1.36] [--no-controllers]` starts
`kplane up --detach --kube-version FROM`, fills it with ConfigMaps and Secrets, then runs
`kplane upgrade apply --to TO --through step3` (restart 1: binaries, restart 2: emulated version) while a
separate process polls `/readyz` in a tight loop. It prints the wall time of the upgrade and, for each
restart, the API unavailability window in ms: from the last answer before failures start to the first
answer after them, as that poller saw it. Target: at most 1 s per restart. It prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import multiprocessing.synchronize
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from bench._common import Target, api_request, target_from_kubeconfig

NAMESPACES = 10
CREATE_THREADS = 8


def _kplane(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kplane", *args], capture_output=True, text=True, timeout=timeout)


def _fill(target: Target, count: int) -> float:
    """Create ``count`` ConfigMaps and Secrets (half each) over a few namespaces; seconds taken."""
    began = time.monotonic()
    for n in range(NAMESPACES):
        api_request(target, "POST", "/api/v1/namespaces",
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"upgrade-{n}"}})

    def create(start: int) -> None:
        context = ssl.create_default_context(cafile=target.cafile)
        conn = http.client.HTTPSConnection(target.host, target.port, context=context, timeout=30)
        headers = {"Authorization": f"Bearer {target.token}", "Content-Type": "application/json"}
        for i in range(start, count, CREATE_THREADS):
            ns = f"upgrade-{i % NAMESPACES}"
            kind, plural = ("ConfigMap", "configmaps") if i % 2 else ("Secret", "secrets")
            body = {"apiVersion": "v1", "kind": kind, "metadata": {"name": f"obj-{i}"},
                    "data": {"value": "dmFsdWU=" if kind == "Secret" else f"value-{i}"}}
            conn.request("POST", f"/api/v1/namespaces/{ns}/{plural}", body=orjson.dumps(body), headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 201:
                raise RuntimeError(f"creating {plural}/obj-{i}: HTTP {response.status}")
        conn.close()

    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        list(pool.map(create, range(CREATE_THREADS)))
    return time.monotonic() - began


def _poll(spec: dict[str, Any], stop: multiprocessing.synchronize.Event, out: Any) -> None:
    """GET /readyz as fast as answers come; record (time, ok) for every attempt."""
    context = ssl.create_default_context(cafile=spec["cafile"])
    samples: list[tuple[float, bool]] = []
    conn: http.client.HTTPSConnection | None = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPSConnection(spec["host"], spec["port"], context=context, timeout=2)
            conn.request("GET", "/readyz", headers={"Authorization": f"Bearer {spec['token']}"})
            response = conn.getresponse()
            response.read()
            samples.append((time.monotonic(), response.status == 200))
        except (OSError, http.client.HTTPException):
            samples.append((time.monotonic(), False))
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.001)
    out.send(samples)


def outages(samples: list[tuple[float, bool]]) -> list[float]:
    """Each run of failed polls as a window in ms: last success before it → first success after it."""
    windows: list[float] = []
    last_ok: float | None = None
    failing = False
    for at, ok in samples:
        if ok:
            if failing and last_ok is not None:
                windows.append((at - last_ok) * 1000)
            failing, last_ok = False, at
        else:
            failing = True
    return windows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--from", dest="source", default="1.35")
    parser.add_argument("--to", dest="target", default="1.36")
    parser.add_argument("--no-controllers", action="store_true", help="Measure the API server alone.")
    options = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="kplane-bench-upgrade-"))
    controllers = ["--no-controllers", "--nodes", "0"] if options.no_controllers else ["--nodes", "1"]
    try:
        up = _kplane("up", "--detach", "--port", "0", "--data-dir", str(data_dir), "--kube-version", options.source,
                     *controllers)
        if up.returncode != 0:
            raise SystemExit(f"kplane up failed: {up.stderr.strip()}")
        pid = int((data_dir / "kplane.pid").read_text().strip())
        target = target_from_kubeconfig(data_dir, pid)
        filled = _fill(target, options.objects)
        print(f"created {options.objects} objects in {filled:.1f} s")
        stop = multiprocessing.Event()
        receiver, sender = multiprocessing.Pipe(duplex=False)
        poller = multiprocessing.Process(target=_poll, args=(target.spec(), stop, sender), daemon=True)
        poller.start()
        time.sleep(0.5)
        began = time.monotonic()
        result = _kplane("upgrade", "apply", "--to", options.target, "--data-dir", str(data_dir), "-o", "json")
        wall = time.monotonic() - began
        time.sleep(0.5)
        stop.set()
        samples = receiver.recv()
        poller.join(10)
        if result.returncode != 0:
            print(f"upgrade failed (exit {result.returncode}): {result.stderr.strip() or result.stdout[-2000:]}")
            return
        report = orjson.loads(result.stdout)
        print(f"two-step upgrade {options.source} -> {options.target} (step1 + step3): {wall:.2f} s wall")
        for step in report["steps"]:
            timing = step.get("timing") or {}
            listed = step.get("objectsListed", 0)
            print(f"  {step['step']}: stop {timing.get('stop_ms', 0):.0f} ms, start {timing.get('start_ms', 0):.0f} ms"
                  f" (SIGTERM -> ready {timing.get('total_ms', 0):.0f} ms); soak listed {listed} objects")
        windows = outages(samples)
        polls = len(samples)
        print(f"API unavailability seen by a /readyz poller ({polls} polls, "
              f"{sum(1 for _, ok in samples if not ok)} failed):")
        for n, window in enumerate(windows, 1):
            print(f"  restart {n}: {window:.0f} ms {'(target <= 1000 ms met)' if window <= 1000 else '(over 1 s)'}")
        if not windows:
            print("  no failed poll: zero unavailability")
    finally:
        _kplane("down", "--data-dir", str(data_dir), timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
