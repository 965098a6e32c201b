"""Bound service-account tokens: the ``serviceaccounts/token`` subresource (TokenRequest) and their checks.

Tokens are ES256 JWTs with the claims the real server issues (``iss``, ``sub`` =
``system:serviceaccount:<ns>:<name>``, ``aud``, ``exp``/``iat``/``nbf`` and the ``kubernetes.io`` claim naming the
namespace and the ServiceAccount's uid), signed with a key minted once per data directory. A token stops
authenticating when it expires or when its ServiceAccount is deleted or recreated (the uid no longer matches),
as upstream's bound-token validation does.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kplane.api import status

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600  # upstream: "may not specify a duration less than 10 minutes"
MAX_EXPIRATION = 2**32  # upstream caps at 2^32 seconds

ServiceAccountLookup = Callable[[str, str], Mapping[str, Any] | None]


def _load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return key


class ServiceAccountTokens:
    def __init__(self, key_path: Path, lookup: ServiceAccountLookup) -> None:
        self._key = _load_or_create_key(key_path)
        public = self._key.public_key().public_bytes(serialization.Encoding.DER,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
        self._kid = hashlib.sha256(public).hexdigest()[:43]
        self._lookup = lookup

    def issue(self, namespace: str, account: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
        """Answer a TokenRequest for ``account``: the request echoed back with ``status.token`` filled in."""
        spec = request.get("spec") if isinstance(request.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        seconds = spec.get("expirationSeconds", DEFAULT_EXPIRATION)
        name = str(account["metadata"]["name"])
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            raise status.invalid("TokenRequest", "authentication.k8s.io", name, [status.field_type(
                "spec.expirationSeconds", seconds, "integer")])
        if seconds < MIN_EXPIRATION or seconds > MAX_EXPIRATION:
            detail = ("may not specify a duration less than 10 minutes" if seconds < MIN_EXPIRATION
                      else "may not specify a duration larger than 2^32 seconds")
            raise status.invalid("TokenRequest", "authentication.k8s.io", name, [status.Cause(
                "FieldValueInvalid", f"Invalid value: {seconds}: {detail}", "spec.expirationSeconds")])
        audiences = [str(a) for a in spec.get("audiences") or []] or [ISSUER]
        now = int(time.time())
        claims = {
            "iss": ISSUER, "sub": f"system:serviceaccount:{namespace}:{name}", "aud": audiences,
            "iat": now, "nbf": now, "exp": now + seconds, "jti": os.urandom(16).hex(),
            "kubernetes.io": {"namespace": namespace,
                              "serviceaccount": {"name": name, "uid": account["metadata"].get("uid", "")}},
        }
        token = jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self._kid})
        expires = datetime.fromtimestamp(now + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": {**spec, "audiences": audiences, "expirationSeconds": seconds},
            "status": {"token": token, "expirationTimestamp": expires},
        }

    def authenticate(self, token: str) -> str | None:
        """The user name a valid token stands for, or ``None``."""
        if token.count(".") != 2:
            return None
        try:
            claims = jwt.decode(token, self._key.public_key(), algorithms=["ES256"], audience=ISSUER,
                                issuer=ISSUER, options={"require": ["exp", "sub", "aud"]})
        except jwt.PyJWTError:
            return None
        bound = claims.get("kubernetes.io") or {}
        namespace = bound.get("namespace", "")
        account = bound.get("serviceaccount") or {}
        live = self._lookup(namespace, account.get("name", ""))
        if live is None or live.get("metadata", {}).get("uid") != account.get("uid"):
            return None
        return str(claims["sub"])
