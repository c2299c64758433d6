"""PodAutoscaler (autoscaling.brix.dev/v1alpha1) as typed, validated data, and the decider state.

`parse_spec(doc)` turns the CR's spec (a dict, as the API server returns it after its own
schema defaults and validation) into a frozen `AutoscalerSpec`; every problem is collected with
its field path and raised as one `SpecError`, so a CR that slipped past the CRD schema (or a
file given to `brix autoscale-sim`) is refused with the same messages. Strategy-dependent
defaults (sync period, rates, stabilisation) are filled here, from each algorithm's definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

STRATEGIES = ("HPA", "KPA", "APA")
SOURCE_TYPES = ("pod", "external", "optimizer")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class SpecError(ValueError):
    """A PodAutoscaler spec that cannot be used; the message names every bad field."""


@dataclass(frozen=True)
class MetricSource:
    type: str                 # pod | external | optimizer
    metric: str               # e.g. vllm:num_requests_waiting; for optimizer: the GPU type's target
    target_value: float       # per-pod target (pod, external); ignored for optimizer
    port: int = 8000
    path: str = "/metrics"
    url: str = ""             # external: a URL answering a Prometheus text page; optimizer: scheduler-ext base URL
    gpu_type: str = ""        # optimizer: which GPU type's replica target to follow

    @property
    def key(self) -> str:
        return f"{self.type}:{self.metric}:{self.url or self.port}"


@dataclass(frozen=True)
class Policy:
    type: str                 # Pods | Percent
    value: int
    period_s: int


@dataclass(frozen=True)
class ScalingRules:
    """autoscaling/v2 HPAScalingRules: a stabilisation window and rate policies."""

    stabilization_s: int
    policies: tuple[Policy, ...]
    select: str = "Max"       # Max | Min | Disabled


@dataclass(frozen=True)
class Schedule:
    name: str
    days: tuple[str, ...]     # empty = every day
    start_min: int            # minutes after midnight, inclusive
    end_min: int              # exclusive; start < end (no window across midnight)
    timezone: str = "UTC"
    min_replicas: int | None = None
    max_replicas: int | None = None


@dataclass(frozen=True)
class AutoscalerSpec:
    strategy: str
    min_replicas: int
    max_replicas: int
    sources: tuple[MetricSource, ...]
    sync_period_s: float
    stable_window_s: float
    panic_window_s: float
    panic_threshold: float
    up_tolerance: float
    down_tolerance: float
    max_scale_up_rate: float
    max_scale_down_rate: float
    scale_up: ScalingRules
    scale_down: ScalingRules
    scale_to_zero_grace_s: float
    scale_down_delay_s: float
    schedules: tuple[Schedule, ...] = ()
    model_name: str = ""
    target_kind: str = "Deployment"
    target_api_version: str = "apps/v1"
    target_name: str = ""


# Strategy defaults, each from its algorithm's definition (see controllers/autoscaler/README.md).
_DEFAULTS: dict[str, dict[str, Any]] = {
    # Kubernetes HPA: 15 s sync; tolerance 0.1; scale up: no stabilisation, max(100 %, 4 pods) per
    # 15 s; scale down: 300 s stabilisation, 100 % per 15 s.
    "HPA": {"sync": 15.0, "up_rate": 0.0, "down_rate": 0.0,
            "up": ScalingRules(0, (Policy("Percent", 100, 15), Policy("Pods", 4, 15)), "Max"),
            "down": ScalingRules(300, (Policy("Percent", 100, 15),), "Max")},
    # Knative KPA: 2 s tick, max-scale-up-rate 1000, max-scale-down-rate 2; no extra stabilisation.
    "KPA": {"sync": 2.0, "up_rate": 1000.0, "down_rate": 2.0,
            "up": ScalingRules(0, (), "Max"), "down": ScalingRules(0, (), "Max")},
    # AIBrix APA: 10 s resync, rates 2.0 / 2.0, scale-down cooldown 300 s, scale-up cooldown 0.
    "APA": {"sync": 10.0, "up_rate": 2.0, "down_rate": 2.0,
            "up": ScalingRules(0, (), "Max"), "down": ScalingRules(300, (), "Max")},
}


def _num(doc: dict[str, Any], key: str, where: str, problems: list[str], default: Any, *, lo: float | None = None,
         hi: float | None = None, integer: bool = False) -> Any:
    value = doc.get(key, default)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            problems.append(f"{where}.{key}: expected a number, got {value!r}")
            return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(f"{where}.{key}: expected a number, got {value!r}")
        return default
    if integer and value != int(value):
        problems.append(f"{where}.{key}: expected an integer, got {value!r}")
        return default
    if lo is not None and value < lo:
        problems.append(f"{where}.{key}: must be >= {lo:g}, got {value!r}")
    if hi is not None and value > hi:
        problems.append(f"{where}.{key}: must be <= {hi:g}, got {value!r}")
    return int(value) if integer else float(value)


def _rules(doc: Any, where: str, default: ScalingRules, problems: list[str]) -> ScalingRules:
    if not isinstance(doc, dict):
        return default
    window = _num(doc, "stabilizationWindowSeconds", where, problems, default.stabilization_s, lo=0, hi=3600,
                  integer=True)
    select = doc.get("selectPolicy", default.select)
    if select not in ("Max", "Min", "Disabled"):
        problems.append(f"{where}.selectPolicy: must be Max, Min or Disabled, got {select!r}")
    policies = default.policies
    if "policies" in doc:
        out = []
        for i, p in enumerate(doc.get("policies") or []):
            pw = f"{where}.policies[{i}]"
            if not isinstance(p, dict) or p.get("type") not in ("Pods", "Percent"):
                problems.append(f"{pw}.type: must be Pods or Percent")
                continue
            out.append(Policy(p["type"], _num(p, "value", pw, problems, 1, lo=1, integer=True),
                              _num(p, "periodSeconds", pw, problems, 15, lo=1, hi=1800, integer=True)))
        policies = tuple(out)
    return ScalingRules(window, policies, select)


def _schedule(doc: Any, where: str, problems: list[str]) -> Schedule | None:
    if not isinstance(doc, dict):
        problems.append(f"{where}: expected an object")
        return None
    mins = []
    for key in ("startTime", "endTime"):
        m = _HHMM.match(str(doc.get(key, "")))
        if not m:
            problems.append(f"{where}.{key}: expected HH:MM (00:00..23:59), got {doc.get(key)!r}")
            mins.append(0)
        else:
            mins.append(int(m.group(1)) * 60 + int(m.group(2)))
    if mins[0] >= mins[1] and len(problems) == 0:
        problems.append(f"{where}: startTime must be before endTime (a window may not cross midnight)")
    days = tuple(doc.get("daysOfWeek") or ())
    for d in days:
        if d not in DAYS:
            problems.append(f"{where}.daysOfWeek: {d!r} is not one of {', '.join(DAYS)}")
    tz = str(doc.get("timezone") or "UTC")
    try:
        from zoneinfo import ZoneInfo
        ZoneInfo(tz)
    except Exception:  # noqa: BLE001 - any failure means the name is unusable
        problems.append(f"{where}.timezone: unknown IANA time zone {tz!r}")
    lo = _num(doc, "minReplicas", where, problems, None, lo=0, integer=True)
    hi = _num(doc, "maxReplicas", where, problems, None, lo=1, integer=True)
    return Schedule(str(doc.get("name", "")), days, mins[0], mins[1], tz, lo, hi)


def _source(doc: Any, where: str, problems: list[str]) -> MetricSource | None:
    if not isinstance(doc, dict):
        problems.append(f"{where}: expected an object")
        return None
    kind = doc.get("type", "pod")
    if kind not in SOURCE_TYPES:
        problems.append(f"{where}.type: must be one of {', '.join(SOURCE_TYPES)}, got {kind!r}")
        return None
    metric = str(doc.get("metric") or "")
    if not metric and kind != "optimizer":
        problems.append(f"{where}.metric: required (a metric name such as vllm:num_requests_waiting)")
    url = str(doc.get("url") or "")
    if kind in ("external", "optimizer") and not url.startswith(("http://", "https://")):
        problems.append(f"{where}.url: required for type {kind} (an http:// or https:// URL)")
    target = _num(doc, "targetValue", where, problems, 1.0 if kind == "optimizer" else None)
    if kind != "optimizer" and (target is None or target <= 0):
        problems.append(f"{where}.targetValue: required and > 0 for type {kind}")
        target = 1.0
    port = _num(doc, "port", where, problems, 8000, lo=1, hi=65535, integer=True)
    path = str(doc.get("path") or "/metrics")
    if not path.startswith("/"):
        problems.append(f"{where}.path: must start with '/', got {path!r}")
    return MetricSource(kind, metric, float(target or 1.0), port, path, url.rstrip("/") if kind == "optimizer" else url,
                        str(doc.get("gpuType") or ""))


def parse_spec(doc: Any) -> AutoscalerSpec:
    """A validated AutoscalerSpec from a PodAutoscaler's .spec (SpecError names every bad field)."""
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise SpecError("spec: expected an object")
    strategy = str(doc.get("scalingStrategy", "KPA")).upper()
    if strategy not in STRATEGIES:
        problems.append(f"spec.scalingStrategy: must be HPA, KPA or APA, got {doc.get('scalingStrategy')!r}")
        strategy = "KPA"
    d = _DEFAULTS[strategy]
    ref = doc.get("scaleTargetRef") or {}
    if not isinstance(ref, dict) or not ref.get("name") or not ref.get("kind"):
        problems.append("spec.scaleTargetRef: needs kind and name (and apiVersion) of a resource with /scale")
        ref = {}
    lo = _num(doc, "minReplicas", "spec", problems, 1, lo=0, integer=True)
    hi = _num(doc, "maxReplicas", "spec", problems, None, lo=1, integer=True)
    if hi is None:
        problems.append("spec.maxReplicas: required")
        hi = max(1, lo)
    elif lo > hi:
        problems.append(f"spec.minReplicas ({lo}) must be <= spec.maxReplicas ({hi})")
    raw_sources = doc.get("metricsSources") or []
    if not isinstance(raw_sources, list) or not raw_sources:
        problems.append("spec.metricsSources: at least one metric source is required")
        raw_sources = []
    sources = [s for i, r in enumerate(raw_sources) if (s := _source(r, f"spec.metricsSources[{i}]", problems))]
    win = doc.get("windows") or {}
    stable = _num(win, "stableSeconds", "spec.windows", problems, 60, lo=6, hi=3600)
    panic = _num(win, "panicSeconds", "spec.windows", problems, max(1.0, stable / 10), lo=1, hi=3600)
    if panic > stable:
        problems.append(f"spec.windows.panicSeconds ({panic:g}) must be <= spec.windows.stableSeconds ({stable:g})")
    tol = doc.get("tolerances") or {}
    up_tol = _num(tol, "up", "spec.tolerances", problems, 0.1, lo=0, hi=10)
    down_tol = _num(tol, "down", "spec.tolerances", problems, 0.1, lo=0, hi=1)
    rates = doc.get("rates") or {}
    up_rate = _num(rates, "maxScaleUpRate", "spec.rates", problems, d["up_rate"] or None, lo=1)
    down_rate = _num(rates, "maxScaleDownRate", "spec.rates", problems, d["down_rate"] or None, lo=1)
    behavior = doc.get("behavior") or {}
    schedules = [s for i, r in enumerate(doc.get("schedules") or [])
                 if (s := _schedule(r, f"spec.schedules[{i}]", problems))]
    spec = AutoscalerSpec(
        strategy=strategy, min_replicas=lo, max_replicas=hi, sources=tuple(sources),
        sync_period_s=_num(doc, "syncPeriodSeconds", "spec", problems, d["sync"], lo=1, hi=600),
        stable_window_s=stable, panic_window_s=panic,
        panic_threshold=_num(doc, "panicThreshold", "spec", problems, 2.0, lo=1.1, hi=10),
        up_tolerance=up_tol, down_tolerance=down_tol,
        max_scale_up_rate=up_rate or 0.0, max_scale_down_rate=down_rate or 0.0,
        scale_up=_rules(behavior.get("scaleUp"), "spec.behavior.scaleUp", d["up"], problems),
        scale_down=_rules(behavior.get("scaleDown"), "spec.behavior.scaleDown", d["down"], problems),
        scale_to_zero_grace_s=_num(doc, "scaleToZeroGracePeriodSeconds", "spec", problems, 30, lo=0, hi=3600),
        scale_down_delay_s=_num(doc, "scaleDownDelaySeconds", "spec", problems, 0, lo=0, hi=3600),
        schedules=tuple(schedules), model_name=str(doc.get("modelName") or ref.get("name") or ""),
        target_kind=str(ref.get("kind", "Deployment")), target_api_version=str(ref.get("apiVersion", "apps/v1")),
        target_name=str(ref.get("name", "")))
    if problems:
        raise SpecError("; ".join(problems))
    return spec


# ---- decider state: explicit values passed in and returned (persisted in .status.state) -------
@dataclass
class ScaleEvent:
    t: float
    change: int               # +n added, -n removed


@dataclass
class DeciderState:
    """Everything a decision depends on besides the spec and the metrics: saved in status so an
    operator restarted mid-scale resumes where it was."""

    last_decision_t: float | None = None
    panic_since: float | None = None          # KPA: when panic mode was last (re)entered
    max_panic_pods: int = 0                   # KPA: panic never scales down
    zero_since: float | None = None           # when the recommendation first reached 0 (grace period)
    recommendations: list[tuple[float, int]] = field(default_factory=list)   # stabilisation / scale-down delay
    events: list[ScaleEvent] = field(default_factory=list)                   # HPA rate policies

    def to_json(self) -> dict[str, Any]:
        return {"lastDecisionTime": self.last_decision_t, "panicSince": self.panic_since,
                "maxPanicPods": self.max_panic_pods, "zeroSince": self.zero_since,
                "recommendations": [[t, r] for t, r in self.recommendations],
                "events": [[e.t, e.change] for e in self.events]}

    @classmethod
    def from_json(cls, doc: Any) -> DeciderState:
        if not isinstance(doc, dict):
            return cls()
        try:
            return cls(doc.get("lastDecisionTime"), doc.get("panicSince"), int(doc.get("maxPanicPods") or 0),
                       doc.get("zeroSince"), [(float(t), int(r)) for t, r in doc.get("recommendations") or []],
                       [ScaleEvent(float(t), int(c)) for t, c in doc.get("events") or []])
        except (TypeError, ValueError):
            return cls()
