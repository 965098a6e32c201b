"""A create refused because the namespace is being deleted is an expected outcome, not a reconcile error."""

from __future__ import annotations

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import ObjectReference
from lightkube.models.meta_v1 import Status, StatusCause, StatusDetails

from kplane.controllers import kube
from kplane.runtime import Result
from kplane.runtime.errors import is_namespace_terminating
from kplane.scheduler.events import EventRecorder

TERMINATING = ('pods "web-1" is forbidden: unable to create new content in namespace doomed because it is being '
               "terminated")


def error(code: int, message: str = "", causes: list[StatusCause] | None = None) -> ApiError:
    details = StatusDetails(causes=causes) if causes is not None else None
    return ApiError(status=Status(code=code, reason="Forbidden", message=message, details=details))


CASES = [
    (error(403, TERMINATING), True),
    (error(403, "forbidden", [StatusCause(reason="NamespaceTerminating", field="metadata.namespace")]), True),
    (error(403, 'pods is forbidden: User "x" cannot create resource "pods"'), False),  # RBAC stays an error
    (error(403, "exceeded quota"), False),
    (error(403, "forbidden", [StatusCause(reason="FieldValueInvalid")]), False),
    (error(409, TERMINATING), False),
    (error(404, TERMINATING), False),
]


@pytest.mark.parametrize(("exc", "expected"), CASES)
def test_namespace_terminating_is_told_apart(exc: ApiError, expected: bool) -> None:
    assert kube.is_namespace_terminating(exc) is expected
    assert is_namespace_terminating(exc) is expected


def test_other_exceptions_are_not_namespace_terminating() -> None:
    assert not kube.is_namespace_terminating(ValueError(TERMINATING))


async def test_skip_terminating_namespace_ends_the_sync_quietly() -> None:
    async def refused(key: str) -> Result | None:
        raise error(403, TERMINATING)

    assert await kube.skip_terminating_namespace(refused)("doomed/web") is None


async def test_skip_terminating_namespace_passes_results_and_other_errors_on() -> None:
    async def fine(key: str) -> Result | None:
        return Result(requeue_after=2.0)

    async def quota(key: str) -> Result | None:
        raise error(403, "exceeded quota")

    async def broken(key: str) -> Result | None:
        raise RuntimeError("boom")

    assert await kube.skip_terminating_namespace(fine)("ns/a") == Result(requeue_after=2.0)
    with pytest.raises(ApiError):
        await kube.skip_terminating_namespace(quota)("ns/a")
    with pytest.raises(RuntimeError):
        await kube.skip_terminating_namespace(broken)("ns/a")


class RefusingClient:
    def __init__(self, exc: ApiError) -> None:
        self.exc = exc

    async def create(self, obj: object) -> object:
        raise self.exc


async def test_scheduler_drops_an_event_for_a_terminating_namespace() -> None:
    involved = ObjectReference(kind="Pod", namespace="doomed", name="web-1", uid="u1")
    recorder = EventRecorder(RefusingClient(error(403, TERMINATING)), "default-scheduler")  # type: ignore[arg-type]
    await recorder.record(involved, "Warning", "FailedScheduling", "0/3 nodes are available")
    refused = EventRecorder(RefusingClient(error(403, "exceeded quota")), "default-scheduler")  # type: ignore[arg-type]
    with pytest.raises(ApiError):
        await refused.record(involved, "Warning", "FailedScheduling", "0/3 nodes are available")
