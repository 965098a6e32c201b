"""Every active namespace has a `default` ServiceAccount.

As kube-controller-manager's serviceaccounts controller (pkg/controller/serviceaccount/
serviceaccounts_controller.go): reconciled per namespace, on namespace changes and whenever a managed
ServiceAccount goes away; namespaces being deleted are skipped. Legacy token Secrets are not created
(upstream stopped auto-creating them in 1.24, LegacyServiceAccountTokenNoAutoGeneration).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Namespace, ServiceAccount

from kplane.runtime import Controller, Result, SharedInformers, make_key, split_key
from kplane.runtime.lkutil import as_dict, is_status, model
from kplane.runtime.objects import name_of, namespace_of

DEFAULT_NAME = "default"
MANAGED = frozenset({DEFAULT_NAME})


def is_active(namespace: Mapping[str, Any]) -> bool:
    meta = namespace.get("metadata") or {}
    return not meta.get("deletionTimestamp") and (namespace.get("status") or {}).get("phase") != "Terminating"


def service_account(namespace: str, name: str = DEFAULT_NAME) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}


def namespace_of_managed(sa: Any) -> list[str]:
    return [namespace_of(sa)] if name_of(sa) in MANAGED else []


class ServiceAccountController:
    def __init__(self, client: AsyncClient, *, informers: SharedInformers | None = None) -> None:
        self.client = client
        self.controller = Controller("serviceaccount", client, Namespace, self.reconcile, workers=2,
                                     informers=informers)
        self.accounts = self.controller.watches(ServiceAccount, namespace_of_managed)

    async def reconcile(self, key: str) -> Result | None:
        cached = self.controller.get(key)
        if cached is None:
            return None
        namespace = as_dict(cached)
        if not is_active(namespace):
            return None
        _, name = split_key(key)
        for account in sorted(MANAGED):
            if self.accounts.store.get(make_key(name, account)) is None:
                await self._create(name, account)
        return None

    async def _create(self, namespace: str, name: str) -> None:
        try:
            await self.client.create(model(ServiceAccount, service_account(namespace, name)))
        except ApiError as exc:
            # 409: a stale cache; 403: the namespace started terminating; 404: it is gone.
            if not is_status(exc, 403, 404, 409):
                raise


def serviceaccount_controller(client: AsyncClient, informers: SharedInformers | None = None) -> Controller:
    return ServiceAccountController(client, informers=informers).controller
