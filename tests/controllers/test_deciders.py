"""The deciders through decide(), on a scripted clock from a fixed epoch (t0, t0+2s, t0+5m, ...)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from controllers.autoscaler.decide import Decision, Inputs, decide
from controllers.autoscaler.metrics import Observation, Window, observe
from controllers.autoscaler.model import DeciderState, SpecError, parse_spec

T0 = 1_000_000.0
SRC = "pod:vllm:num_requests_waiting:8000"


def spec(strategy: str, **extra: Any):  # type: ignore[no-untyped-def]
    doc: dict[str, Any] = {"scaleTargetRef": {"kind": "Deployment", "name": "llama"}, "scalingStrategy": strategy,
                           "minReplicas": 1, "maxReplicas": 50,
                           "metricsSources": [{"type": "pod", "metric": "vllm:num_requests_waiting",
                                               "targetValue": 10}]}
    doc.update(extra)
    return parse_spec(doc)


class Script:
    """One autoscaler fed per-pod values each second; `at(t, ...)` runs the decision at T0 + t."""

    def __init__(self, sp: Any, replicas: int) -> None:
        self.spec, self.replicas, self.state, self.window = sp, replicas, DeciderState(), Window()
        self.t = -1

    def feed(self, until: int, per_pod: float | None, ready: int | None = None, held: float = 0.0) -> Decision:
        """Seconds (self.t, until]: every Ready pod reports per_pod (None = every scrape failed)."""
        d = None
        while self.t < until:
            self.t += 1
            now = T0 + self.t
            n = self.replicas if ready is None else ready
            self.window.forget_pods({f"p{i}" for i in range(n)})
            self.window.record_pods(now, {f"p{i}": per_pod for i in range(n)}, n)
            ob = observe(self.window, now, self.spec.stable_window_s, self.spec.panic_window_s, True,
                         self.spec.sync_period_s)
            d, self.state = decide(self.spec, Inputs(self.replicas, n, {SRC: ob}, held), self.state, now)
            if d.due:
                self.replicas = d.desired
        assert d is not None
        return d


# ---- HPA ---------------------------------------------------------------------------------------
def test_hpa_formula_and_tolerance() -> None:
    s = Script(spec("HPA"), 4)
    assert s.feed(0, 10.5).desired == 4                  # ratio 1.05: inside the 0.1 tolerance
    s = Script(spec("HPA"), 4)
    d = s.feed(0, 15.0)
    assert d.desired == 6 and d.recommendation == 6     # ceil(4 x 15 / 10)


def test_hpa_scale_up_policy_is_max_of_100_percent_and_4_pods_per_15s() -> None:
    s = Script(spec("HPA"), 2)
    d = s.feed(0, 100.0)                                 # wants 20
    assert d.desired == 6 and d.limited == "ScaleUpLimit"   # max(2 x 2, 2 + 4)
    assert s.feed(14, 100.0).desired == 6                # nothing new before the next 15 s sync
    assert s.feed(15, 100.0 * 2 / 6).desired == 12       # still 20 wanted: 6 -> 12 (100 %)


def test_hpa_scale_down_waits_for_the_300s_stabilisation_window() -> None:
    s = Script(spec("HPA"), 10)
    s.feed(0, 10.0)
    assert s.feed(150, 2.0).desired == 10                # the window still holds the recommendation 10
    assert s.feed(301, 2.0).desired == 2                 # 300 s later the highest recent one is 2


def test_hpa_missing_pods_count_as_target_on_a_scale_down() -> None:
    sp = spec("HPA")
    latest: dict[str, float | None] = {"a": 5.0, "b": 5.0, "c": None, "d": None}
    ob = Observation(5.0, 5.0, True, latest)
    d, _ = decide(sp, Inputs(4, 4, {SRC: ob}), DeciderState(), T0)
    # ratio 0.5 on 2 pods; missing pods filled with the target -> (5+5+10+10)/4/10 = 0.75 -> 3
    assert d.desired == 3


def test_hpa_unready_pods_count_as_zero_on_a_scale_up() -> None:
    sp = spec("HPA")
    ob = Observation(20.0, 20.0, True, {"a": 20.0, "b": 20.0})
    d, _ = decide(sp, Inputs(4, 2, {SRC: ob}), DeciderState(), T0)   # 2 Ready of 4
    # ratio 2.0 on 2 Ready pods, the 2 starting ones at 0 -> 40/4/10 = 1.0 -> inside tolerance: hold
    assert d.desired == 4


# ---- KPA ---------------------------------------------------------------------------------------
def test_kpa_counts_every_ready_pod() -> None:
    # 4 pods at 30 each against a target of 10 need 12 pods; AIBrix's ceil(30 / 10) would say 3
    s = Script(spec("KPA"), 4)
    assert s.feed(0, 30.0).desired == 12


def test_kpa_panics_on_a_burst_and_never_scales_down_in_panic() -> None:
    s = Script(spec("KPA", windows={"stableSeconds": 60, "panicSeconds": 6}), 2)
    s.feed(59, 10.0)                                     # a steady minute at target (in panic from start: 2 pods)
    assert s.feed(130, 10.0).panic is False              # the start-up panic ends a stable window later
    d = s.feed(136, 60.0)                                # a burst: 6x the target per pod
    assert d.panic is True and d.desired >= 8
    peak = d.desired
    d = s.feed(150, 1.0)                                 # the burst ends: panic holds the count
    assert d.panic is True and d.desired == peak
    d = s.feed(136 + 61, 1.0)                            # a stable window after the last burst second
    assert d.panic is False and d.desired < peak


def test_kpa_holds_the_count_while_every_scrape_fails() -> None:
    s = Script(spec("KPA"), 3)
    s.feed(10, 10.0)
    d = s.feed(200, None)                                # scrapes fail: the window empties, no data
    assert d.desired == 3 and d.metrics_ok is False


def test_kpa_scales_to_zero_after_the_grace_period_and_back_from_held_requests() -> None:
    s = Script(spec("KPA", minReplicas=0, scaleToZeroGracePeriodSeconds=30), 1)
    s.feed(10, 5.0)
    assert s.feed(80, 0.0).desired == 1                  # idle, but a stable window of load remains
    d = s.feed(140, 0.0)
    assert d.desired == 0 and s.replicas == 0            # idle for longer than the grace period
    d = s.feed(150, None, ready=0)                       # no pods, nothing held: stays at zero
    assert d.desired == 0
    d = s.feed(152, None, ready=0, held=25.0)            # the gateway holds 25 requests
    assert d.desired == 3                                # ceil(25 / 10)


# ---- APA ---------------------------------------------------------------------------------------
def test_apa_tolerance_and_rates() -> None:
    s = Script(spec("APA"), 4)
    assert s.feed(0, 10.9).desired == 4                  # within +10 %
    s = Script(spec("APA"), 4)
    d = s.feed(0, 50.0)
    assert d.desired == 8                                # wants 20, capped at 2 x 4
    s = Script(spec("APA", behavior={"scaleDown": {"stabilizationWindowSeconds": 0}}), 8)
    d = s.feed(0, 1.0)
    assert d.desired == 4                                # wants 1, floored at 8 / 2


def test_apa_scale_down_cooldown_is_300s_by_default() -> None:
    s = Script(spec("APA"), 8)
    s.feed(0, 10.0)
    assert s.feed(200, 4.0).desired == 8
    assert s.feed(320, 4.0).desired < 8


# ---- bounds, schedules, determinism ------------------------------------------------------------
def test_a_schedule_overrides_the_bounds_in_its_time_zone() -> None:
    sp = spec("KPA", schedules=[{"name": "office", "timezone": "Europe/Berlin", "daysOfWeek": ["Mon"],
                                 "startTime": "09:00", "endTime": "17:00", "minReplicas": 6}])
    ob = Observation(10.0, 10.0, True, {})
    monday_10_berlin = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)        # 10:00 CET
    d, _ = decide(sp, Inputs(1, 1, {SRC: ob}, wall=monday_10_berlin), DeciderState(), T0)
    assert (d.desired, d.schedule, d.limited) == (6, "office", "TooFewReplicas")
    monday_18_berlin = dt.datetime(2026, 3, 2, 17, 0, tzinfo=dt.UTC)
    d, _ = decide(sp, Inputs(1, 1, {SRC: ob}, wall=monday_18_berlin), DeciderState(), T0)
    assert (d.desired, d.schedule) == (1, "")


def test_max_replicas_caps_the_decision() -> None:
    s = Script(spec("KPA", maxReplicas=5), 4)
    d = s.feed(0, 100.0)
    assert (d.desired, d.limited) == (5, "TooManyReplicas")


@pytest.mark.parametrize("strategy", ["HPA", "KPA", "APA"])
def test_the_same_inputs_give_the_same_decisions_and_state_survives_a_restart(strategy: str) -> None:
    def run(restart_at: int | None) -> list[int]:
        s = Script(spec(strategy), 3)
        out = []
        for step, load in enumerate([10, 30, 30, 80, 5, 5, 5, 40] * 10):
            if step == restart_at:   # a new operator reads the state back from status
                s.state = DeciderState.from_json(s.state.to_json())
            out.append(s.feed(s.t + 10, float(load)).desired)
        return out
    assert run(None) == run(None) == run(37)


def test_a_bad_spec_names_every_bad_field() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "minReplicas": 5, "maxReplicas": 2,
                    "scalingStrategy": "XPA", "metricsSources": [{"type": "external", "metric": "m", "targetValue": 1}],
                    "schedules": [{"name": "n", "startTime": "25:00", "endTime": "10:00"}]})
    msg = str(info.value)
    for field in ("spec.scalingStrategy", "spec.minReplicas (5) must be <= spec.maxReplicas (2)",
                  "spec.metricsSources[0].url", "spec.schedules[0].startTime"):
        assert field in msg
