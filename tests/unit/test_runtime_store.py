"""Object keys, resourceVersion comparison, and the indexed store."""

from __future__ import annotations

from typing import Any

import pytest
from lightkube.models.core_v1 import PodSpec
from lightkube.models.meta_v1 import ObjectMeta, OwnerReference
from lightkube.resources.core_v1 import Pod

from kplane.runtime.objects import (
    is_newer,
    key_of,
    make_key,
    owner_references_of,
    resource_version_of,
    split_key,
)
from kplane.runtime.store import (
    NAMESPACE_INDEX,
    OWNER_UID_INDEX,
    Store,
    index_by_field,
    index_by_owner_uid,
)


def pod(name: str, namespace: str = "default", node: str | None = None, owner: str | None = None) -> Pod:
    refs = [OwnerReference(apiVersion="apps/v1", kind="ReplicaSet", name="rs", uid=owner)] if owner else None
    return Pod(
        metadata=ObjectMeta(name=name, namespace=namespace, resourceVersion="1", ownerReferences=refs),
        spec=PodSpec(containers=[], nodeName=node),
    )


def widget(name: str, namespace: str = "", rv: str = "1") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": rv}, "spec": {"node": "n1"}}


def test_keys_for_models_and_dicts() -> None:
    assert key_of(pod("p", "ns")) == "ns/p"
    assert key_of(widget("w")) == "w"
    assert key_of(widget("w", "ns")) == "ns/w"
    assert resource_version_of(widget("w", rv="42")) == "42"
    assert resource_version_of({}) == ""


@pytest.mark.parametrize(("key", "expected"), [("ns/n", ("ns", "n")), ("n", ("", "n"))])
def test_split_key_round_trips(key: str, expected: tuple[str, str]) -> None:
    assert split_key(key) == expected
    assert make_key(*expected) == key


@pytest.mark.parametrize("bad", ["", "a/b/c", "/n", "ns/"])
def test_split_key_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        split_key(bad)


@pytest.mark.parametrize(
    ("candidate", "current", "newer"),
    [("10", "9", True), ("9", "10", False), ("5", "5", False), ("abc", "abd", True), ("x", "x", False)],
)
def test_is_newer(candidate: str, current: str, newer: bool) -> None:
    assert is_newer(candidate, current) is newer


def test_owner_references_from_model_and_dict() -> None:
    assert [r.uid for r in owner_references_of(pod("p", owner="u1"))] == ["u1"]
    obj = {"metadata": {"ownerReferences": [{"kind": "X", "name": "x", "uid": "u", "controller": True}]}}
    (ref,) = owner_references_of(obj)
    assert (ref.kind, ref.controller, ref.api_version) == ("X", True, "")
    assert owner_references_of({"metadata": {}}) == []


def test_store_put_get_delete_and_namespace_index() -> None:
    store = Store()
    assert store.put(pod("a", "ns1")) is None
    store.put(pod("b", "ns1"))
    store.put(pod("c", "ns2"))
    assert len(store) == 3
    assert [key_of(o) for o in store.by_index(NAMESPACE_INDEX, "ns1")] == ["ns1/a", "ns1/b"]
    replaced = store.put(pod("a", "ns1"))
    assert replaced is not None
    assert store.delete("ns1/a") is not None
    assert store.delete("ns1/a") is None
    assert store.index_keys(NAMESPACE_INDEX, "ns1") == {"ns1/b"}
    assert "ns1/a" not in store


def test_index_values_move_when_object_changes() -> None:
    store = Store({"node": index_by_field("spec", "nodeName")})
    store.put(pod("p", node="n1"))
    assert store.index_keys("node", "n1") == {"default/p"}
    store.put(pod("p", node="n2"))
    assert store.index_keys("node", "n1") == set()
    assert store.index_keys("node", "n2") == {"default/p"}
    store.put(pod("p"))
    assert store.index_keys("node", "n2") == set()


def test_field_index_on_dicts_and_owner_uid_index() -> None:
    store = Store({"node": index_by_field("spec", "node"), OWNER_UID_INDEX: index_by_owner_uid})
    store.put(widget("w"))
    store.put(pod("p", owner="uid-1"))
    assert store.index_keys("node", "n1") == {"w"}
    assert store.index_keys(OWNER_UID_INDEX, "uid-1") == {"default/p"}


def test_indexer_added_later_indexes_existing_objects() -> None:
    store = Store()
    store.put(pod("p", node="n1"))
    store.add_indexer("node", index_by_field("spec", "nodeName"))
    assert store.index_keys("node", "n1") == {"default/p"}
    with pytest.raises(ValueError, match="already exists"):
        store.add_indexer("node", index_by_field("spec", "nodeName"))


def test_unknown_index_and_empty_field_path() -> None:
    with pytest.raises(KeyError):
        Store().by_index("nope", "x")
    with pytest.raises(ValueError):
        index_by_field()


def test_clear_empties_items_and_indices() -> None:
    store = Store()
    store.put(pod("p"))
    store.clear()
    assert len(store) == 0
    assert store.index_keys(NAMESPACE_INDEX, "default") == set()
