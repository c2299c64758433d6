"""The three scaling algorithms, written from their definitions (pure, deterministic).

Each takes plain numbers (and, for KPA, the explicit DeciderState) and returns a replica
recommendation before bounds, schedules and scale-to-zero (scaler.py). `None` means no data:
the caller keeps the current count.

* HPA — Kubernetes' replica calculator: ratio = mean / target; inside the tolerance nothing
  changes; pods whose metrics are missing count as the target on a scale-down and as 0 on a
  scale-up, unready pods as 0 on a scale-up, and a fill that flips the direction cancels it.
  Then autoscaling/v2 behavior: stabilisation windows and Pods/Percent policies per period.
* KPA — Knative's decider: total = per-pod mean x Ready pods (AIBrix divides the per-pod mean
  by the target and forgets the pod count); stable and panic pod counts ceil(total / target)
  bounded by max-scale-up/down rates; panic when panic pods / Ready >= threshold, left only a
  stable window after the last over-threshold tick; panic never scales down.
* APA — AIBrix / HCPA: ratio = per-pod mean / target; above 1 + up tolerance scale to
  ceil(pods x ratio) capped at ceil(up rate x pods), below 1 - down tolerance to ceil(pods x
  ratio) floored at floor(pods / down rate), else hold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from controllers.autoscaler.model import DeciderState, ScaleEvent, ScalingRules


# ---- HPA --------------------------------------------------------------------------------------
def hpa_pods(latest: Mapping[str, float | None], unready: int, target: float, tolerance: float,
             current: int) -> int | None:
    """Kubernetes' GetMetricReplicas for a Pods metric (AverageValue target)."""
    values = [v for v in latest.values() if v is not None]
    if not values:
        return None
    missing = len(latest) - len(values)
    ratio = sum(values) / len(values) / target
    with_unready = unready > 0 and ratio > 1.0
    if not missing and not with_unready:
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(ratio * len(values))
    if missing:
        if ratio < 1.0:
            values += [target] * missing
        elif ratio > 1.0:
            values += [0.0] * missing
    if with_unready:
        values += [0.0] * unready
    new_ratio = sum(values) / len(values) / target
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current
    return math.ceil(new_ratio * len(values))


def hpa_external(total: float | None, target: float, tolerance: float, current: int) -> int | None:
    """Kubernetes' External metric with an AverageValue target: ceil(total / target)."""
    if total is None:
        return None
    if current > 0 and abs(1.0 - total / (target * current)) <= tolerance:
        return current
    return math.ceil(total / target)


def stabilize(state: DeciderState, rec: int, current: int, rules_up: ScalingRules, rules_down: ScalingRules,
              now: float) -> int:
    """autoscaling/v2 stabilisation: a scale-up takes the lowest recommendation of the up window, a
    scale-down the highest of the down window. Records rec in the state's history."""
    up_cut, down_cut = now - rules_up.stabilization_s, now - rules_down.stabilization_s
    up_rec = down_rec = rec
    for t, r in state.recommendations:
        if t > up_cut:
            up_rec = min(up_rec, r)
        if t > down_cut:
            down_rec = max(down_rec, r)
    keep = max(rules_up.stabilization_s, rules_down.stabilization_s)
    state.recommendations = [(t, r) for t, r in state.recommendations if t > now - keep] + [(now, rec)]
    out = current
    if out < up_rec:
        out = up_rec
    if out > down_rec:
        out = down_rec
    return out


def _changes(events: Sequence[ScaleEvent], now: float, period: int) -> tuple[int, int]:
    added = sum(e.change for e in events if e.t > now - period and e.change > 0)
    removed = -sum(e.change for e in events if e.t > now - period and e.change < 0)
    return added, removed


def rate_limit(state: DeciderState, desired: int, current: int, up: ScalingRules, down: ScalingRules,
               now: float) -> tuple[int, str]:
    """The scaleUp / scaleDown policies: how far `current` may move within each policy's period."""
    if desired > current and up.policies:
        if up.select == "Disabled":
            return current, "ScaleUpDisabled"
        limits = []
        for p in up.policies:
            added, removed = _changes(state.events, now, p.period_s)
            start = current - added + removed
            limits.append(start + p.value if p.type == "Pods" else math.ceil(start * (1 + p.value / 100)))
        limit = max(limits) if up.select == "Max" else min(limits)
        if desired > limit:
            return max(limit, current), "ScaleUpLimit"
    elif desired < current and down.policies:
        if down.select == "Disabled":
            return current, "ScaleDownDisabled"
        limits = []
        for p in down.policies:
            added, removed = _changes(state.events, now, p.period_s)
            start = current + removed - added
            limits.append(start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100)))
        limit = min(limits) if down.select == "Max" else max(limits)
        if desired < limit:
            return min(limit, current), "ScaleDownLimit"
    return desired, ""


def record_event(state: DeciderState, current: int, desired: int, now: float, keep_s: float = 1800) -> None:
    state.events = [e for e in state.events if e.t > now - keep_s]
    if desired != current:
        state.events.append(ScaleEvent(now, desired - current))


# ---- KPA --------------------------------------------------------------------------------------
def kpa(state: DeciderState, stable_total: float | None, panic_total: float | None, target: float, ready: int,
        current: int, up_rate: float, down_rate: float, panic_threshold: float, stable_window_s: float,
        now: float, up_tolerance: float = 0.0, down_tolerance: float = 0.0) -> int | None:
    """Knative's Scale(): desired pods from the stable and panic totals; updates panic state.

    With tolerances (AIBrix's KPA; Knative has none), a total within [1 - down, 1 + up] of what the
    current pods are sized for keeps the current count instead of a one-pod step either way."""
    if stable_total is None:
        return None
    if panic_total is None:
        panic_total = stable_total
    pods = max(1.0, float(ready))
    max_up = math.ceil(up_rate * pods)
    max_down = math.floor(pods / down_rate)

    def pod_count(total: float) -> int:
        if ready > 0 and 1 - down_tolerance <= total / (target * ready) <= 1 + up_tolerance:
            return current
        return math.ceil(total / target)
    dspc = pod_count(stable_total)
    dppc = math.ceil(panic_total / target)
    desired_stable = int(min(max(dspc, max_down), max_up))
    desired_panic = int(min(max(dppc, max_down), max_up))
    over = dppc / pods >= panic_threshold
    if state.last_decision_t is None and ready > 1:
        # Knative starts a new decider in panic when pods already run: its metric history is
        # gone (a restart), and panic only forbids scaling down until a stable window has passed.
        state.panic_since, state.max_panic_pods = now, ready
    if over:
        state.panic_since = now
    elif state.panic_since is not None and now >= state.panic_since + stable_window_s:
        state.panic_since, state.max_panic_pods = None, 0
    if state.panic_since is not None:
        desired_panic = max(desired_panic, desired_stable)
        state.max_panic_pods = max(state.max_panic_pods, desired_panic)
        return state.max_panic_pods
    return desired_stable


# ---- APA --------------------------------------------------------------------------------------
def apa(ratio: float | None, ready: int, current: int, up_tolerance: float, down_tolerance: float,
        up_rate: float, down_rate: float) -> int | None:
    """AIBrix's APA on the Ready pods: a step only outside [1 - down, 1 + up], bounded by the rates.

    Starting pods (current > ready) are not yet measured: a scale-up is never smaller than the
    current count and a scale-down never larger, so pods that are still starting are not removed
    and re-added."""
    if ratio is None:
        return None
    pods = max(1, ready)
    if ratio > 1.0 + up_tolerance:
        return max(current, min(math.ceil(pods * ratio), math.ceil(up_rate * pods)))
    if ratio < 1.0 - down_tolerance:
        return min(current, max(math.ceil(pods * ratio), math.floor(pods / down_rate)))
    return current
