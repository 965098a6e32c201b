"""Protobuf request bodies: wire-format edge cases, Go JSON presence rules, errors, and real kubectl bytes."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kplane.api.status import StatusError
from kplane.apiserver.protobuf import MAGIC, PROTOBUF_CONTENT_TYPE, decode_protobuf_object
from kplane.apiserver.protobuf_schema import (
    BOOL,
    BYTES,
    INT32,
    INT64,
    INT_OR_STRING,
    MESSAGES,
    OBJECTS,
    QUANTITY,
    STRING,
    TIME,
    Field,
    Presence,
)

# --- a small test-side encoder, driven by the same tables -------------------------------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def ld(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + varint(len(payload)) + payload


def vi(number: int, value: int) -> bytes:
    return tag(number, 0) + varint(value)


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return MAGIC + ld(1, ld(1, api_version.encode()) + ld(2, kind.encode())) + ld(2, raw)


def encode_value(kind: str, value: Any) -> bytes:
    """Payload of a length-delimited value (strings, bytes and messages)."""
    if kind == STRING:
        return str(value).encode()
    if kind == BYTES:
        return base64.b64decode(value)
    if kind == QUANTITY:
        return ld(1, value.encode())
    if kind == INT_OR_STRING:
        return vi(1, 1) + ld(3, value.encode()) if isinstance(value, str) else vi(1, 0) + vi(2, value)
    if kind == TIME:
        return vi(1, int(datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()))
    return encode(value, kind)


def encode_one(number: int, kind: str, value: Any) -> bytes:
    if kind in (INT32, INT64, BOOL):
        return vi(number, int(value))
    return ld(number, encode_value(kind, value))


def encode(obj: dict[str, Any], message: str) -> bytes:
    out = b""
    for number, field in MESSAGES[message].items():
        if field.inline:
            out += ld(number, encode(obj, field.kind))
        elif field.name in obj:
            value = obj[field.name]
            if field.map_value is not None:
                for key, item in value.items():
                    out += ld(number, ld(1, key.encode()) + ld(2, encode_value(field.map_value, item)))
            elif field.repeated:
                out += b"".join(encode_one(number, field.kind, item) for item in value)
            else:
                out += encode_one(number, field.kind, value)
    return out


def decode(api_version: str, kind: str, raw: bytes) -> dict[str, Any]:
    return decode_protobuf_object(envelope(api_version, kind, raw))


def status_of(body: bytes) -> StatusError:
    with pytest.raises(StatusError) as info:
        decode_protobuf_object(body)
    return info.value


# --- objects drawn from the tables, already in the shape the decoder must return -----------------------

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
INT32S = st.integers(-(2**31), 2**31 - 1)
INT64S = st.integers(-(2**63), 2**63 - 1)
STAMPS = st.datetimes(datetime(1970, 1, 1), datetime(9999, 12, 31)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
)
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    STRING: TEXT,
    BYTES: st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode()),
    INT32: INT32S,
    INT64: INT64S,
    BOOL: st.booleans(),
    TIME: STAMPS,
    INT_OR_STRING: st.one_of(INT32S, TEXT),
    QUANTITY: st.sampled_from(["1", "100m", "1Gi", "2.5"]),
}
NON_ZERO: dict[str, st.SearchStrategy[Any]] = {
    STRING: TEXT.filter(bool),
    INT32: INT32S.filter(bool),
    INT64: INT64S.filter(bool),
    BOOL: st.just(True),
    TIME: STAMPS,
}


def value_strategy(kind: str, non_zero: bool = False) -> st.SearchStrategy[Any]:
    if kind in MESSAGES:
        return message_strategy(kind)
    return NON_ZERO[kind] if non_zero else SCALARS[kind]


def field_strategy(field: Field) -> st.SearchStrategy[Any]:
    if field.map_value is not None:
        return st.dictionaries(TEXT, value_strategy(field.map_value), min_size=1, max_size=2)
    if field.repeated:
        return st.lists(value_strategy(field.kind), min_size=1, max_size=2)
    return value_strategy(field.kind, non_zero=field.presence is Presence.OMITEMPTY)


def message_strategy(message: str) -> st.SearchStrategy[dict[str, Any]]:
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in MESSAGES[message].values():
        if field.inline:
            continue  # LocalObjectReference's only field, added below
        always = field.presence is Presence.ALWAYS and field.kind != TIME
        (required if always and not field.repeated and field.map_value is None else optional)[field.name] = (
            field_strategy(field)
        )
    if any(f.inline for f in MESSAGES[message].values()):
        optional["name"] = NON_ZERO[STRING]
    return st.fixed_dictionaries(required, optional=optional)


@pytest.mark.parametrize("key", sorted(OBJECTS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_through_the_tables(key: tuple[str, str], data: st.DataObject) -> None:
    api_version, kind = key
    obj = data.draw(message_strategy(OBJECTS[key]))
    expected = {"kind": kind, "apiVersion": api_version, **obj}
    assert decode(api_version, kind, encode(obj, OBJECTS[key])) == expected


# --- Go JSON shape ---------------------------------------------------------------------------------------


def test_keys_follow_go_struct_order_and_value_structs_are_written() -> None:
    raw = ld(2, ld(1, b"a") + ld(2, b"b")) + vi(4, 1) + ld(1, ld(1, b"c"))
    obj = decode("v1", "ConfigMap", raw)
    assert list(obj) == ["kind", "apiVersion", "metadata", "immutable", "data"]
    assert decode("v1", "Namespace", b"") == {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {},
        "spec": {},
        "status": {},
    }


def test_gogo_empty_value_fields_follow_omitempty() -> None:
    # gogo writes non-pointer fields even when empty; only the json tag decides what JSON shows.
    meta = ld(1, b"x") + ld(2, b"") + vi(7, 0) + ld(8, b"")
    port = ld(1, b"") + vi(2, 0) + vi(3, 0) + ld(4, b"")
    container = ld(1, b"") + ld(6, port) + ld(13, b"")
    spec = vi(1, 0) + ld(3, ld(2, ld(2, container)))
    obj = decode("apps/v1", "Deployment", ld(1, meta) + ld(2, spec))
    assert obj["metadata"] == {"name": "x"}
    assert obj["spec"]["replicas"] == 0  # *int32: present on the wire, so written even as 0
    assert obj["spec"]["template"]["spec"]["containers"] == [
        {"name": "", "ports": [{"containerPort": 0}], "resources": {}}
    ]


def test_pointer_bool_false_is_kept_value_bool_false_is_dropped() -> None:
    assert decode("v1", "ConfigMap", vi(4, 0))["immutable"] is False
    sar = decode("authorization.k8s.io/v1", "SelfSubjectAccessReview", ld(3, vi(4, 0)))
    assert sar["status"] == {"allowed": False}


def test_negative_ints_use_ten_byte_varints() -> None:
    assert len(varint(-1)) == 10
    obj = decode("apps/v1", "Deployment", ld(2, vi(1, -3) + vi(6, -(2**31))))
    assert obj["spec"]["replicas"] == -3
    assert obj["spec"]["revisionHistoryLimit"] == -(2**31)
    meta = decode("v1", "Namespace", ld(1, vi(10, -(2**63))))["metadata"]
    assert meta == {"deletionGracePeriodSeconds": -(2**63)}


def test_packed_repeated_ints_are_accepted() -> None:
    pod_security = ld(4, varint(1) + varint(2)) + vi(4, 3)
    obj = decode("batch/v1", "Job", ld(2, ld(6, ld(2, ld(14, pod_security)))))
    assert obj["spec"]["template"]["spec"]["securityContext"] == {"supplementalGroups": [1, 2, 3]}


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    unknown = vi(99, 7) + tag(98, 1) + bytes(8) + tag(97, 5) + bytes(4) + ld(96, b"\xff\xff")
    meta = unknown + ld(1, b"n") + ld(17, b"managed fields are not decoded")
    obj = decode("v1", "Namespace", unknown + ld(1, meta))
    assert obj["metadata"] == {"name": "n"}


def test_repeated_singular_fields_merge_and_last_scalar_wins() -> None:
    raw = ld(1, ld(1, b"a") + ld(11, ld(1, b"k") + ld(2, b"1"))) + ld(1, ld(1, b"b") + ld(11, ld(1, b"j")))
    assert decode("v1", "Namespace", raw)["metadata"] == {"name": "b", "labels": {"k": "1", "j": ""}}


def test_map_entries_in_any_order_later_key_wins() -> None:
    raw = ld(2, ld(2, b"v") + ld(1, b"k")) + ld(2, ld(1, b"k") + ld(2, b"w")) + ld(2, ld(2, b"x"))
    assert decode("v1", "ConfigMap", raw)["data"] == {"k": "w", "": "x"}


def test_secret_bytes_become_base64_and_string_data_stays_text() -> None:
    raw = ld(2, ld(1, b"bin") + ld(2, b"\x00\xff")) + ld(4, ld(1, b"s") + ld(2, b"t")) + ld(3, b"Opaque")
    obj = decode("v1", "Secret", raw)
    assert obj["data"] == {"bin": "AP8="} and obj["stringData"] == {"s": "t"} and obj["type"] == "Opaque"


def test_invalid_utf8_becomes_replacement_character_as_go_json_writes_it() -> None:
    assert decode("v1", "Namespace", ld(1, ld(1, b"a\xffb")))["metadata"]["name"] == "a\ufffdb"


def test_int_or_string_and_quantity() -> None:
    rolling = ld(1, vi(1, 1) + ld(3, b"25%")) + ld(2, vi(2, 3))
    container = ld(1, b"c") + ld(8, ld(1, ld(1, b"cpu") + ld(2, ld(1, b"500m"))) + ld(2, ld(1, b"memory")))
    spec = ld(3, ld(2, ld(2, container))) + ld(4, ld(1, b"RollingUpdate") + ld(2, rolling))
    obj = decode("apps/v1", "Deployment", ld(2, spec))["spec"]
    assert obj["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 3},
    }
    assert obj["template"]["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "500m"},
        "requests": {"memory": "0"},
    }
    service = decode("v1", "Service", ld(2, ld(1, vi(3, 80))))
    assert service["spec"]["ports"] == [{"port": 80, "targetPort": 0}]


def test_env_var_selectors_inline_local_object_reference() -> None:
    selector = ld(1, ld(1, b"cm")) + ld(2, b"key") + vi(3, 1)
    env = ld(1, b"E") + ld(3, ld(3, selector))
    obj = decode("batch/v1", "Job", ld(2, ld(6, ld(2, ld(2, ld(1, b"c") + ld(7, env))))))
    assert obj["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "E", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "key", "optional": True}}}
    ]


def test_time_is_rfc3339_seconds_and_zero_time_is_omitted() -> None:
    def meta_time(payload: bytes) -> dict[str, Any]:
        return decode("v1", "Namespace", ld(1, ld(8, payload)))["metadata"]

    assert meta_time(vi(1, 1_700_000_000) + vi(2, 999)) == {"creationTimestamp": "2023-11-14T22:13:20Z"}
    assert meta_time(b"") == {}
    assert meta_time(vi(1, -62135596800)) == {}
    assert meta_time(vi(2, 5)) == {"creationTimestamp": "1970-01-01T00:00:00Z"}


def test_owner_references_write_required_fields() -> None:
    owner = ld(1, b"ReplicaSet") + ld(3, b"rs") + vi(6, 1)
    meta = decode("v1", "ConfigMap", ld(1, ld(13, owner) + ld(14, b"f")))["metadata"]
    assert meta == {
        "ownerReferences": [
            {"apiVersion": "", "kind": "ReplicaSet", "name": "rs", "uid": "", "controller": True}
        ],
        "finalizers": ["f"],
    }


# --- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"", "empty data"),
        (b'{"kind":"Namespace"}', "expected prefix [107, 56, 115, 0]"),
        (MAGIC, "empty body"),
        (MAGIC + b"\x0a", "unexpected EOF in varint"),
        (MAGIC + b"\x0a\x05ab", "field 1 is 5 bytes long but only 2 remain"),
        (MAGIC + b"\x08" + b"\xff" * 11, "varint longer than 10 bytes"),
        (MAGIC + b"\x00\x00", "illegal tag 0"),
        (MAGIC + tag(5, 3), "unsupported wire type start group"),
        (MAGIC + tag(1, 1) + b"\x00", "unexpected EOF in field 1"),
        (MAGIC + vi(1, 3), "wrong wire type varint for Unknown.typeMeta"),
        (MAGIC + ld(2, b""), "Object 'Kind' is missing"),
        (MAGIC + ld(1, ld(2, b"Namespace")), "Object 'apiVersion' is missing"),
        (envelope("v1", "Namespace", ld(1, vi(1, 5))), "wrong wire type varint for field metadata.name"),
        (envelope("v1", "Namespace", ld(1, ld(7, b""))), "ObjectMeta: wrong wire type bytes"),
        (envelope("apps/v1", "Deployment", ld(2, vi(3, 1))), "field spec.template"),
        (envelope("v1", "Service", ld(2, ld(1, ld(4, vi(1, 2))))), "impossible IntOrString.Type 2"),
        (envelope("v1", "Service", ld(2, ld(1, ld(4, ld(2, b""))))), "IntOrString: wrong wire type bytes"),
        (envelope("v1", "Namespace", ld(1, ld(8, vi(1, 2**62)))), "outside years 1-9999"),
        (envelope("v1", "Namespace", ld(1, ld(8, ld(1, b"")))), "Time: wrong wire type bytes"),
        (envelope("v1", "ConfigMap", ld(2, vi(1, 1))), "wrong wire type varint for data key"),
    ],
)
def test_malformed_bodies_are_bad_requests(body: bytes, text: str) -> None:
    err = status_of(body)
    assert (err.code, err.reason) == (400, "BadRequest")
    assert err.message.startswith("unable to decode protobuf body: ")
    assert text in err.message


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [("apps/v1", "StatefulSet"), ("extensions/v1beta1", "Deployment"), ("v1", "Pod"), ("v1", "namespace")],
)
def test_unknown_kinds_are_unsupported_media_type(api_version: str, kind: str) -> None:
    err = status_of(envelope(api_version, kind, ld(1, ld(1, b"x"))))
    assert (err.code, err.reason) == (415, "UnsupportedMediaType")
    assert kind in err.message and api_version in err.message and "application/json" in err.message
    assert err.to_status()["code"] == 415


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=64), key=st.sampled_from(sorted(OBJECTS)))
def test_arbitrary_bytes_never_escape_as_other_exceptions(raw: bytes, key: tuple[str, str]) -> None:
    for body, codes in ((MAGIC + raw, {400, 415}), (envelope(*key, raw), {400})):
        try:
            assert isinstance(decode_protobuf_object(body), dict)
        except StatusError as err:
            assert err.code in codes


# --- real kubectl bytes ----------------------------------------------------------------------------------

DISCOVERY: dict[str, Any] = {
    "/api": {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    },
    "/apis": {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": "apps",
                "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
            }
        ],
    },
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": n,
                "singularName": n[:-1],
                "namespaced": n != "namespaces",
                "kind": k,
                "verbs": ["create", "get", "list"],
            }
            for n, k in [("namespaces", "Namespace"), ("configmaps", "ConfigMap"), ("secrets", "Secret")]
        ],
    },
    "/apis/apps/v1": {
        "kind": "APIResourceList",
        "groupVersion": "apps/v1",
        "resources": [
            {
                "name": "deployments",
                "singularName": "deployment",
                "namespaced": True,
                "kind": "Deployment",
                "verbs": ["create", "get", "list"],
            }
        ],
    },
    "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.0"},
}


class Recorder(BaseHTTPRequestHandler):
    """Answers discovery and records each POST; the reply echoes the decoded object."""

    posts: list[tuple[str, str, bytes]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def reply(self, code: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        found = DISCOVERY.get(path)
        self.reply(
            200 if found else 404,
            found
            or {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404},
        )

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.posts.append((self.path.split("?")[0], self.headers.get("Content-Type", ""), body))
        try:
            self.reply(201, decode_protobuf_object(body))
        except StatusError as err:
            self.reply(err.code, err.to_status())


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    home = tmp_path_factory.mktemp("kubectl")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = home / "kubeconfig"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "t",
                "clusters": [{"name": "t", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
                "users": [{"name": "t", "user": {}}],
                "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t", "namespace": "default"}}],
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"} | {"HOME": str(home)}

    def run(*args: str) -> tuple[str, str, bytes]:
        Recorder.posts.clear()
        done = subprocess.run(
            ["kubectl", "--kubeconfig", str(config), *args],
            env=env,
            cwd=Path(home),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert len(Recorder.posts) == 1
        return Recorder.posts[0]

    yield run
    server.shutdown()
    server.server_close()


KUBECTL_CASES = [
    (
        ["create", "namespace", "foo"],
        "/api/v1/namespaces",
        {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "foo"}, "spec": {}, "status": {}},
    ),
    (
        ["create", "configmap", "c", "--from-literal=a=b"],
        "/api/v1/namespaces/default/configmaps",
        {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"}, "data": {"a": "b"}},
    ),
    (
        ["create", "secret", "generic", "s", "--from-literal=k=v"],
        "/api/v1/namespaces/default/secrets",
        {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}, "data": {"k": "dg=="}},
    ),
    (
        ["create", "deployment", "d", "--image=nginx", "--replicas=2"],
        "/apis/apps/v1/namespaces/default/deployments",
        {
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {"name": "d", "labels": {"app": "d"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]},
                },
                "strategy": {},
            },
            "status": {},
        },
    ),
    (
        ["create", "service", "clusterip", "svc", "--tcp=80:8080"],
        "/api/v1/namespaces/default/services",
        {
            "kind": "Service",
            "apiVersion": "v1",
            "metadata": {"name": "svc", "labels": {"app": "svc"}},
            "spec": {
                "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                "selector": {"app": "svc"},
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        },
    ),
    (
        ["create", "cronjob", "cj", "--image=busybox", "--schedule=*/5 * * * *", "--", "echo", "hi"],
        "/apis/batch/v1/namespaces/default/cronjobs",
        {
            "kind": "CronJob",
            "apiVersion": "batch/v1",
            "metadata": {"name": "cj"},
            "spec": {
                "schedule": "*/5 * * * *",
                "jobTemplate": {
                    "metadata": {"name": "cj"},
                    "spec": {
                        "template": {
                            "metadata": {},
                            "spec": {
                                "containers": [
                                    {
                                        "name": "cj",
                                        "image": "busybox",
                                        "command": ["echo", "hi"],
                                        "resources": {},
                                    }
                                ],
                                "restartPolicy": "OnFailure",
                            },
                        }
                    },
                },
            },
            "status": {},
        },
    ),
]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")
@pytest.mark.parametrize(
    ("args", "path", "expected"), KUBECTL_CASES, ids=["-".join(case[0][1:3]) for case in KUBECTL_CASES]
)
def test_kubectl_protobuf_bodies_decode_to_their_json_form(
    kubectl: Any, args: list[str], path: str, expected: dict[str, Any]
) -> None:
    got_path, content_type, body = kubectl(*args)
    assert got_path == path
    assert content_type == PROTOBUF_CONTENT_TYPE
    assert body.startswith(MAGIC)
    assert decode_protobuf_object(body) == expected
