"""Recognising API errors that controllers treat as expected outcomes rather than failures."""

from __future__ import annotations

from lightkube.core.exceptions import ApiError

NAMESPACE_TERMINATING_CAUSE = "NamespaceTerminating"  # core/v1 NamespaceTerminatingCause


def is_namespace_terminating(exc: BaseException) -> bool:
    """The 403 the namespace lifecycle admission gives a write in a namespace being deleted
    (plugin/pkg/admission/namespace/lifecycle): known by its status cause, or by its message where a server
    sends none."""
    if not isinstance(exc, ApiError) or exc.status is None or exc.status.code != 403:
        return False
    causes = (exc.status.details.causes if exc.status.details is not None else None) or []
    if any(cause.reason == NAMESPACE_TERMINATING_CAUSE for cause in causes):
        return True
    return "because it is being terminated" in (exc.status.message or "")
