"""Small adapters over lightkube shared by controllers, the scheduler and the simulator.

Caches hold lightkube models for built-in kinds and `Generic` dicts for custom resources; planning works on
plain dicts, so objects are converted at the boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightkube.core.exceptions import ApiError

from kplane.runtime.objects import is_mapping_type


def as_dict(obj: Any) -> dict[str, Any]:
    if is_mapping_type(type(obj)):
        return dict(obj)
    result: dict[str, Any] = obj.to_dict()
    return result


def model(resource: Any, obj: Mapping[str, Any]) -> Any:
    """`resource.from_dict(obj)`, typed loosely: lightkube's stubs type it as a plain `DictMixin`."""
    return resource.from_dict(dict(obj))


def is_status(exc: BaseException, *codes: int) -> bool:
    return isinstance(exc, ApiError) and exc.status is not None and exc.status.code in codes
