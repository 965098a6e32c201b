"""Build the lightkube client that controllers use, from an explicit kubeconfig file.

Controllers never read ambient configuration (environment, ~/.kube/config): `kplane up` hands them
`<data-dir>/kubeconfig`, and `kplane controllers --kubeconfig FILE` names a real cluster's.
"""

from __future__ import annotations

from pathlib import Path

import httpx2
from lightkube import AsyncClient, KubeConfig
from lightkube.config.client_adapter import verify_cluster
from lightkube.config.kubeconfig import SingleConfig

from kplane.runtime.transport import AiohttpTransport

DEFAULT_FIELD_MANAGER = "kplane-controllers"
DEFAULT_TIMEOUT_S = 10.0
# Watches hold a connection each for minutes (one per informer: a few dozen with the garbage collector's),
# so the pool must be well above that, next to one connection per concurrent request.
MAX_CONNECTIONS = 256


class KubeconfigError(Exception):
    """The kubeconfig cannot be used; the message is one line fit for a CLI error."""


def load_kubeconfig(path: str | Path, *, context: str | None = None) -> KubeConfig:
    """Read and check `path` now, so a bad file fails at start-up with a clear message."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise KubeconfigError(f"kubeconfig {path}: no such file")
    try:
        config = KubeConfig.from_file(file)
        config.get(context_name=context)
    except Exception as exc:
        raise KubeconfigError(f"kubeconfig {path}: {_describe(exc)}") from exc
    return config


def client_from_kubeconfig(
    path: str | Path,
    *,
    context: str | None = None,
    field_manager: str = DEFAULT_FIELD_MANAGER,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> AsyncClient:
    """An AsyncClient for the kubeconfig's `context` (its current context by default).

    Create it inside the event loop that will use it: httpx connection pools are bound to one loop.
    """
    config = load_kubeconfig(path, context=context)
    try:
        single = config.get(context_name=context)
        if single is None:
            raise ValueError("no context to use")
        return AsyncClient(
            single,
            field_manager=field_manager,
            timeout=httpx2.Timeout(timeout_s),
            trust_env=False,
            transport=pooled_transport(single),
        )
    except Exception as exc:
        raise KubeconfigError(f"kubeconfig {path}: {_describe(exc)}") from exc


def pooled_transport(config: SingleConfig) -> AiohttpTransport:
    """The TLS verification and client certificate lightkube would use, on aiohttp's connection pool
    (see `kplane.runtime.transport` for why not httpx2's)."""
    if config.user is None:
        raise ValueError("the context names no user")
    verify = verify_cluster(config.cluster, config.user, config.abs_file, trust_env=False)
    return AiohttpTransport(verify, max_connections=MAX_CONNECTIONS)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing {exc.args[0]!r}"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
