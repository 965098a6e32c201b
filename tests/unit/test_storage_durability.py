"""kplane.storage survives kill -9: every acknowledged write is there at reopen, nothing half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kplane.storage import Store

WRITER = """
import asyncio, sys
from kplane.storage import Store

async def main(path):
    store = await Store.open(path)
    async def writer(w):
        i = 0
        while True:
            key = f"/r/{w}/{i}"
            await store.create(key, {"metadata": {"name": key}, "pad": "x" * 500})
            print(key, flush=True)
            i += 1
    await asyncio.gather(*(writer(w) for w in range(8)))

asyncio.run(main(sys.argv[1]))
"""


def acknowledged_keys_before_kill(path: Path, wanted: int) -> list[str]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    keys: list[str] = []
    deadline = time.monotonic() + 20
    try:
        while len(keys) < wanted and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            keys.append(line.strip())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=10)
    return keys + rest.split()


async def test_kill_9_loses_no_acknowledged_write(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    keys = acknowledged_keys_before_kill(path, 300)
    assert len(keys) >= 300
    store = await Store.open(path)
    missing = [key for key in keys if store.get(key) is None]
    assert missing == []
    everything = store.list("/r/").items
    revisions = sorted(int(o["metadata"]["resourceVersion"]) for o in everything)
    assert revisions == list(range(1, store.revision + 1))
    assert all(o["pad"] == "x" * 500 for o in everything)
    created = await store.create("/r/after", {"metadata": {}})
    assert created["metadata"]["resourceVersion"] == str(len(everything) + 1)
    await store.close()
