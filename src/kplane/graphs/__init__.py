"""kro-compatible ResourceGraphDefinitions (``kro.run/v1alpha1``, kro v0.9 behaviour): the pure part.

Public API (stable; the RGD and instance controllers build on it):

- ``build_graph(rgd, *, schemas=no_crds, kube_minor=36) -> Graph`` validates and compiles an RGD mapping.
  It raises :class:`GraphError` whose message is kro's text (what GraphAccepted=False shows). ``schemas`` is a
  :data:`SchemaLookup`, ``(group, version, kind) -> KindSchema | None``, consulted for kinds that are not
  built in; :func:`crd_schemas` makes one from CustomResourceDefinition objects.
- :class:`Graph`: ``crd`` (the generated instance CRD), ``group``/``version``/``kind``/``scope``/``api_version``,
  ``resources`` (id -> :class:`Resource`), ``order`` (kro's topological order), ``ordered()``,
  ``status_fields``, ``deletion_layers()`` (dependents first), ``program(source)``.
- :class:`Resource`: ``id``, ``api_version``, ``kind``, ``namespaced``, ``template`` | ``external_ref``,
  ``fields`` (expression fields), ``dependencies``, ``include_when``, ``ready_when``, ``for_each``
  (``(iterator, expression)`` pairs), ``is_collection``, ``is_external``, ``is_external_collection``.
- ``render(graph, instance, observed) -> RenderResult``: per resource a :class:`RenderedResource`
  (``included``, ``objects``, ``pending``, ``waiting_for``, ``ready``, ``external``, ``error``), the projected
  ``status`` and ``pending_status``; ``RenderResult.objects()`` lists what to apply in order.
"""

from kplane.graphs.graph import Graph, KindSchema, Resource, SchemaLookup, build_graph, crd_schemas, no_crds
from kplane.graphs.render import RenderedResource, RenderError, RenderResult, render, with_defaults
from kplane.graphs.validation import GraphError

__all__ = [
    "Graph",
    "GraphError",
    "KindSchema",
    "RenderError",
    "RenderResult",
    "RenderedResource",
    "Resource",
    "SchemaLookup",
    "build_graph",
    "crd_schemas",
    "no_crds",
    "render",
    "with_defaults",
]
