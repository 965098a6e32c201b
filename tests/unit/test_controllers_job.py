"""Job planning: parallelism and completions, success and failure conditions, deadline, suspend, pod labels."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kplane.controllers.job import CONTROLLER_UID, JOB_NAME, is_finished, job_pod, plan_job

NOW = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)


def job(status: Any = None, **spec: Any) -> Any:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "ns", "uid": "j-uid"},
            "spec": {"template": {"metadata": {"labels": {"app": "pi"}},
                                  "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "perl"}]}},
                     **spec},
            "status": status or {}}


def pod(phase: str, ready: bool = False, name: str = "p") -> Any:
    return {"metadata": {"name": name}, "status": {"phase": phase,
                                                   "conditions": [{"type": "Ready", "status": str(ready)}]}}


def conditions(status: Any) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


def test_pods_carry_job_labels_and_owner() -> None:
    p = job_pod(job())
    labels = p["metadata"]["labels"]
    assert labels[CONTROLLER_UID] == "j-uid" and labels[JOB_NAME] == "pi" and labels["app"] == "pi"
    assert labels["controller-uid"] == "j-uid" and labels["job-name"] == "pi"
    assert p["metadata"]["ownerReferences"][0]["kind"] == "Job" and p["metadata"]["generateName"] == "pi-"


def test_parallelism_bounds_active_pods_and_completions_bound_the_total() -> None:
    plan = plan_job(job(completions=5, parallelism=2), [], NOW)
    assert plan.create == 2 and plan.status["startTime"] == "2025-01-01T12:00:00Z"
    pods = [pod("Succeeded"), pod("Succeeded"), pod("Succeeded"), pod("Succeeded"), pod("Running", ready=True)]
    plan = plan_job(job(completions=5, parallelism=2), pods, NOW)
    assert plan.create == 0 and plan.delete == []  # one more to go, and it is running
    assert (plan.status["active"], plan.status["succeeded"], plan.status["ready"]) == (1, 4, 1)
    assert plan_job(job(completions=1, parallelism=1), [pod("Failed")], NOW).create == 1  # retry


def test_completion_adds_success_criteria_met_then_complete() -> None:
    plan = plan_job(job(completions=2, parallelism=2), [pod("Succeeded"), pod("Succeeded")], NOW)
    assert plan.create == 0
    assert conditions(plan.status) == {"SuccessCriteriaMet": ("True", "CompletionsReached"),
                                       "Complete": ("True", "CompletionsReached")}
    assert plan.status["completionTime"] == "2025-01-01T12:00:00Z" and plan.status["succeeded"] == 2
    assert is_finished({"status": plan.status})


def test_complete_waits_for_lingering_pods_to_stop() -> None:
    pods = [pod("Succeeded", name="a"), pod("Running", name="b")]
    plan = plan_job(job(completions=1, parallelism=2), pods, NOW)
    assert [p["metadata"]["name"] for p in plan.delete] == ["b"]
    assert conditions(plan.status) == {"SuccessCriteriaMet": ("True", "CompletionsReached")}
    assert "completionTime" not in plan.status


def test_without_completions_the_first_success_ends_the_job() -> None:
    assert plan_job(job(parallelism=3), [], NOW).create == 3
    running = plan_job(job(parallelism=3), [pod("Succeeded"), pod("Running")], NOW)
    assert running.create == 0 and "conditions" not in running.status
    done = plan_job(job(parallelism=3), [pod("Succeeded"), pod("Succeeded")], NOW)
    assert "Complete" in conditions(done.status)


def test_backoff_limit_exceeded_fails_the_job() -> None:
    pods = [pod("Failed"), pod("Failed"), pod("Running", name="live")]
    plan = plan_job(job(completions=1, parallelism=1, backoffLimit=1), pods, NOW)
    assert conditions(plan.status) == {"FailureTarget": ("True", "BackoffLimitExceeded")}
    assert [p["metadata"]["name"] for p in plan.delete] == ["live"] and plan.create == 0
    final = plan_job(job(plan.status, completions=1, parallelism=1, backoffLimit=1), pods[:2], NOW)
    assert conditions(final.status)["Failed"] == ("True", "BackoffLimitExceeded")
    failed = next(c for c in final.status["conditions"] if c["type"] == "Failed")
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert "completionTime" not in final.status and final.create == 0
    assert plan_job(job(completions=1, backoffLimit=2), [pod("Failed"), pod("Failed")], NOW).create == 1


def test_finished_counts_never_go_down_when_pods_disappear() -> None:
    plan = plan_job(job({"succeeded": 2, "failed": 1}, completions=3, parallelism=1), [], NOW)
    assert plan.status["succeeded"] == 2 and plan.status["failed"] == 1 and plan.create == 1


def test_active_deadline() -> None:
    status = {"startTime": "2025-01-01T11:00:00Z"}
    plan = plan_job(job(status, completions=1, activeDeadlineSeconds=60), [pod("Running")], NOW)
    assert conditions(plan.status) == {"FailureTarget": ("True", "DeadlineExceeded")}
    assert len(plan.delete) == 1
    assert plan_job(job(status, completions=1, activeDeadlineSeconds=7200), [pod("Running")], NOW).delete == []


def test_suspended_job_stops_its_pods_and_does_not_start() -> None:
    plan = plan_job(job(completions=1, suspend=True), [pod("Running")], NOW)
    assert len(plan.delete) == 1 and plan.create == 0 and "startTime" not in plan.status


def test_finished_job_creates_nothing_more() -> None:
    finished = {"succeeded": 1, "conditions": [
        {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "m"}]}
    plan = plan_job(job(finished, completions=3), [], NOW)
    assert plan.create == 0 and conditions(plan.status) == {"Complete": ("True", "CompletionsReached")}
