"""Bad requests over raw HTTPS: each gets the upstream ``Status`` (code, reason, message) and writes nothing.

"Writes nothing" is checked by comparing lists before and after: a list's resourceVersion is the store's
current revision, so any write anywhere would move it. Expectations follow the real server (python-k8s.md
§1.7, apiserver ``endpoints/handlers``); where kplane's wording is its own, only code and reason are pinned.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx
import orjson
import pytest

from tests.e2e.harness import ControlPlane

NS = "bad-input"
GROUP = "e2e.kplane.dev"
CM = f"/api/v1/namespaces/{NS}/configmaps"
DEPLOY = f"/apis/apps/v1/namespaces/{NS}/deployments"
WIDGETS = f"/apis/{GROUP}/v1/namespaces/{NS}/widgets"
JSON, YAML = "application/json", "application/yaml"
MERGE, JSON_PATCH, APPLY = "application/merge-patch+json", "application/json-patch+json", "application/apply-patch+yaml"
NOT_FOUND = "the server could not find the requested resource"
MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"
BODY_LIMIT = 3 * 1024 * 1024
KUBECONFIG_TOKEN = "<the kubeconfig's bearer token>"

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
                "type": "object",
                "x-kubernetes-validations": [{"rule": "self.size <= 10", "message": "size must be at most 10"}],
                "properties": {
                    "size": {"type": "integer", "default": 1},
                    "color": {"type": "string", "enum": ["red", "blue"]},
                    "note": {"type": "string"},
                },
            }}}},
        }],
    },
}


def deployment(name: str, **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}},
                     **spec}}


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def configmap(name: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **extra}


@dataclass
class Api:
    """A raw HTTPS client with the kubeconfig's CA and token."""

    server: str
    ca_pem: str
    token: str
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.server, verify=ssl.create_default_context(cadata=self.ca_pem),
                                   timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = JSON,
                authorization: str | None = KUBECONFIG_TOKEN) -> httpx.Response:
        headers = {"Content-Type": content_type} if content_type and body is not None else {}
        if authorization == KUBECONFIG_TOKEN:
            authorization = f"Bearer {self.token}"
        if authorization is not None:
            headers["Authorization"] = authorization
        return self.client.request(method, path, content=body, headers=headers)

    def ok(self, method: str, path: str, obj: Any = None) -> Any:
        response = self.request(method, path, None if obj is None else orjson.dumps(obj))
        assert response.status_code < 300, response.text
        return response.json()

    def state(self) -> dict[str, Any]:
        """The lists a stray write would change; the ConfigMap list's resourceVersion is the store's revision."""
        snapshot = {}
        for path in (CM, DEPLOY, WIDGETS):
            listed = self.ok("GET", path)
            snapshot[path] = (listed["metadata"]["resourceVersion"], listed["items"])
        return snapshot


@pytest.fixture(scope="module")
def api(plane: ControlPlane) -> Iterator[Api]:
    client = Api(*plane.credentials())
    client.ok("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
    client.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    deadline = time.monotonic() + 15
    while client.request("GET", WIDGETS).status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.1)
    client.ok("POST", CM, configmap("existing", data={"a": "1"}))
    client.ok("POST", DEPLOY, deployment("existing"))
    client.ok("POST", WIDGETS, widget("existing", size=2))
    yield client
    client.client.close()


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: bytes | None
    code: int
    reason: str
    message: str | None = None  # exact, when kplane must match upstream's wording
    pattern: str | None = None  # a regular expression the message must match (search)
    causes: tuple[tuple[str, str], ...] = ()  # (reason, field) pairs that must be among details.causes
    content_type: str | None = JSON
    authorization: str | None = KUBECONFIG_TOKEN  # None sends no Authorization header


def body(obj: Any) -> bytes:
    return orjson.dumps(obj)


CASES: dict[str, Case] = {
    # --- undecodable bodies: 400 BadRequest ------------------------------------------------------------
    "malformed-json-create": Case("POST", CM, b'{"metadata": {"name": "x"', 400, "BadRequest"),
    "malformed-json-update": Case("PUT", f"{CM}/existing", b"{bad", 400, "BadRequest"),
    "malformed-yaml-create": Case("POST", CM, b"metadata: [name\ndata: {", 400, "BadRequest", content_type=YAML),
    "yaml-list-not-object": Case("POST", CM, b"- a\n- b\n", 400, "BadRequest", content_type=YAML),
    "json-array-not-object": Case("POST", CM, b"[1, 2]", 400, "BadRequest"),
    "empty-body": Case("POST", CM, b"", 400, "BadRequest"),
    "malformed-merge-patch": Case("PATCH", f"{CM}/existing", b"{bad", 400, "BadRequest", content_type=MERGE),
    "malformed-json-patch": Case("PATCH", f"{CM}/existing", b"[{bad", 400, "BadRequest", content_type=JSON_PATCH),
    "malformed-apply-yaml": Case("PATCH", f"{CM}/existing?fieldManager=e2e", b"data: [x\n", 400, "BadRequest",
                                 content_type=APPLY),
    "unsupported-media-type": Case("POST", CM, b"{}", 415, "UnsupportedMediaType", content_type="text/plain"),
    # --- fieldValidation=Strict: 400 with the strict decoding message ------------------------------
    "strict-unknown-field-deployment": Case(
        "POST", f"{DEPLOY}?fieldValidation=Strict", body(deployment("strict", x=1)), 400, "BadRequest",
        message='Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
                'unknown field "spec.x"'),
    "strict-unknown-field-widget": Case(
        "POST", f"{WIDGETS}?fieldValidation=Strict", body(widget("strict", x=1)), 400, "BadRequest",
        message='Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.x"'),
    "strict-unknown-field-configmap-update": Case(
        "PUT", f"{CM}/existing?fieldValidation=Strict", body(configmap("existing", spec={"x": 1})), 400,
        "BadRequest", message='ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
                              'unknown field "spec"'),
    # A field named twice: the last value would win, so Strict refuses it; duplicates are listed before unknown
    # fields (apiserver_test.go: `strict decoding error: duplicate field "other", unknown field "unknown"`).
    "strict-duplicate-field-configmap": Case(
        "POST", f"{CM}?fieldValidation=Strict",
        b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup","name":"dup2"},"data":{"a":"1"},'
        b'"data":{"b":"2"},"spec":1}', 400, "BadRequest",
        message='ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
                'duplicate field "metadata.name", duplicate field "data", unknown field "spec"'),
    "strict-duplicate-field-widget-patch": Case(
        "PATCH", f"{WIDGETS}/existing?fieldValidation=Strict", b'{"spec": {"size": 2, "size": 3}}', 400,
        "BadRequest", message='strict decoding error: duplicate field "spec.size"', content_type=MERGE),
    # Patches are not decoded into the kind, so upstream reports them without the "cannot be handled" prefix.
    "strict-unknown-field-patch": Case(
        "PATCH", f"{DEPLOY}/existing?fieldValidation=Strict", body({"spec": {"x": 1, "replicas": 2}}), 400,
        "BadRequest", message='strict decoding error: unknown field "spec.x"', content_type=MERGE),
    # --- schema violations ---------------------------------------------------------------------------
    # A built-in kind with a wrongly typed field does not decode into its Go struct: 400 upstream.
    "builtin-wrong-type": Case("POST", DEPLOY, body(deployment("typed", replicas="three")), 400, "BadRequest",
                               pattern=r"spec\.replicas"),
    "builtin-invalid-value": Case("POST", DEPLOY, body(deployment("negative", replicas=-1)), 422, "Invalid",
                                  message='Deployment.apps "negative" is invalid: spec.replicas: Invalid value: -1: '
                                          "must be greater than or equal to 0",
                                  causes=(("FieldValueInvalid", "spec.replicas"),)),
    "builtin-invalid-name": Case("POST", CM, body(configmap("Bad_Name")), 422, "Invalid",
                                 pattern=r'^ConfigMap "Bad_Name" is invalid: metadata\.name: Invalid value',
                                 causes=(("FieldValueInvalid", "metadata.name"),)),
    "crd-wrong-type": Case("POST", WIDGETS, body(widget("typed", size="big")), 422, "Invalid",
                           pattern=r'^Widget\.e2e\.kplane\.dev "typed" is invalid: spec\.size: Invalid value: '
                                   r'"string": spec\.size in body must be of type integer',
                           causes=(("FieldValueTypeInvalid", "spec.size"),)),
    "crd-enum": Case("POST", WIDGETS, body(widget("colour", color="green")), 422, "Invalid",
                     message='Widget.e2e.kplane.dev "colour" is invalid: spec.color: Unsupported value: "green": '
                             'supported values: "red", "blue"',
                     causes=(("FieldValueNotSupported", "spec.color"),)),
    "crd-cel-rule": Case("POST", WIDGETS, body(widget("huge", size=11)), 422, "Invalid",
                         pattern=r"spec: Invalid value: .*size must be at most 10",
                         causes=(("FieldValueInvalid", "spec"),)),
    "crd-cel-rule-on-patch": Case("PATCH", f"{WIDGETS}/existing", body({"spec": {"size": 50}}), 422, "Invalid",
                                  pattern=r"size must be at most 10", causes=(("FieldValueInvalid", "spec"),),
                                  content_type=MERGE),
    "json-patch-test-fails": Case("PATCH", f"{CM}/existing",
                                  body([{"op": "test", "path": "/data/a", "value": "no"}]), 422, "Invalid",
                                  content_type=JSON_PATCH),
    # --- optimistic concurrency: 409 Conflict --------------------------------------------------------
    "stale-rv-update": Case("PUT", f"{CM}/existing", body(configmap("existing", metadata={
        "name": "existing", "resourceVersion": "1"}, data={"a": "2"})), 409, "Conflict",
        message=f'Operation cannot be fulfilled on configmaps "existing": {MODIFIED}'),
    "stale-rv-update-crd": Case("PUT", f"{WIDGETS}/existing", body({**widget("existing", size=3), "metadata": {
        "name": "existing", "resourceVersion": "1"}}), 409, "Conflict",
        message=f'Operation cannot be fulfilled on widgets.{GROUP} "existing": {MODIFIED}'),
    "stale-rv-merge-patch": Case("PATCH", f"{DEPLOY}/existing", body({"metadata": {"resourceVersion": "1"},
                                                                     "spec": {"replicas": 5}}), 409, "Conflict",
                                 message=f'Operation cannot be fulfilled on deployments.apps "existing": {MODIFIED}',
                                 content_type=MERGE),
    "stale-rv-delete-precondition": Case(
        "DELETE", f"{CM}/existing", body({"preconditions": {"resourceVersion": "1"}}), 409, "Conflict",
        pattern=r'^Operation cannot be fulfilled on configmaps "existing": Precondition failed: '
                r"ResourceVersion in precondition: 1, ResourceVersion in object meta: \d+$"),
    "create-existing": Case("POST", CM, body(configmap("existing")), 409, "AlreadyExists",
                            message='configmaps "existing" already exists'),
    # --- unknown kinds and resources: 404 ------------------------------------------------------------
    "unknown-core-resource": Case("GET", f"/api/v1/namespaces/{NS}/gadgets", None, 404, "NotFound",
                                  message=NOT_FOUND),
    "unknown-group": Case("POST", f"/apis/nope.example.com/v1/namespaces/{NS}/things", body({"kind": "Thing"}),
                          404, "NotFound", message=NOT_FOUND),
    "unknown-version": Case("GET", "/apis/apps/v9/deployments", None, 404, "NotFound", message=NOT_FOUND),
    "unknown-subresource": Case("GET", f"{CM}/existing/bogus", None, 404, "NotFound", message=NOT_FOUND),
    "missing-object": Case("GET", f"{WIDGETS}/missing", None, 404, "NotFound",
                           message=f'widgets.{GROUP} "missing" not found'),
    "missing-object-update": Case("PUT", f"{CM}/missing", body(configmap("missing")), 404, "NotFound",
                                  message='configmaps "missing" not found'),
    "missing-namespace": Case("POST", "/api/v1/namespaces/no-such-ns/configmaps", body(configmap("x")), 404,
                              "NotFound", message='namespaces "no-such-ns" not found'),
    # --- body identity not matching the URL: 400 -----------------------------------------------------
    "api-version-mismatch": Case("POST", CM, body({**configmap("x"), "apiVersion": "apps/v1"}), 400, "BadRequest",
                                 message="the API version in the data (apps/v1) does not match the expected API "
                                         "version (v1)"),
    "kind-mismatch": Case("POST", CM, body({**configmap("x"), "kind": "Secret"}), 400, "BadRequest"),
    "kind-mismatch-crd": Case("POST", WIDGETS, body({**widget("x"), "kind": "Gadget"}), 400, "BadRequest"),
    "name-mismatch": Case("PUT", f"{CM}/existing", body(configmap("other")), 400, "BadRequest"),
    "namespace-mismatch": Case("POST", CM, body(configmap("x", metadata={"name": "x", "namespace": "default"})),
                               400, "BadRequest", message="the namespace of the provided object does not match "
                                                          "the namespace sent on the request"),
    # --- oversized -----------------------------------------------------------------------------------
    # An object over etcd's 1.5 MiB request limit, under the 3 MiB body limit.
    "object-over-1.5MiB": Case("POST", WIDGETS, body(widget("big", note="x" * (1536 * 1024 + 1))), 413,
                               "RequestEntityTooLarge"),
    "patch-to-over-1.5MiB": Case("PATCH", f"{WIDGETS}/existing", body({"spec": {"note": "x" * (1600 * 1024)}}),
                                 413, "RequestEntityTooLarge", content_type=MERGE),
    # A ConfigMap is refused earlier, by its own validation (data over 1 MiB; ValidateConfigMap upstream).
    "configmap-over-1MiB": Case("POST", CM, body(configmap("big", data={"x": "y" * (1600 * 1024)})), 422,
                                "Invalid", pattern=r'^ConfigMap "big" is invalid: .*Too long'),
    "body-over-3MiB": Case("POST", CM, body(configmap("huge", data={"x": "y" * BODY_LIMIT})), 413,
                           "RequestEntityTooLarge", message=f"Request entity too large: limit is {BODY_LIMIT}"),
    # --- authentication: 401 before anything else -----------------------------------------------------
    "no-token-list": Case("GET", CM, None, 401, "Unauthorized", message="Unauthorized", authorization=None),
    "bad-token-list": Case("GET", CM, None, 401, "Unauthorized", message="Unauthorized",
                           authorization="Bearer not-the-token"),
    "bad-token-create": Case("POST", CM, body(configmap("sneaky")), 401, "Unauthorized", message="Unauthorized",
                             authorization="Bearer not-the-token"),
    "bad-token-delete": Case("DELETE", f"{CM}/existing", None, 401, "Unauthorized", message="Unauthorized",
                             authorization="Bearer " + "x" * 64),
    "bearer-without-token": Case("GET", CM, None, 401, "Unauthorized", message="Unauthorized",
                                 authorization="Bearer"),
    "basic-auth": Case("GET", CM, None, 401, "Unauthorized", message="Unauthorized",
                       authorization="Basic YWRtaW46YWRtaW4="),
}


def assert_status(response: httpx.Response, case: Case) -> dict[str, Any]:
    assert response.status_code == case.code, response.text
    assert response.headers["content-type"].startswith("application/json")
    status: dict[str, Any] = response.json()
    assert (status["kind"], status["apiVersion"], status["status"]) == ("Status", "v1", "Failure")
    assert (status["code"], status["reason"]) == (case.code, case.reason), status
    assert status["message"], status
    if case.message is not None:
        assert status["message"] == case.message
    if case.pattern is not None:
        assert re.search(case.pattern, status["message"]), status["message"]
    causes = {(c.get("reason"), c.get("field")) for c in status.get("details", {}).get("causes", [])}
    for cause in case.causes:
        assert cause in causes, status
    return status


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_request_gets_status_and_changes_nothing(api: Api, case: Case) -> None:
    before = api.state()
    response = api.request(case.method, case.path, case.body, case.content_type, case.authorization)
    assert_status(response, case)
    assert api.state() == before


def test_missing_resource_version_on_custom_resource_update_is_invalid(api: Api) -> None:
    before = api.state()
    response = api.request("PUT", f"{WIDGETS}/existing", body(widget("existing", size=3)))
    assert_status(response, Case("PUT", "", None, 422, "Invalid",
                                 causes=(("FieldValueInvalid", "metadata.resourceVersion"),)))
    assert api.state() == before


def test_wrong_resource_version_from_a_real_read(api: Api) -> None:
    """Read, let someone else write, then update with what was read: 409, and the other write survives."""
    current = api.ok("GET", f"{CM}/existing")
    other = api.request("PATCH", f"{CM}/existing", body({"data": {"other": "writer"}}), MERGE)
    assert other.status_code == 200, other.text
    before = api.state()
    current["data"] = {"a": "mine"}
    response = api.request("PUT", f"{CM}/existing", body(current))
    assert_status(response, Case("PUT", "", None, 409, "Conflict",
                                 message=f'Operation cannot be fulfilled on configmaps "existing": {MODIFIED}'))
    assert api.state() == before
    assert api.ok("GET", f"{CM}/existing")["data"]["other"] == "writer"


def test_duplicate_fields_are_warnings_by_default_and_the_last_value_wins(api: Api) -> None:
    response = api.request("POST", CM, b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"twice"},'
                                       b'"data":{"k":"first","k":"last"}}')
    try:
        assert response.status_code == 201, response.text
        assert response.json()["data"] == {"k": "last"}
        assert '299 - "duplicate field \\"data.k\\""' in response.headers.get("warning", "")
    finally:
        api.request("DELETE", f"{CM}/twice")


def test_good_token_still_works(api: Api) -> None:
    """The 401 cases above must be about the token, not a broken client."""
    assert api.request("GET", CM).status_code == 200
    assert api.request("GET", "/healthz", authorization=None).status_code == 200


def test_plain_http_to_the_https_port(api: Api) -> None:
    """Go's net/http answers a plaintext request on a TLS listener with this 400 and closes."""
    before = api.state()
    address = urlsplit(api.server)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(f"GET {CM} HTTP/1.1\r\nHost: {address.netloc}\r\n"
                     f"Authorization: Bearer {api.token}\r\n\r\n".encode())
        received = b""
        while True:
            try:
                chunk = sock.recv(4096)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    assert re.match(rb"HTTP/1\.[01] 400 ", status_line), received
    assert b"Client sent an HTTP request to an HTTPS server." in rest
    assert api.state() == before
