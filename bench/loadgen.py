"""Load generators for the API server benchmark: ``wrk`` when present, else a multi-process asyncio client.

The Python client speaks just enough HTTP/1.1 (keep-alive, Content-Length and chunked bodies) over TLS on
uvloop to stay far cheaper per request than httpx or aiohttp, so that the server, not the client, is what a
run measures; ``bench.apiserver`` measures this client's own ceiling against a canned-response server.

Run as ``python -m bench.loadgen MODE SPEC`` (MODE: rate, list or watch; SPEC: JSON), it prints one JSON
line. Paths and bodies may hold ``{n}``, replaced by a request number unique across all connections
(reduced modulo ``modulo`` when that is set, to cycle over existing objects).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import multiprocessing
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from pathlib import Path
from typing import Any, cast

import orjson

from bench._common import content_length, cpu_seconds

Spec = dict[str, Any]
START_MARGIN = 0.5
WATCH_DRAIN_TIMEOUT = 5.0


def request_bytes(spec: Spec, method: str, path: str, body: str = "") -> bytes:
    head = (f"{method} {path} HTTP/1.1\r\nHost: {spec['host']}:{spec['port']}\r\n"
            f"Authorization: Bearer {spec['token']}\r\nAccept: application/json\r\nUser-Agent: kplane-bench\r\n")
    if body:
        data = body.encode()
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        return head.encode() + b"\r\n" + data
    return head.encode() + b"\r\n"


def dechunk(data: bytes) -> bytes:
    """The payload of a complete chunked body (no trailers expected)."""
    out, pos = bytearray(), 0
    while True:
        eol = data.index(b"\r\n", pos)
        size = int(data[pos:eol].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[eol + 2:eol + 2 + size]
        pos = eol + 4 + size


class HttpClient(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.head_end = -1
        self.total = -1
        self.chunked = False
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.completed_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TLS transport is no asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None:
            self._complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection closed: {exc}"))

    def _complete(self) -> None:
        buf = self.buffer
        if self.head_end < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head_end = end + 4
            head = bytes(buf[:end])
            length = content_length(head)
            self.chunked = length is None and b"transfer-encoding: chunked" in head.lower()
            self.total = self.head_end + (length or 0)
        if self.chunked:
            if not buf.endswith(b"0\r\n\r\n"):
                return
            body, consumed = dechunk(bytes(buf[self.head_end:])), len(buf)
        elif len(buf) >= self.total:
            body, consumed = bytes(buf[self.head_end:self.total]), self.total
        else:
            return
        status = int(buf[9:12])
        del buf[:consumed]
        self.head_end = self.total = -1
        self.completed_at = time.monotonic()
        waiter, self.waiter = self.waiter, None
        assert waiter is not None
        waiter.set_result((status, body))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


def client_context(spec: Spec) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=spec["cafile"])


async def connect(spec: Spec, protocol: type[asyncio.Protocol] = HttpClient) -> Any:
    _, proto = await asyncio.get_running_loop().create_connection(
        protocol, spec["host"], spec["port"], ssl=client_context(spec))
    return proto


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(pct / 100.0 * len(ordered)))]


async def _rate_connection(spec: Spec, client: HttpClient, conn: int, end: float,
                           latencies: array[float], statuses: Counter[int]) -> None:
    total, seq = spec["connections"], 0
    count, modulo = spec.get("count"), spec.get("modulo")
    method, path, body = spec["method"], spec["path"], spec.get("body", "")
    while True:
        n = conn + total * seq
        seq += 1
        if (count is not None and n >= count) or (count is None and time.monotonic() >= end):
            return
        if modulo:
            n %= modulo
        text = str(n)
        data = request_bytes(spec, method, path.replace("{n}", text), body.replace("{n}", text))
        started = time.monotonic()
        status, _ = await client.request(data)
        latencies.append(client.completed_at - started)
        statuses[status] += 1


async def _rate_process_async(spec: Spec, conns: list[int], start_at: float, sample_server: bool) -> dict[str, Any]:
    clients = [await connect(spec) for _ in conns]
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    pid = spec.get("server_pid")
    server_cpu = cpu_seconds(pid) if sample_server and pid else 0.0
    own_cpu = time.process_time()
    latencies: array[float] = array("d")
    statuses: Counter[int] = Counter()
    end = start_at + spec.get("duration", 0.0)
    await asyncio.gather(*(_rate_connection(spec, c, g, end, latencies, statuses) for c, g in zip(clients, conns,
                                                                                                  strict=True)))
    finished = time.monotonic()
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    return {"latencies": latencies.tolist(), "statuses": dict(statuses), "finished": finished,
            "own_cpu": time.process_time() - own_cpu,
            "server_cpu": cpu_seconds(pid) - server_cpu if sample_server and pid else None}


def _rate_process(spec: Spec, conns: list[int], start_at: float, sample_server: bool) -> dict[str, Any]:
    import uvloop

    return uvloop.run(_rate_process_async(spec, conns, start_at, sample_server))


def run_rate(spec: Spec) -> dict[str, Any]:
    """Keep ``connections`` requests in flight across ``processes`` processes, for a duration or a count."""
    processes = max(1, min(spec.get("processes", 1), spec["connections"]))
    shares = [list(range(p, spec["connections"], processes)) for p in range(processes)]
    start_at = time.monotonic() + START_MARGIN * processes
    jobs = [(spec, share, start_at, i == 0) for i, share in enumerate(shares)]
    if processes == 1:
        parts = [_rate_process(*jobs[0])]
    else:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            parts = pool.starmap(_rate_process, jobs)
    window = max(p["finished"] for p in parts) - start_at
    latencies = [x for p in parts for x in p["latencies"]]
    statuses: Counter[int] = Counter()
    for part in parts:
        statuses.update({int(k): v for k, v in part["statuses"].items()})
    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    server_cpu = parts[0]["server_cpu"]
    return {"generator": f"python x{processes}", "requests": len(latencies), "ok": ok, "seconds": window,
            "rate": ok / window if window > 0 else 0.0, "statuses": dict(statuses),
            "p50_ms": percentile(latencies, 50) * 1e3, "p99_ms": percentile(latencies, 99) * 1e3,
            "generator_cpu": 100.0 * sum(p["own_cpu"] for p in parts) / window,
            "server_cpu": None if server_cpu is None else 100.0 * server_cpu / window}


async def _list_async(spec: Spec) -> dict[str, Any]:
    client = await connect(spec)
    data = request_bytes(spec, "GET", spec["path"])
    times, body, status = [], b"", 0
    for _ in range(spec.get("repeats", 5)):
        started = time.monotonic()
        status, body = await client.request(data)
        times.append((client.completed_at - started) * 1e3)
    items = len(orjson.loads(body).get("items") or []) if status == 200 else 0
    return {"times_ms": times, "status": status, "items": items, "bytes": len(body)}


class WatchStream(asyncio.Protocol):
    """Records every read of a watch response with its arrival time; parsing waits until the run is over."""

    def __init__(self) -> None:
        self.raw = bytearray()
        self.arrivals: list[tuple[int, float]] = []
        self.headers: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TLS transport is no asyncio.Transport

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.raw += data
        self.arrivals.append((len(self.raw), now))
        if not self.headers.done() and b"\r\n\r\n" in self.raw:
            self.headers.set_result(int(self.raw[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.headers.done():
            self.headers.set_exception(ConnectionError("watch closed before its headers"))

    def events(self) -> list[tuple[dict[str, Any], float]]:
        """Each event with the time its last byte arrived, undoing the chunked framing."""
        raw = bytes(self.raw)
        pos = raw.find(b"\r\n\r\n") + 4
        payload, spans = bytearray(), []  # spans: (payload end, raw offset of that end)
        while pos < len(raw):
            eol = raw.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(raw[pos:eol].split(b";")[0], 16)
            if size == 0 or eol + 2 + size > len(raw):
                break
            payload += raw[eol + 2:eol + 2 + size]
            spans.append((len(payload), eol + 2 + size))
            pos = eol + 4 + size
        ends = [end for end, _ in self.arrivals]
        span_ends = [end for end, _ in spans]
        out, start = [], 0
        for line_end in _line_ends(bytes(payload)):
            chunk = bisect.bisect_left(span_ends, line_end)
            payload_end, raw_end = spans[chunk]
            raw_offset = raw_end - (payload_end - line_end)
            when = self.arrivals[min(len(ends) - 1, bisect.bisect_left(ends, raw_offset))][1]
            out.append((orjson.loads(payload[start:line_end]), when))
            start = line_end
        return out


def _line_ends(payload: bytes) -> list[int]:
    ends, pos = [], payload.find(b"\n")
    while pos >= 0:
        ends.append(pos + 1)
        pos = payload.find(b"\n", pos + 1)
    return ends


async def _watch_async(spec: Spec) -> dict[str, Any]:
    """Open the watchers, pace creates through one more connection, and time each event at each watcher."""
    ns_path = f"/api/v1/namespaces/{spec['namespace']}/configmaps"
    writer = await connect(spec)
    status, body = await writer.request(request_bytes(spec, "GET", ns_path))
    rv = orjson.loads(body)["metadata"]["resourceVersion"] if status == 200 else ""
    loop = asyncio.get_running_loop()
    watchers: list[WatchStream] = []
    for _ in range(spec["watchers"]):
        _, stream = await loop.create_connection(WatchStream, spec["host"], spec["port"], ssl=client_context(spec))
        assert stream.transport is not None
        stream.transport.write(request_bytes(spec, "GET", f"{ns_path}?watch=1&resourceVersion={rv}"))
        watchers.append(stream)
    watch_statuses = Counter(await asyncio.gather(*(w.headers for w in watchers)))
    await asyncio.sleep(0.2)
    issued: dict[str, tuple[float, float]] = {}
    next_at = time.monotonic()
    for k in range(spec["writes"]):
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        name = f"w-{k}"
        data = request_bytes(spec, "POST", ns_path, orjson.dumps({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": str(k)}}).decode())
        started = time.monotonic()
        status, _ = await writer.request(data)
        if status == 201:
            issued[name] = (started, writer.completed_at)
        next_at = started + spec["interval"]
    deadline = time.monotonic() + WATCH_DRAIN_TIMEOUT
    expected = len(issued)
    while time.monotonic() < deadline and any(w.raw.count(b'"ADDED"') < expected for w in watchers):
        await asyncio.sleep(0.05)
    from_issue, from_ack, received = [], [], 0
    for watcher in watchers:
        for event, when in watcher.events():
            name = (event.get("object") or {}).get("metadata", {}).get("name")
            if event.get("type") == "ADDED" and name in issued:
                received += 1
                from_issue.append((when - issued[name][0]) * 1e3)
                from_ack.append((when - issued[name][1]) * 1e3)
        if watcher.transport is not None:
            watcher.transport.close()
    return {"watch_statuses": dict(watch_statuses), "writes": expected, "expected": expected * len(watchers),
            "received": received,
            "issue_p50_ms": percentile(from_issue, 50), "issue_p99_ms": percentile(from_issue, 99),
            "ack_p50_ms": percentile(from_ack, 50), "ack_p99_ms": percentile(from_ack, 99),
            "issue_max_ms": max(from_issue, default=float("nan"))}


def run_python(mode: str, spec: Spec) -> dict[str, Any]:
    """Run a mode in a fresh process, so that the load never shares the caller's interpreter."""
    done = subprocess.run([sys.executable, "-m", "bench.loadgen", mode, json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


WRK_SCRIPT = """
local total, counter, tid = %(threads)d, 0, 0
local method, path, body, modulo = %(method)s, %(path)s, %(body)s, %(modulo)d
local headers = {["Authorization"] = %(auth)s, ["Accept"] = "application/json",
                 ["Content-Type"] = "application/json", ["User-Agent"] = "kplane-bench"}
local next_id = 0
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end
function init(args)
  tid = thread_id
end
function request()
  local n = tid + total * counter
  counter = counter + 1
  if modulo > 0 then n = n %% modulo end
  local s = tostring(n)
  local b = nil
  if body ~= "" then b = (body:gsub("{n}", s)) end
  return wrk.format(method, (path:gsub("{n}", s)), headers, b)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%%d,"duration_us":%%d,"status_errors":%%d,"socket_errors":%%d,' ..
    '"p50_us":%%d,"p99_us":%%d}\\n', summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run_wrk(spec: Spec) -> dict[str, Any]:
    """The rate mode through wrk: a LuaJIT script numbers the requests and adds the bearer token."""
    wrk = wrk_path()
    assert wrk is not None
    threads = max(1, min(spec.get("processes", 1), spec["connections"]))
    lua = WRK_SCRIPT % {"threads": threads, "method": json.dumps(spec["method"]), "path": json.dumps(spec["path"]),
                        "body": json.dumps(spec.get("body", "")), "modulo": spec.get("modulo") or 0,
                        "auth": json.dumps(f"Bearer {spec['token']}")}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    pid = spec.get("server_pid")
    try:
        before_server = cpu_seconds(pid) if pid else 0.0
        before_self = os.times()
        started = time.monotonic()
        done = subprocess.run([wrk, "-t", str(threads), "-c", str(spec["connections"]),
                               "-d", f"{max(1, round(spec['duration']))}s", "--timeout", "10s", "-s", script.name,
                               f"https://{spec['host']}:{spec['port']}/"], capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
        after_self = os.times()
        server_cpu = (cpu_seconds(pid) - before_server) if pid else None
    finally:
        Path(script.name).unlink()
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
    if line is None:
        return {"error": (done.stderr.strip() or done.stdout.strip() or "wrk gave no summary").splitlines()[-1]}
    raw = json.loads(line.removeprefix("BENCHJSON "))
    seconds = raw["duration_us"] / 1e6
    ok = raw["requests"] - raw["status_errors"]
    gen_cpu = (after_self.children_user + after_self.children_system
               - before_self.children_user - before_self.children_system)
    return {"generator": f"wrk -t{threads}", "requests": raw["requests"], "ok": ok, "seconds": seconds,
            "rate": ok / seconds if seconds > 0 else 0.0,
            "statuses": {"non-2xx": raw["status_errors"], "socket errors": raw["socket_errors"]},
            "p50_ms": raw["p50_us"] / 1e3, "p99_ms": raw["p99_us"] / 1e3, "generator_cpu": 100.0 * gen_cpu / wall,
            "server_cpu": None if server_cpu is None else 100.0 * server_cpu / wall}


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] not in ("rate", "list", "watch"):
        raise SystemExit("usage: python -m bench.loadgen rate|list|watch SPEC_JSON")
    spec: Spec = json.loads(argv[1])
    if argv[0] == "rate":
        result = run_rate(spec)
    else:
        import uvloop

        result = uvloop.run(_list_async(spec) if argv[0] == "list" else _watch_async(spec))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
