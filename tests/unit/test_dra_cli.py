from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from kplane.cli.dra import run
from kplane.cli.main import app

OBJECTS = """
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: gpu}
spec: {selectors: [{cel: {expression: 'device.driver == "gpu.example.com"'}}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-1}
---
apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {name: node-1-gpus}
spec:
  driver: gpu.example.com
  nodeName: node-1
  pool: {name: node-1, generation: 1, resourceSliceCount: 1}
  devices: [{name: gpu-0}, {name: gpu-1}]
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: taken, namespace: default}
spec: {devices: {requests: [{name: r, exactly: {deviceClassName: gpu}}]}}
status:
  allocation:
    devices: {results: [{request: r, driver: gpu.example.com, pool: node-1, device: gpu-0}]}
"""


def claim(count: int, cls: str = "gpu") -> str:
    return ("---\napiVersion: resource.k8s.io/v1\nkind: ResourceClaim\nmetadata: {name: mine, namespace: default}\n"
            f"spec: {{devices: {{requests: [{{name: r, exactly: {{deviceClassName: {cls}, count: {count}}}}}]}}}}\n")


def test_allocates_around_allocated_claims() -> None:
    code, out = run(OBJECTS + claim(1), None, "")
    assert code == 0
    [printed] = list(yaml.safe_load_all(out))
    assert printed["metadata"]["name"] == "mine"
    assert printed["status"]["allocation"]["devices"]["results"][0]["device"] == "gpu-1"


def test_no_fit_exits_2() -> None:
    code, out = run(OBJECTS + claim(2), None, "")
    assert code == 2 and "\n" not in out and "no fit on node node-1" in out


def test_allocation_error_exits_1_with_upstream_text() -> None:
    code, out = run(OBJECTS + claim(1, "missing"), None, "")
    assert code == 1 and "could not retrieve device class missing" in out


def test_bad_input_exits_1() -> None:
    assert run("kind: Pod\nmetadata: {name: p}\n", "n", "")[0] == 1
    assert run("{{{", "n", "")[0] == 1
    assert run(OBJECTS, None, "Bogus=true")[0] == 1
    assert run(OBJECTS.replace("kind: Node\nmetadata: {name: node-1}", "kind: Node\nmetadata: {}"), None, "")[0] == 1


def test_node_flag_for_a_node_not_in_the_file() -> None:
    assert run(OBJECTS + claim(1), "node-9", "")[0] == 2


def test_command_line(tmp_path: Path) -> None:
    f = tmp_path / "in.yaml"
    f.write_text(OBJECTS + claim(1))
    result = CliRunner().invoke(app, ["dra", "allocate", "-f", str(f), "--feature-gates", "DRADeviceTaints=true"])
    assert result.exit_code == 0, result.output
    assert "gpu-1" in result.output
    missing = CliRunner().invoke(app, ["dra", "allocate", "-f", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1
