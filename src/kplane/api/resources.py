"""What the server knows about one served resource (group, version, plural, kind, scope, verbs).

The same record drives routing, discovery (aggregated and legacy), OpenAPI, Table output and storage keys, so
built-in kinds (from a version profile) and CRDs (registered at run time) are treated alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class PrinterColumn:
    """A column of ``kubectl get`` output: CRD ``additionalPrinterColumns`` or a built-in kind's column."""

    name: str
    type: str
    json_path: str
    description: str = ""
    format: str = ""
    priority: int = 0


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()  # "status", "scale"
    storage_version: str = ""  # version objects are stored as; "" = this version
    printer_columns: tuple[PrinterColumn, ...] = ()
    crd_name: str = ""  # set for custom resources
    selectable_fields: tuple[str, ...] = ()  # field selectors beyond metadata.name/namespace
    scale_paths: tuple[str, str, str] | None = None  # (specReplicasPath, statusReplicasPath, labelSelectorPath)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def group_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def key_prefix(self, namespace: str | None = None) -> str:
        """Storage prefix as the real apiserver lays keys out: ``/registry/<group>/<plural>/<ns>/``.

        The prefix ignores the version: every served version of a resource shares one set of objects.
        """
        base = f"/registry/{self.group or 'core'}/{self.plural}/"
        if self.namespaced and namespace:
            return base + namespace + "/"
        return base

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.key_prefix(namespace)}{name}"
        return f"{self.key_prefix()}{name}"
