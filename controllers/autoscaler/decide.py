"""One autoscaling decision: sources -> strategy -> stabilisation -> scale to/from zero -> bounds.

`decide(spec, inputs, state, now)` is pure: the same spec, inputs, state and `now` give the same
Decision and the same new state. The controller and `brix autoscale-sim` both call it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from controllers.autoscaler import deciders
from controllers.autoscaler.metrics import Observation
from controllers.autoscaler.model import DAYS, AutoscalerSpec, DeciderState, ScalingRules


@dataclass(frozen=True)
class Inputs:
    current: int                              # the target's spec.replicas (from /scale)
    ready: int                                # its Ready pods
    observations: Mapping[str, Observation] = field(default_factory=dict)   # by MetricSource.key
    held: float = 0.0                         # requests the gateway holds for the model (scale from zero)
    wall: dt.datetime | None = None           # wall-clock time for schedules (aware); None = no schedules


@dataclass(frozen=True)
class Decision:
    due: bool                 # False: inside the sync period, nothing decided (desired == current)
    desired: int
    recommendation: int | None   # the strategy's raw answer before stabilisation and bounds
    reason: str
    metrics_ok: bool = True   # ScalingActive
    limited: str = ""         # ScalingLimited reason ("" = not limited)
    panic: bool = False
    min_replicas: int = 0
    max_replicas: int = 0
    schedule: str = ""


def bounds(spec: AutoscalerSpec, wall: dt.datetime | None) -> tuple[int, int, str]:
    """minReplicas / maxReplicas after the first schedule active at `wall` (in its own time zone)."""
    lo, hi = spec.min_replicas, spec.max_replicas
    if wall is None:
        return lo, hi, ""
    for s in spec.schedules:
        local = wall.astimezone(ZoneInfo(s.timezone))
        minute = local.hour * 60 + local.minute
        if (not s.days or DAYS[local.weekday()] in s.days) and s.start_min <= minute < s.end_min:
            lo = s.min_replicas if s.min_replicas is not None else lo
            hi = s.max_replicas if s.max_replicas is not None else hi
            return min(lo, hi), hi, s.name
    return lo, hi, ""


def _recommend(spec: AutoscalerSpec, inp: Inputs, state: DeciderState, now: float) -> tuple[int | None, str, bool]:
    """The strategy's recommendation over every source (the largest wins), why, and panic."""
    recs: list[int] = []
    why: list[str] = []
    kpa_stable: list[float] = []
    kpa_panic: list[float] = []
    ready = inp.ready
    for src in spec.sources:
        ob = inp.observations.get(src.key)
        if ob is None:
            continue
        if src.type == "optimizer":
            if ob.stable is not None:
                recs.append(math.ceil(ob.stable))
                why.append(f"optimizer {src.gpu_type or src.metric}={ob.stable:g}")
            continue
        if ob.per_pod and ready == 0:
            continue   # no Ready pod to measure: no data (at zero the held demand decides)
        target = src.target_value
        if spec.strategy == "HPA":
            if ob.per_pod:
                rec = deciders.hpa_pods(ob.latest, max(0, inp.current - ready), target, spec.up_tolerance, inp.current)
                value = ob.panic
            else:
                rec = deciders.hpa_external(ob.panic, target, spec.up_tolerance, inp.current)
                value = ob.panic
            if rec is not None:
                recs.append(rec)
                why.append(f"{src.metric}={value if value is not None else float('nan'):.3g}/{target:g}")
        elif spec.strategy == "KPA":
            if ob.stable is None:
                continue
            kpa_stable.append(ob.stable / target)
            kpa_panic.append((ob.panic if ob.panic is not None else ob.stable) / target)
            why.append(f"{src.metric} total stable={ob.stable:.3g} panic={ob.panic if ob.panic is not None else 0:.3g}"
                       f" target/pod={target:g}")
        else:
            if ob.stable is None:
                continue
            ratio = ob.stable / (target * max(1, ready))
            rec = deciders.apa(ratio, ready, inp.current, spec.up_tolerance, spec.down_tolerance,
                               spec.max_scale_up_rate, spec.max_scale_down_rate)
            if rec is not None:
                recs.append(rec)
                why.append(f"{src.metric} ratio={ratio:.3g}")
    panic = False
    if kpa_stable:
        rec = deciders.kpa(state, max(kpa_stable), max(kpa_panic), 1.0, ready, inp.current, spec.max_scale_up_rate,
                           spec.max_scale_down_rate, spec.panic_threshold, spec.stable_window_s, now,
                           spec.up_tolerance, spec.down_tolerance)
        if rec is not None:
            recs.append(rec)
        panic = state.panic_since is not None
    return (max(recs) if recs else None), ", ".join(why), panic


def decide(spec: AutoscalerSpec, inp: Inputs, state: DeciderState, now: float) -> tuple[Decision, DeciderState]:
    """The replica count to set now (or not due yet), and the state to keep for the next call."""
    lo, hi, sched = bounds(spec, inp.wall)
    if state.last_decision_t is not None and now - state.last_decision_t < spec.sync_period_s - 1e-6:
        return Decision(False, inp.current, None, "not due", min_replicas=lo, max_replicas=hi, schedule=sched), state
    rec, why, panic = _recommend(spec, inp, state, now)
    current = inp.current
    metrics_ok = rec is not None
    if current == 0 and inp.held > 0:
        first = next((s for s in spec.sources if s.type == "pod"), None)
        from_zero = max(1, math.ceil(inp.held / first.target_value)) if first else 1
        rec = max(rec or 0, from_zero)
        why = f"{inp.held:g} requests held by the gateway" + (f", {why}" if why else "")
        metrics_ok = True
    limited = ""
    if rec is None:
        desired = current
        reason = "no metrics: keeping the current replica count"
    else:
        if spec.strategy == "HPA":
            up, down = spec.scale_up, spec.scale_down
        elif spec.strategy == "KPA":
            up, down = ScalingRules(0, ()), ScalingRules(int(spec.scale_down_delay_s), ())
        else:
            up, down = ScalingRules(spec.scale_up.stabilization_s, ()), ScalingRules(spec.scale_down.stabilization_s, ())
        desired = deciders.stabilize(state, rec, current, up, down, now) if current > 0 else rec
        if spec.strategy == "HPA" and current > 0:
            desired, limited = deciders.rate_limit(state, desired, current, spec.scale_up, spec.scale_down, now)
        reason = f"{spec.strategy}{' panic' if panic else ''}: {why} -> {rec}"
        if desired != rec:
            reason += f", stabilised to {desired}" if not limited else f", {limited} {desired}"
    # scale to zero only after the grace period with nothing to do
    if desired == 0 and current > 0:
        if state.zero_since is None:
            state.zero_since = now
        if now - state.zero_since < spec.scale_to_zero_grace_s:
            desired = 1
            reason += f"; scale to zero after {spec.scale_to_zero_grace_s:g}s grace"
    elif desired > 0:
        state.zero_since = None
    if desired < lo:
        desired, limited = lo, "TooFewReplicas"
        reason += f"; raised to minReplicas {lo}"
    elif desired > hi:
        desired, limited = hi, "TooManyReplicas"
        reason += f"; capped at maxReplicas {hi}"
    deciders.record_event(state, current, desired, now)
    state.last_decision_t = now
    return Decision(True, desired, rec, reason, metrics_ok, limited, panic, lo, hi, sched), state
