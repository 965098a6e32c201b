"""Declarative pod lifecycle stages in the manner of kwok (kwok.x-k8s.io/v1alpha1 Stage,
kubernetes-sigs/kwok pkg/apis/v1alpha1/stage_types.go): a selector, a delay, and what happens next.

Everything here is pure: matching a pod against stages, computing a delay, and rendering the status patch a
stage applies. `kplane.sim.podagent` does the waiting and the writing.

A stage as YAML (the shape of kwok's Stage, trimmed to what kplane implements):

    apiVersion: kwok.x-k8s.io/v1alpha1
    kind: Stage
    metadata: {name: pod-complete}
    spec:
      selector:
        matchLabels: {app: web}                      # labels, all equal
        matchAnnotations: {kplane.io/x: "y"}         # annotations, all equal
        matchExpressions:                            # all must hold
        - {key: .status.phase, operator: In, values: [Running]}
        - {key: '.metadata.annotations["kplane.io/complete-after"]', operator: Exists}
        - {key: .metadata.ownerReferences.[].kind, operator: In, values: [Job]}
      delay:
        durationMilliseconds: 1000                   # fixed part
        jitterDurationMilliseconds: 5000             # optional: uniform in [duration, jitter]
        durationFrom: '.metadata.annotations["kplane.io/complete-after"]'  # "5s", "1m30s", or RFC 3339 time
      next:
        statusTemplate: succeeded                    # one of STATUS_TEMPLATES
        status: {reason: Custom}                     # literal fields merged over the template
        finalizers: {add: [a], remove: [b], empty: false}
        delete: false
        event: {type: Normal, reason: Completed, message: done}

Expression keys starting with "." are field paths: `.a.b`, `["key with / or ."]` and `.[]` over a list
(any element may match); other keys are label keys. Operators: In, NotIn, Exists, DoesNotExist. Stages are
tried in order and the first that matches applies (kwok picks by weight instead).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

Obj = Mapping[str, Any]

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
ANNOTATION_COMPLETE_AFTER = "kplane.io/complete-after"
ANNOTATION_FAIL_AFTER = "kplane.io/fail-after"
ANNOTATION_RESTART_AFTER = "kplane.io/restart-after"


# --- field paths -----------------------------------------------------------------------------------------

_SEGMENT = re.compile(r'\.(?:\[\]|\["((?:[^"\\]|\\.)*)"\]|([A-Za-z0-9_\-]+))|\["((?:[^"\\]|\\.)*)"\]')
_EACH = object()


def parse_path(path: str) -> tuple[Any, ...]:
    """`.metadata.annotations["a/b"]` → ("metadata", "annotations", "a/b"); `.[]` becomes a fan-out step."""
    if not path.startswith("."):
        raise ValueError(f"field path {path!r} must start with '.'")
    steps: list[Any] = []
    at = 0
    while at < len(path):
        found = _SEGMENT.match(path, at)
        if found is None:
            raise ValueError(f"field path {path!r}: cannot parse at {path[at:]!r}")
        quoted, plain, bare_quoted = found.groups()
        text = found.group(0)
        if text == ".[]":
            steps.append(_EACH)
        else:
            name = plain if plain is not None else (quoted if quoted is not None else bare_quoted)
            steps.append(re.sub(r"\\(.)", r"\1", name))
        at = found.end()
    if not steps:
        raise ValueError(f"field path {path!r} names no field")
    return tuple(steps)


def path_values(obj: Any, steps: Sequence[Any]) -> list[Any]:
    """Every value the path reaches; missing fields and nulls reach nothing."""
    current = [obj]
    for step in steps:
        following: list[Any] = []
        for value in current:
            if step is _EACH:
                if isinstance(value, list):
                    following.extend(v for v in value if v is not None)
            elif isinstance(value, Mapping) and value.get(step) is not None:
                following.append(value[step])
        current = following
    return current


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- selectors -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    key: str
    operator: str
    values: tuple[str, ...] = ()
    steps: tuple[Any, ...] | None = None  # parsed field path, or None for a label key

    @classmethod
    def of(cls, raw: Any) -> Expression:
        if not isinstance(raw, Mapping):
            raise ValueError("matchExpressions: each entry must be an object")
        key = raw.get("key")
        operator = raw.get("operator")
        values = raw.get("values") or []
        if not isinstance(key, str) or not key:
            raise ValueError("matchExpressions: key is required")
        if operator not in OPERATORS:
            raise ValueError(f"matchExpressions {key}: operator {operator!r} is not one of {', '.join(OPERATORS)}")
        if not isinstance(values, list):
            raise ValueError(f"matchExpressions {key}: values must be a list")
        if operator in ("In", "NotIn") and not values:
            raise ValueError(f"matchExpressions {key}: operator {operator} needs values")
        if operator in ("Exists", "DoesNotExist") and values:
            raise ValueError(f"matchExpressions {key}: operator {operator} takes no values")
        steps = parse_path(key) if key.startswith(".") else None
        return cls(key, operator, tuple(_text(v) for v in values), steps)

    def matches(self, obj: Obj) -> bool:
        if self.steps is not None:
            found = [_text(v) for v in path_values(obj, self.steps)]
        else:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            found = [labels[self.key]] if self.key in labels else []
        if self.operator == "Exists":
            return bool(found)
        if self.operator == "DoesNotExist":
            return not found
        hit = any(value in self.values for value in found)
        return hit if self.operator == "In" else not hit


def _string_map(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a map of strings")
    return {str(k): _text(v) for k, v in raw.items()}


@dataclass(frozen=True)
class Selector:
    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_annotations: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[Expression, ...] = ()

    @classmethod
    def of(cls, raw: Any) -> Selector:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ValueError("selector must be an object")
        expressions = raw.get("matchExpressions") or []
        if not isinstance(expressions, list):
            raise ValueError("selector.matchExpressions must be a list")
        return cls(
            _string_map(raw.get("matchLabels"), "selector.matchLabels"),
            _string_map(raw.get("matchAnnotations"), "selector.matchAnnotations"),
            tuple(Expression.of(e) for e in expressions),
        )

    def matches(self, obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        return (
            all(labels.get(k) == v for k, v in self.match_labels.items())
            and all(annotations.get(k) == v for k, v in self.match_annotations.items())
            and all(e.matches(obj) for e in self.match_expressions)
        )


# --- delays ----------------------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration ("1m30s", "250ms") or a bare number of seconds; ValueError otherwise."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if seconds < 0 or seconds != seconds:
            raise ValueError(f"invalid duration {text!r}")
        return seconds
    at, total = 0, 0.0
    while at < len(text):
        part = _DURATION_PART.match(text, at)
        if part is None:
            raise ValueError(f"invalid duration {text!r}")
        total += float(part.group(1)) * _UNIT_SECONDS[part.group(2)]
        at = part.end()
    if not text:
        raise ValueError("empty duration")
    return total


def _parse_time(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


@dataclass(frozen=True)
class Delay:
    duration_ms: int = 0
    jitter_duration_ms: int | None = None
    duration_from: tuple[Any, ...] | None = None

    @classmethod
    def of(cls, raw: Any) -> Delay:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ValueError("delay must be an object")
        duration = raw.get("durationMilliseconds", 0)
        jitter = raw.get("jitterDurationMilliseconds")
        source = raw.get("durationFrom")
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 0:
            raise ValueError("delay.durationMilliseconds must be a non-negative integer")
        if jitter is not None and (isinstance(jitter, bool) or not isinstance(jitter, int) or jitter < duration):
            raise ValueError("delay.jitterDurationMilliseconds must be an integer no less than durationMilliseconds")
        if isinstance(source, Mapping):  # kwok's shape: {expressionFrom: <path>}
            source = source.get("expressionFrom")
        if source is not None and not isinstance(source, str):
            raise ValueError("delay.durationFrom must be a field path")
        return cls(duration, jitter, parse_path(source) if source else None)

    def seconds(self, obj: Obj, now: datetime, random: Callable[[], float]) -> float:
        """How long to wait before acting. A readable `durationFrom` value wins (a duration, or a time to
        wait until); otherwise the fixed duration, stretched by jitter (`random` in [0, 1))."""
        if self.duration_from is not None:
            for value in path_values(obj, self.duration_from):
                text = _text(value)
                when = _parse_time(text)
                if when is not None:
                    return max(0.0, (when - now) / timedelta(seconds=1))
                try:
                    return parse_duration(text)
                except ValueError:
                    continue
        if self.jitter_duration_ms is None:
            return self.duration_ms / 1000
        return (self.duration_ms + random() * (self.jitter_duration_ms - self.duration_ms)) / 1000


# --- what happens next -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FinalizerChange:
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    empty: bool = False

    def apply(self, finalizers: Iterable[str]) -> list[str]:
        kept = [] if self.empty else [f for f in finalizers if f not in self.remove]
        return kept + [f for f in self.add if f not in kept]


@dataclass(frozen=True)
class EventSpec:
    type: str
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Next:
    status_template: str | None = None
    status: Mapping[str, Any] | None = None
    finalizers: FinalizerChange | None = None
    delete: bool = False
    event: EventSpec | None = None

    @classmethod
    def of(cls, raw: Any, templates: Iterable[str]) -> Next:
        if not isinstance(raw, Mapping):
            raise ValueError("next must be an object")
        template = raw.get("statusTemplate")
        if template is not None and template not in templates:
            raise ValueError(f"next.statusTemplate {template!r} is not one of {', '.join(sorted(templates))}")
        status = raw.get("status")
        if status is not None and not isinstance(status, Mapping):
            raise ValueError("next.status must be an object")
        delete = raw.get("delete", False)
        if not isinstance(delete, bool):
            raise ValueError("next.delete must be true or false")
        return cls(template, status, _finalizers(raw.get("finalizers")), delete, _event(raw.get("event")))

    @property
    def patches_status(self) -> bool:
        return self.status_template is not None or bool(self.status)


def _names(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) and v for v in raw):
        raise ValueError(f"{where} must be a list of names")
    return tuple(raw)


def _finalizers(raw: Any) -> FinalizerChange | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError("next.finalizers must be an object")
    empty = raw.get("empty", False)
    if not isinstance(empty, bool):
        raise ValueError("next.finalizers.empty must be true or false")
    return FinalizerChange(
        _names(raw.get("add"), "next.finalizers.add"), _names(raw.get("remove"), "next.finalizers.remove"), empty
    )


def _event(raw: Any) -> EventSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError("next.event must be an object")
    kind, reason = raw.get("type", "Normal"), raw.get("reason")
    if kind not in ("Normal", "Warning"):
        raise ValueError("next.event.type must be Normal or Warning")
    if not isinstance(reason, str) or not reason:
        raise ValueError("next.event.reason is required")
    return EventSpec(kind, reason, str(raw.get("message") or ""))


@dataclass(frozen=True)
class Stage:
    name: str
    selector: Selector
    next: Next
    delay: Delay = field(default_factory=Delay)

    @classmethod
    def of(cls, raw: Any, templates: Iterable[str]) -> Stage:
        """Read a kwok-shaped Stage object; raises ValueError naming the stage and the bad field."""
        if not isinstance(raw, Mapping):
            raise ValueError("a stage must be an object")
        name = (raw.get("metadata") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("stage metadata.name is required")
        spec = raw.get("spec")
        if not isinstance(spec, Mapping):
            raise ValueError(f"stage {name}: spec is required")
        try:
            return cls(
                name,
                Selector.of(spec.get("selector")),
                Next.of(spec.get("next"), templates),
                Delay.of(spec.get("delay")),
            )
        except ValueError as exc:
            raise ValueError(f"stage {name}: {exc}") from None


def match_stage(obj: Obj, stages: Sequence[Stage]) -> Stage | None:
    """The first stage whose selector matches `obj`."""
    for stage in stages:
        if stage.selector.matches(obj):
            return stage
    return None


# --- the stages kplane runs by default --------------------------------------------------------------------

_ALIVE = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}
_STARTED = ("Running", "Succeeded", "Failed")
_RUNNING = {"key": ".status.phase", "operator": "In", "values": ["Running"]}


def _annotation(name: str) -> str:
    return f'.metadata.annotations["{name}"]'


def _stage(
    name: str, expressions: list[dict[str, Any]], next_: dict[str, Any], delay_from: str | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchExpressions": expressions}, "next": next_}
    if delay_from is not None:
        spec["delay"] = {"durationFrom": _annotation(delay_from)}
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": name}, "spec": spec}


def default_stage_objects() -> list[dict[str, Any]]:
    """kwok's "fast" pod stages (kustomize/stage/pod/fast), plus failure and restart stages that only
    pods annotated for them enter. Order matters: the first match wins."""
    return [
        _stage("pod-delete", [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}], {"delete": True}),
        _stage(
            "pod-fail",
            [_ALIVE, _RUNNING, {"key": _annotation(ANNOTATION_FAIL_AFTER), "operator": "Exists"}],
            {"statusTemplate": "failed"},
            ANNOTATION_FAIL_AFTER,
        ),
        _stage(
            "pod-complete",
            [_ALIVE, _RUNNING, {"key": ".metadata.ownerReferences.[].kind", "operator": "In", "values": ["Job"]}],
            {"statusTemplate": "succeeded"},
            ANNOTATION_COMPLETE_AFTER,
        ),
        _stage(
            "pod-complete-after",
            [_ALIVE, _RUNNING, {"key": _annotation(ANNOTATION_COMPLETE_AFTER), "operator": "Exists"}],
            {"statusTemplate": "succeeded"},
            ANNOTATION_COMPLETE_AFTER,
        ),
        _stage(
            "pod-restart",
            [_ALIVE, _RUNNING, {"key": _annotation(ANNOTATION_RESTART_AFTER), "operator": "Exists"}],
            {
                "statusTemplate": "restarted",
                "event": {"type": "Warning", "reason": "BackOff", "message": "Back-off restarting failed container"},
            },
            ANNOTATION_RESTART_AFTER,
        ),
        _stage(
            "pod-ready",
            [
                _ALIVE,
                {"key": ".status.podIP", "operator": "DoesNotExist"},
                {"key": ".status.phase", "operator": "NotIn", "values": list(_STARTED)},
            ],
            {"statusTemplate": "ready"},
        ),
    ]


def load_stages(objects: Iterable[Any], templates: Iterable[str]) -> list[Stage]:
    """Stages from kwok-shaped objects; names must be unique."""
    names = list(templates)
    stages = [Stage.of(raw, names) for raw in objects]
    seen: set[str] = set()
    for stage in stages:
        if stage.name in seen:
            raise ValueError(f"stage {stage.name}: defined twice")
        seen.add(stage.name)
    return stages
