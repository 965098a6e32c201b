"""The API server's fast paths give exactly what the general code they short-cut gives."""

from __future__ import annotations

import asyncio
import copy
import re
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kplane.api import meta
from kplane.api.fieldcompare import added_fields, compare
from kplane.api.fieldset import FieldSet, TypedError
from kplane.api.managedfields import record_update
from kplane.api.schema import ANY, Schema
from kplane.apiserver.coalesce import FLUSH_AT_BYTES, CoalescingTransport
from kplane.apiserver.metrics import ServerMetrics
from kplane.storage import log
from kplane.versions.builtin_schemas import schema_for_kind

DEPLOYMENT = schema_for_kind("1.36", "apps", "v1", "Deployment")
CONFIGMAP = schema_for_kind("1.36", "", "v1", "ConfigMap")

NGINX: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}, "annotations": {}},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "nginx"}}, "strategy": None,
             "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [
                 {"name": "nginx", "image": "nginx:1.27", "args": [], "ports": [
                     {"containerPort": 80}, {"containerPort": 443, "protocol": "TCP"}]},
                 {"name": "side", "image": "busybox", "env": [{"name": "A", "value": "1"}, {"name": "A"}]}]}}},
}
CM: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "x", "namespace": "default", "labels": {"app": "bench"}},
                      "data": {"key": "value", "empty": ""}, "binaryData": {}}

# Objects built from real field names as well as free ones, so they meet the schema's maps, associative
# lists, atomic lists and untyped corners, and sometimes break its list keys.
_NAMES = st.sampled_from(["spec", "template", "containers", "ports", "containerPort", "protocol", "name",
                          "env", "value", "metadata", "labels", "selector", "matchLabels", "replicas",
                          "args", "x", "y"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["a", "TCP", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_NAMES, inner, max_size=4),
    max_leaves=12,
)


def _general(obj: dict[str, Any], schema: Schema | None) -> FieldSet | type[TypedError]:
    try:
        return compare({}, obj, schema).added
    except TypedError:
        return TypedError


def _fast(obj: dict[str, Any], schema: Schema | None) -> FieldSet | type[TypedError]:
    try:
        return added_fields(obj, schema)
    except TypedError:
        return TypedError


@pytest.mark.parametrize("schema", [DEPLOYMENT, CONFIGMAP, ANY, None])
@pytest.mark.parametrize("obj", [NGINX, CM, {}, {"spec": {"template": {"spec": {"containers": [{}]}}}}])
def test_added_fields_is_compare_from_nothing(obj: dict[str, Any], schema: Schema | None) -> None:
    assert _fast(obj, schema) == _general(obj, schema)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_NAMES, _JSON, max_size=4))
def test_added_fields_is_compare_from_nothing_for_any_object(obj: dict[str, Any]) -> None:
    for schema in (DEPLOYMENT, ANY, None):
        assert _fast(obj, schema) == _general(obj, schema)


def _create(obj: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return record_update(None, obj, manager="kubectl", schema=DEPLOYMENT, api_version="apps/v1",
                         now="2025-01-01T00:00:00Z", **extra)


@pytest.mark.parametrize("sent", [None, [], [{"manager": "other", "operation": "Update", "apiVersion": "apps/v1",
                                              "fieldsType": "FieldsV1",
                                              "fieldsV1": {"f:spec": {"f:replicas": {}, "f:paused": {}}}}]])
def test_create_fast_path_matches_general_ownership(sent: Any) -> None:
    obj = copy.deepcopy(NGINX)
    if sent is not None:
        obj["metadata"]["managedFields"] = sent
    before = copy.deepcopy(obj)
    fast = _create(obj)
    general = _create(obj, reset_fields=FieldSet())  # takes the comparing path, excluding nothing
    assert fast == general
    assert obj == before  # the caller's object is left alone
    assert fast["metadata"]["managedFields"][-1]["manager"] == "kubectl"


def test_create_with_bad_list_keys_keeps_what_the_client_sent_out() -> None:
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}}
    assert _create(obj) == _create(obj, reset_fields=FieldSet())
    assert "managedFields" not in _create(obj)["metadata"]


def test_deep_copy_is_independent_and_equal() -> None:
    obj = copy.deepcopy(NGINX)
    copied = meta.deep_copy(obj)
    assert copied == obj == copy.deepcopy(obj)
    copied["spec"]["template"]["spec"]["containers"][0]["ports"].append({"containerPort": 8080})
    assert len(obj["spec"]["template"]["spec"]["containers"][0]["ports"]) == 2
    odd = {"when": (1, 2), "set": {1}}
    assert meta.deep_copy(odd) == odd and meta.deep_copy(odd)["set"] is not odd["set"]


def test_uid_and_timestamp_forms() -> None:
    uids = {meta.new_uid() for _ in range(200)}
    assert len(uids) == 200
    for text in uids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", meta.now_rfc3339())


def test_schema_nodes_are_shared_and_facts_computed_once() -> None:
    spec = DEPLOYMENT.field("spec")
    assert spec is not None and spec is DEPLOYMENT.field("spec")
    assert DEPLOYMENT.field("nope") is None
    labels = DEPLOYMENT.field("metadata").field("labels")  # type: ignore[union-attr]
    assert labels is not None and labels.field("any-key") is labels.field("other-key")
    calls: list[Schema] = []

    def compute(node: Schema) -> int:
        calls.append(node)
        return len(calls)

    assert spec.derived("test.fact", compute) == spec.derived("test.fact", compute) == 1
    assert calls == [spec]


def _rows(start: int, count: int) -> list[log.Row]:
    return [(start + i, f"/k/{start + i}", 0, 0, b"{}") for i in range(count)]


@pytest.mark.parametrize("limit", [None, 10])
def test_append_groups_commit_all_or_nothing(tmp_path: Path, limit: int | None) -> None:
    conn = log.connect(str(tmp_path / "db"), "FULL")
    if limit is not None:
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)  # two rows a statement: several statements
    log.append(conn, _rows(1, 7))
    assert conn.execute("SELECT COUNT(*) FROM log").fetchone()[0] == 7
    with pytest.raises(sqlite3.IntegrityError):
        log.append(conn, [*_rows(8, 5), (20, "/k/1", 0, 0, b"{}")])  # (name, prev_revision) taken
    assert conn.execute("SELECT COUNT(*) FROM log").fetchone()[0] == 7
    assert not conn.in_transaction
    conn.close()


class _Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


async def test_writes_of_one_turn_leave_as_one() -> None:
    inner = _Recorder()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(bytearray(b"body"))
    transport.write(b"")
    assert inner.writes == [] and transport.get_write_buffer_size() == 23
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    transport.write(b"x" * FLUSH_AT_BYTES)  # large enough for flow control to see it at once
    assert len(inner.writes) == 2
    transport.write(b"last")
    transport.close()
    assert inner.writes[-1] == b"last" and inner.closed
    await asyncio.sleep(0)
    assert len(inner.writes) == 3


def test_metrics_count_every_request() -> None:
    metrics = ServerMetrics({}, {"major": "1", "minor": "36"})
    for code in (201, 201, 409):
        metrics.observe("create", "configmaps", code, 0.001)
    metrics.observe("watch", "configmaps", 200, 5.0)
    text = metrics.render()[0].decode()
    assert 'apiserver_request_total{code="201",resource="configmaps",verb="create"} 2.0' in text
    assert 'apiserver_request_total{code="409",resource="configmaps",verb="create"} 1.0' in text
    assert 'apiserver_request_duration_seconds_count{resource="configmaps",verb="create"} 3.0' in text
    assert 'apiserver_request_total{code="200",resource="configmaps",verb="watch"} 1.0' in text
    assert 'apiserver_request_duration_seconds_count{resource="configmaps",verb="watch"}' not in text
