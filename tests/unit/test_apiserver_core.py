"""Request parsing, body decoding, watch filtering and metadata rules of the API server (no sockets)."""

from __future__ import annotations

import pytest

from kplane.api import meta, status
from kplane.apiserver import codec
from kplane.apiserver.request import Query, parse_resource_path, split_path
from kplane.apiserver.verbrules import decode_continue, encode_continue
from kplane.apiserver.watch import translate
from kplane.storage import Event


def namespaced(group: str, version: str, plural: str) -> bool:
    return plural in ("configmaps", "widgets")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/namespaces", ("", "v1", "namespaces", None, "", "")),
        ("/api/v1/namespaces/foo", ("", "v1", "namespaces", None, "foo", "")),
        ("/api/v1/namespaces/foo/status", ("", "v1", "namespaces", None, "foo", "status")),
        ("/api/v1/namespaces/foo/configmaps", ("", "v1", "configmaps", "foo", "", "")),
        ("/api/v1/namespaces/foo/configmaps/c/", ("", "v1", "configmaps", "foo", "c", "")),
        ("/apis/example.com/v1/namespaces/a/widgets/w/scale", ("example.com", "v1", "widgets", "a", "w", "scale")),
        ("/apis/example.com/v1/widgets", ("example.com", "v1", "widgets", None, "", "")),
    ],
)
def test_resource_paths(path: str, expected: tuple[object, ...]) -> None:
    parsed = parse_resource_path(split_path(path), namespaced)
    assert parsed is not None
    assert (parsed.group, parsed.version, parsed.plural, parsed.namespace, parsed.name, parsed.subresource) == expected


def test_non_resource_paths_are_not_parsed() -> None:
    assert parse_resource_path(split_path("/apis"), namespaced) is None
    assert parse_resource_path(split_path("/healthz"), namespaced) is None
    assert parse_resource_path(split_path("/api/v1/namespaces/a/configmaps/c/x/y"), namespaced) is None


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("true", True), ("True", True), ("0", False),
                                               ("false", False), ("", False)])
def test_watch_flag(raw: str, expected: bool) -> None:
    assert Query.parse(f"watch={raw}".encode()).flag("watch") is expected


def test_negative_limit_is_a_bad_request() -> None:
    with pytest.raises(status.StatusError) as err:
        Query.parse(b"limit=-1").integer("limit")
    assert err.value.code == 400


@pytest.mark.parametrize(
    ("body", "ctype", "code"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"", "application/json", 400),
        (b"a: [b", "application/yaml", 400),
        (b"{}", "text/plain", 415),
        (b"x" * (codec.MAX_REQUEST_BYTES + 1), "application/json", 413),
    ],
)
def test_bad_bodies(body: bytes, ctype: str, code: int) -> None:
    with pytest.raises(status.StatusError) as err:
        codec.decode_object(body, ctype)
    assert err.value.code == code


def test_missing_content_type_means_json() -> None:
    assert codec.decode_object(b'{"a": 1}', "") == {"a": 1}
    assert codec.decode_object(b"a: 1\n", "application/yaml; charset=utf-8") == {"a": 1}


def test_table_negotiation() -> None:
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io"
    assert codec.wants_table(accept) == (True, "meta.k8s.io/v1")
    assert codec.wants_table("application/json") == (False, "")


def test_continue_token_round_trip_and_garbage() -> None:
    key = "/registry/core/configmaps/a/b"
    assert decode_continue(encode_continue(42, key)) == (42, key)
    with pytest.raises(status.StatusError) as err:
        decode_continue("not-a-token")
    assert err.value.code == 400


def _event(kind: str, labels: dict[str, str], prev_labels: dict[str, str] | None) -> Event:
    prev = {"metadata": {"labels": prev_labels}} if prev_labels is not None else None
    return Event(kind, "/k", {"metadata": {"labels": labels}}, 5, prev)


def test_selector_transitions_become_added_and_deleted() -> None:
    def blue(obj: dict[str, object]) -> bool:
        return obj["metadata"]["labels"].get("c") == "blue"  # type: ignore[index,union-attr]

    assert translate(_event("MODIFIED", {"c": "blue"}, {"c": "red"}), blue)[0] == "ADDED"  # type: ignore[index]
    assert translate(_event("MODIFIED", {"c": "red"}, {"c": "blue"}), blue)[0] == "DELETED"  # type: ignore[index]
    assert translate(_event("MODIFIED", {"c": "blue"}, {"c": "blue"}), blue)[0] == "MODIFIED"  # type: ignore[index]
    assert translate(_event("MODIFIED", {"c": "red"}, {"c": "red"}), blue) is None
    assert translate(_event("ADDED", {"c": "red"}, None), blue) is None


def test_generation_moves_only_with_the_spec() -> None:
    old = {"metadata": {"generation": 3, "uid": "u"}, "spec": {"a": 1}, "status": {"x": 1}}
    same_spec = {"metadata": {"labels": {"l": "v"}}, "spec": {"a": 1}, "status": {"x": 2}}
    assert meta.carry_over_update(old, same_spec, status_is_subresource=True)["metadata"]["generation"] == 3
    changed = {"metadata": {}, "spec": {"a": 2}}
    updated = meta.carry_over_update(old, changed, status_is_subresource=True)
    assert updated["metadata"]["generation"] == 4
    assert updated["metadata"]["uid"] == "u"


def test_generate_name_suffix() -> None:
    name = meta.generated_name("web-")
    assert name.startswith("web-") and len(name) == len("web-") + 5


@pytest.mark.parametrize(("raw", "expected"), [
    (b'{"a":1,"b":{"c":1,"c":2},"a":3}', ["b.c", "a"]),
    (b'{"a": 1, "b": {"c": 1}}', []),
    (b'{"a" : 1, "b" : {"c" : 1}}', []),  # spaced JSON takes the exact walk and still finds nothing
    (b'{"spec":{"containers":[{"name":"x","name":"y"}]}}', ["spec.containers[0].name"]),
    (b'{"a":"\\":","a":1}', ["a"]),  # a quote and colon inside a string
    (b'{"a":"\\u0022:","b":1}', []),
    (b'{"a":1,"a":2,"a":3}', ["a"]),
    (b'{bad', []),  # undecodable bodies are the decoder's to report
])
def test_duplicate_fields(raw: bytes, expected: list[str]) -> None:
    assert codec.duplicate_fields(raw, "application/json") == expected


def test_duplicate_fields_only_for_json_bodies() -> None:
    assert codec.duplicate_fields(b'{"a":1,"a":2}', "application/yaml") == []
    assert codec.duplicate_fields(b'{"a":1,"a":2}', "application/merge-patch+json") == ["a"]


def test_warning_header_quotes_the_text() -> None:
    from kplane.apiserver.app import warning_header

    assert warning_header('unknown field "spec.x"') == b'299 - "unknown field \\"spec.x\\""'
    assert warning_header("a\\b") == b'299 - "a\\\\b"'
