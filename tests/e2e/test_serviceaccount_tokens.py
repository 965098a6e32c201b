"""Bound service-account tokens: `kubectl create token` (a protobuf TokenRequest), using them, revoking them."""

from __future__ import annotations

import base64
import json

from tests.e2e.harness import ControlPlane, unique


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_token_authenticates_until_its_service_account_is_deleted(plane: ControlPlane) -> None:
    name = unique("robot")
    plane.kubectl("create", "serviceaccount", name)
    token = plane.kubectl("create", "token", name, "--duration=20m").stdout.strip()
    claims = _claims(token)
    assert claims["sub"] == f"system:serviceaccount:default:{name}"
    assert claims["aud"] == ["https://kubernetes.default.svc.cluster.local"]
    assert plane.kubectl("--token", token, "get", "namespace", "default", "-o", "name").stdout.strip() \
        == "namespace/default"
    plane.kubectl("delete", "serviceaccount", name)
    denied = plane.kubectl("--token", token, "get", "namespace", "default", check=False)
    assert denied.returncode != 0
    assert "Unauthorized" in denied.stderr


def test_a_recreated_service_account_does_not_honour_old_tokens(plane: ControlPlane) -> None:
    name = unique("robot")
    plane.kubectl("create", "serviceaccount", name)
    token = plane.kubectl("create", "token", name).stdout.strip()
    plane.kubectl("delete", "serviceaccount", name)
    plane.kubectl("create", "serviceaccount", name)
    assert plane.kubectl("--token", token, "get", "namespaces", check=False).returncode != 0


def test_token_request_validation(plane: ControlPlane) -> None:
    name = unique("robot")
    plane.kubectl("create", "serviceaccount", name)
    short = plane.kubectl("create", "token", name, "--duration=1m", check=False)
    assert short.returncode != 0
    assert "may not specify a duration less than 10 minutes" in short.stderr
    missing = plane.kubectl("create", "token", unique("nobody"), check=False)
    assert missing.returncode != 0
    assert "NotFound" in missing.stderr or "not found" in missing.stderr


def test_forged_token_is_rejected(plane: ControlPlane) -> None:
    name = unique("robot")
    plane.kubectl("create", "serviceaccount", name)
    header, payload, signature = plane.kubectl("create", "token", name).stdout.strip().split(".")
    claims = _claims(f"{header}.{payload}.{signature}")
    claims["sub"] = "system:serviceaccount:kube-system:admin"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    forged = f"{header}.{forged_payload}.{signature}"
    assert plane.kubectl("--token", forged, "get", "namespaces", check=False).returncode != 0
