"""Controller runtime: informers, work queue, reconcile loop, leader election, dynamic controllers.

Talks to any Kubernetes API (kplane's embedded server or a real cluster) through lightkube only.
"""

from kplane.runtime.client import KubeconfigError, client_from_kubeconfig
from kplane.runtime.controller import Controller, Result, enqueue_owner
from kplane.runtime.informer import EventHandler, Informer, SharedInformers
from kplane.runtime.leader import LeaderElectionConfig, LeaderElector
from kplane.runtime.manager import DiscoveredResource, Manager
from kplane.runtime.objects import key_of, make_key, split_key
from kplane.runtime.store import Store, index_by_field, index_by_owner_uid
from kplane.runtime.workqueue import ExponentialBackoff, ShutDown, WorkQueue

__all__ = [
    "Controller",
    "DiscoveredResource",
    "EventHandler",
    "ExponentialBackoff",
    "Informer",
    "KubeconfigError",
    "LeaderElectionConfig",
    "LeaderElector",
    "Manager",
    "Result",
    "SharedInformers",
    "ShutDown",
    "Store",
    "WorkQueue",
    "client_from_kubeconfig",
    "enqueue_owner",
    "index_by_field",
    "index_by_owner_uid",
    "key_of",
    "make_key",
    "split_key",
]
