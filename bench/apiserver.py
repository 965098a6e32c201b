"""``python -m bench.apiserver``: kplane's API server throughput and latency over HTTPS, beside its ceiling.

A real ``kplane up --detach`` (free port, fresh data directory) is measured with 16 keep-alive HTTPS
connections driven from a separate process (``bench.loadgen``): durable ConfigMap creates/s, gets/s, the
time of a full 10,000-object list, watch event latency with 100 watchers, and the server's memory. In the
same run a trivial ASGI app on the same stack (uvicorn, httptools, kplane's TLS listener and certificate)
gives the ceiling for creates and gets, and a canned-response TLS server gives the load generator's own
ceiling. Targets come from issue 2; figures are printed beside them, never asserted.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench._common import Target, api_request, ceiling_server, control_plane, memory_kib
from bench.loadgen import Spec, run_python, run_wrk, wrk_path

CONNECTIONS = 16
LIST_SIZE = 10_000
WATCHERS = 100
WATCH_WRITES = 200
WATCH_INTERVAL = 0.01
CM_PATH = "/api/v1/namespaces/{ns}/configmaps"
CM_BODY = ('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"%s{n}","labels":{"app":"bench"}},'
           '"data":{"key":"value-{n}"}}')
TARGETS = {"creates": (4000.0, "≥ 4,000/s"), "gets": (10000.0, "≥ 10,000/s"), "list": (150.0, "≤ 150 ms"),
           "watch": (20.0, "p99 ≤ 20 ms")}

Result = dict[str, Any]
Runner = Callable[[Spec], Result]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.apiserver", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured rate phase")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto",
                        help="wrk when installed (auto), else the Python generator")
    parser.add_argument("--processes", type=int, default=0,
                        help="wrk threads or Python processes (default: 1 for wrk, the CPU count for Python)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record the server with py-spy during each kplane phase into this folder")
    return parser.parse_args(argv)


def choose_generator(args: argparse.Namespace) -> tuple[Runner, int]:
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and wrk_path() is not None)
    if use_wrk and wrk_path() is None:
        raise SystemExit("wrk is not installed (apt-get install wrk), use --generator python")
    processes = args.processes or (1 if use_wrk else (os.cpu_count() or 1))
    return (run_wrk if use_wrk else lambda spec: run_python("rate", spec)), processes


@contextmanager
def profiled(args: argparse.Namespace, pid: int, phase: str, seconds: float) -> Iterator[None]:
    """py-spy in the background over one phase; collapsed stacks go to ``<profile>/<phase>.txt``.

    Only the thread holding the GIL is sampled: the server's throughput is bounded by its event loop, and
    the store's writer thread spends its time in SQLite with the GIL released. Sampling pauses the server
    briefly (whole stacks need it), so figures of a profiled run read a little low."""
    spy = shutil.which("py-spy")
    if args.profile is None or spy is None:
        yield
        return
    args.profile.mkdir(parents=True, exist_ok=True)
    out = args.profile / f"{phase}.txt"
    proc = subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(max(1, round(seconds))), "-r", "100", "--gil",
                             "--format", "raw", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.wait()


def hot_spots(path: Path, top: int = 8) -> list[str]:
    """The functions with the most samples on top of the stack (self), and kplane's own functions with the
    most samples anywhere in it (inclusive), as shares of all samples."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [frame for frame in stack.split(";") if frame]
        total += int(count)
        if frames:
            own[_function(frames[-1])] += int(count)
        for frame in {_function(f) for f in frames if "kplane/" in f and not f.startswith(("<module>", "main ("))
                                                       and "kplane/cli/" not in f}:
            inclusive[frame] += int(count)
    if not total:
        return []
    return ([f"    self {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
            + [f"    incl {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)])


def _function(frame: str) -> str:
    """``func (path/to/file.py:123)`` without the line, so that a function's samples add up."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(Path(file).parts[-2:])})"


def rate_spec(target: Target, method: str, path: str, duration: float, processes: int, **extra: Any) -> Spec:
    return {**target.spec(), "server_pid": target.pid, "method": method, "path": path, "connections": CONNECTIONS,
            "duration": duration, "processes": processes, **extra}


def create_spec(target: Target, ns: str, prefix: str, duration: float, processes: int) -> Spec:
    return rate_spec(target, "POST", CM_PATH.format(ns=ns), duration, processes, body=CM_BODY % prefix)


def measure_pair(runner: Runner, target: Target, ns: str, get_path: str, duration: float, processes: int,
                 modulo: int | None = None) -> tuple[Result, Result]:
    """Creates then gets, each after a one-second warm-up that is not counted."""
    runner(create_spec(target, ns, "warm-", 1.0, processes))
    creates = runner(create_spec(target, ns, "c-", duration, processes))
    get = rate_spec(target, "GET", get_path, duration, processes, modulo=modulo)
    runner({**get, "duration": 1.0})
    return creates, runner(get)


def ensure_namespace(target: Target, name: str) -> None:
    status, _ = api_request(target, "POST", "/api/v1/namespaces",
                            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    if status not in (201, 409):
        raise SystemExit(f"cannot create namespace {name}: HTTP {status}")


def run(args: argparse.Namespace) -> None:
    runner, processes = choose_generator(args)
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    with control_plane() as (kp, data_dir):
        results["rss_start"] = memory_kib(kp.pid)
        cert, key = data_dir / "pki" / "apiserver.crt", data_dir / "pki" / "apiserver.key"
        with (ceiling_server("asgi", cert, key, kp.cafile) as asgi,
              ceiling_server("canned", cert, key, kp.cafile) as canned):
            for ns in ("bench-create", "bench-list", "bench-watch"):
                ensure_namespace(kp, ns)
            cm_get = CM_PATH.format(ns="bench-list") + "/c-{n}"
            runner(rate_spec(canned, "GET", cm_get, 1.0, processes))
            results["gen_get"] = runner(rate_spec(canned, "GET", cm_get, 3.0, processes))
            results["gen_post"] = runner(create_spec(canned, "bench", "c-", 3.0, processes))
            results["ceil_create"], results["ceil_get"] = measure_pair(runner, asgi, "bench", cm_get, args.duration,
                                                                       processes)
            with profiled(args, kp.pid, "creates", args.duration + 2):
                runner(create_spec(kp, "bench-create", "warm-", 1.0, processes))
                results["kp_create"] = runner(create_spec(kp, "bench-create", "c-", args.duration, processes))
        populate = create_spec(kp, "bench-list", "c-", 0.0, os.cpu_count() or 1)
        results["populate"] = run_python("rate", {**populate, "count": LIST_SIZE})
        with profiled(args, kp.pid, "gets", args.duration + 1):
            get = rate_spec(kp, "GET", cm_get, args.duration, processes, modulo=LIST_SIZE)
            runner({**get, "duration": 1.0})
            results["kp_get"] = runner(get)
        with profiled(args, kp.pid, "list", 3):
            results["list"] = run_python("list", {**kp.spec(), "path": CM_PATH.format(ns="bench-list"), "repeats": 7})
        with profiled(args, kp.pid, "watch", 4):
            results["watch"] = run_python("watch", {**kp.spec(), "namespace": "bench-watch", "watchers": WATCHERS,
                                                    "writes": WATCH_WRITES, "interval": WATCH_INTERVAL})
        results["rss_end"] = memory_kib(kp.pid)
    results["load"] = (load_before, os.getloadavg())
    report(args, results)


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{value:,.{digits}f}"


def _rate_row(label: str, kp: Result, ceiling: Result | None, target: str) -> list[str]:
    if "error" in kp:
        return [label, "error", target, "", "", kp["error"], "", "", "", "", ""]
    ratio = kp["rate"] / ceiling["rate"] if ceiling and ceiling.get("rate") else None
    bad = kp["requests"] - kp["ok"]
    return [label, _num(kp["rate"]), target, _num(ceiling["rate"]) if ceiling else "",
            _num(ratio, 2) if ratio is not None else "", f"{_num(kp['p50_ms'], 1)} / {_num(kp['p99_ms'], 1)}",
            _num(kp.get("server_cpu")) + "%", _per_cpu(kp), _per_cpu(ceiling) if ceiling else "",
            _num(kp.get("generator_cpu")) + "%", str(bad)]


def _per_cpu(result: Result) -> str:
    """Requests per second of server CPU: steadier than the rate when other work shares the cores."""
    cpu = result.get("server_cpu")
    return _num(100.0 * result["rate"] / cpu) if cpu and "rate" in result else "n/a"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    gen = r["kp_create"].get("generator", "?")
    (before, after) = r["load"]
    print(f"kplane API server benchmark: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"generator {gen}, {CONNECTIONS} keep-alive HTTPS connections, {args.duration:g} s per rate phase")
    print(f"load average {before[0]:.2f} before, {after[0]:.2f} after (other work on this machine skews figures)")
    print()
    header = ["metric", "kplane", "target", "ceiling", "ratio", "p50 / p99 ms", "server CPU", "per CPU-s",
              "ceiling per CPU-s", "gen CPU", "non-2xx"]
    rows = [header,
            _rate_row("creates/s (durable ConfigMap)", r["kp_create"], r["ceil_create"], TARGETS["creates"][1]),
            _rate_row("gets/s", r["kp_get"], r["ceil_get"], TARGETS["gets"][1])]
    print(_table(rows))
    print()
    lst = r["list"]
    if "error" in lst:
        print(f"list of {LIST_SIZE:,} ConfigMaps: error {lst['error']}")
    else:
        times = lst["times_ms"]
        print(f"list of {LIST_SIZE:,} ConfigMaps (full, no limit): median {statistics.median(times):,.0f} ms, "
              f"min {min(times):,.0f} ms, first {times[0]:,.0f} ms over {len(times)} lists   "
              f"target {TARGETS['list'][1]}   "
              f"[HTTP {lst['status']}, {lst['items']:,} items, {lst['bytes'] / 1e6:.1f} MB]")
    w = r["watch"]
    if "error" in w:
        print(f"watch latency: error {w['error']}")
    else:
        print(f"watch latency, {WATCHERS} watchers, {w['writes']} creates {WATCH_INTERVAL * 1e3:g} ms apart: "
              f"from write issued p50 {_num(w['issue_p50_ms'], 1)} / p99 {_num(w['issue_p99_ms'], 1)} ms "
              f"(max {_num(w['issue_max_ms'], 1)}); from write acknowledged p50 {_num(w['ack_p50_ms'], 1)} / "
              f"p99 {_num(w['ack_p99_ms'], 1)} ms   target {TARGETS['watch'][1]}   "
              f"[{w['received']:,} of {w['expected']:,} events received]")
    start, end = r["rss_start"], r["rss_end"]
    print(f"server RSS: {start.get('VmRSS', 0) / 1024:,.0f} MiB after start, {end.get('VmRSS', 0) / 1024:,.0f} MiB "
          f"at the end, peak {end.get('VmHWM', 0) / 1024:,.0f} MiB (objects stored: about "
          f"{LIST_SIZE + r['kp_create'].get('ok', 0):,})")
    pop = r["populate"]
    if "error" not in pop:
        print(f"populating the list: {pop['ok']:,} creates in {pop['seconds']:.1f} s ({_num(pop['rate'])}/s, "
              f"{pop['generator']})")
    print()
    gen_get, gen_post = r["gen_get"], r["gen_post"]
    print(f"load generator ceiling (canned-response TLS server): GET {_num(gen_get.get('rate'))}/s at "
          f"{_num(gen_get.get('generator_cpu'))}% generator CPU, POST {_num(gen_post.get('rate'))}/s at "
          f"{_num(gen_post.get('generator_cpu'))}% (CPU as % of one core)")
    print("CPU is % of one core over the phase; per CPU-s = requests per second of server CPU time")
    print("ceiling: a trivial ASGI app (parses the POSTed object, answers 201) on uvicorn + httptools behind "
          "kplane's TLS listener and certificate; ratio = kplane / ceiling")
    if args.profile is not None:
        for phase in ("creates", "gets", "list", "watch"):
            path = args.profile / f"{phase}.txt"
            if path.exists():
                print(f"\nserver profile, {phase} (py-spy, GIL-holding samples; {path}):")
                print("\n".join(hot_spots(path)))


def main() -> None:
    started = time.monotonic()
    run(parse_args(sys.argv[1:]))
    print(f"\n(benchmark took {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
