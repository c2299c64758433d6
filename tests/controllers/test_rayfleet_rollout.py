"""The fleet's rollout arithmetic (pure), property-based: for any replicas, maxSurge and maxUnavailable
(absolute or percent) and any order in which the fleet and replica-set controllers see each other's
writes, a rolling update never holds more than replicas + maxSurge clusters, never has fewer
available than replicas - maxUnavailable once the fleet was stable, and always finishes once
clusters become ready. Plus Deployment's fenceposts on known cases, Recreate, proportional
scaling, pause, rollback and revision history on the simulator of tests/controllers/rayfleet_sim.py."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from controllers.rayfleet import fleet as fleetlib
from controllers.rayfleet import progress
from controllers.rayfleet.model import (
    REVISION,
    REVISION_HISTORY,
    ROLLBACK_TO,
    IntOrPercent,
    SpecError,
    parse_fleet_spec,
)
from controllers.rayfleet.rollout import max_unavailable, resolve_fenceposts
from tests.controllers.rayfleet_sim import T0, Sim, template


def spec(replicas: int, surge: Any = "25%", unavailable: Any = "25%", **extra: Any) -> dict[str, Any]:
    return {"replicas": replicas, "selector": {"matchLabels": {"app": "llm"}}, "template": template("v1"),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
            **extra}


def stable(s: dict[str, Any], seed: int = 0, **kw: Any) -> Sim:
    sim = Sim(s, random.Random(seed), **kw)
    sim.settle()
    return sim


# ---- fenceposts ------------------------------------------------------------------------------

@pytest.mark.parametrize("replicas, surge, unavailable, expected", [
    (10, "25%", "25%", (3, 2)),        # Kubernetes' documented example: up 3 (ceil 2.5), down 2 (floor 2.5)
    (50, "25%", 0, (13, 0)),           # the benchmark's: 12.5 rounds up
    (1, "25%", "25%", (1, 0)),
    (3, "10%", "10%", (1, 0)),
    (4, 0, "10%", (0, 1)),             # both round to 0: maxUnavailable becomes 1
    (5, 2, 1, (2, 1)),
    (0, "25%", "25%", (0, 1)),
])
def test_fenceposts_round_as_deployments_do(replicas: int, surge: Any, unavailable: Any,
                                            expected: tuple[int, int]) -> None:
    s = parse_fleet_spec(spec(replicas, surge, unavailable))
    assert resolve_fenceposts(s.max_surge, s.max_unavailable, replicas) == expected


@pytest.mark.parametrize("surge, unavailable, message", [
    (0, 0, "may not both be 0"), ("0%", 0, "may not both be 0"), ("0%", "0%", "may not both be 0"),
    ("25", "150%", "not be more than 100%"), (-1, 1, "maxSurge must be an integer >= 0"),
    ("x%", 1, "maxSurge must be an integer >= 0 or a percentage"),
])
def test_validation_refuses_bad_fenceposts_naming_the_field(surge: Any, unavailable: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_fleet_spec(spec(3, surge, unavailable))


def test_validation_collects_every_problem_with_its_path() -> None:
    bad = spec(-1, selector={"matchLabels": {"app": "other"}}, progressDeadlineSeconds=5, minReadySeconds=10)
    bad["strategy"] = {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}
    del bad["template"]["spec"]["headGroupSpec"]
    with pytest.raises(SpecError) as err:
        parse_fleet_spec(bad, name="9-bad")
    text = str(err.value)
    for fragment in ("metadata.name '9-bad' must be a DNS-1035 label", "spec.replicas must be an integer >= 0",
                     "spec.template.metadata.labels do not match the selector 'app=other'",
                     "spec.template.spec.headGroupSpec is required",
                     "spec.strategy.rollingUpdate may not be given when spec.strategy.type is Recreate",
                     "spec.progressDeadlineSeconds (5) must be greater than spec.minReadySeconds (10)"):
        assert fragment in text, text


def test_defaults_are_deployments() -> None:
    s = parse_fleet_spec({"selector": {"matchLabels": {"app": "llm"}}, "template": template("v1")})
    assert (s.replicas, s.strategy, s.max_surge, s.max_unavailable) == (1, "RollingUpdate", IntOrPercent(25, True),
                                                                         IntOrPercent(25, True))
    assert (s.revision_history_limit, s.progress_deadline_s, s.min_ready_s, s.paused) == (10, 600, 0, False)


# ---- the properties ------------------------------------------------------------------------------

amount = st.one_of(st.integers(0, 12), st.integers(0, 100).map(lambda p: f"{p}%"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(replicas=st.integers(1, 24), surge=amount, unavailable=amount, seed=st.integers(0, 2**32 - 1))
def test_a_rolling_update_stays_in_bounds_and_finishes(replicas: int, surge: Any, unavailable: Any, seed: int) -> None:
    assume(not (str(surge) in ("0", "0%") and str(unavailable) in ("0", "0%")))
    assume(not (isinstance(unavailable, str) and int(unavailable[:-1]) > 100))
    s = spec(replicas, surge, unavailable)
    parsed = parse_fleet_spec(s)
    up, _ = resolve_fenceposts(parsed.max_surge, parsed.max_unavailable, replicas)
    floor = replicas - max_unavailable(parsed)
    sim = stable(s, seed)
    assert sim.ready_clusters() == replicas
    sim.peak = 0

    def check(sim: Sim) -> None:
        assert len(sim.clusters) <= replicas + up, f"{len(sim.clusters)} clusters > {replicas} + {up}: {sim.describe()}"
        assert sim.ready_clusters() >= floor, f"{sim.ready_clusters()} available < {floor}: {sim.describe()}"
    sim.set_template(template("v2"))
    sim.settle(check=check)
    assert sim.peak <= replicas + up
    assert sim.fleet["metadata"]["annotations"][REVISION] == "2"
    assert progress.get_condition(sim.fleet["status"], "Progressing")["reason"] == progress.NEW_RS_AVAILABLE


@settings(max_examples=40, deadline=None)
@given(replicas=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_recreate_removes_every_old_cluster_before_creating_new_ones(replicas: int, seed: int) -> None:
    s = spec(replicas)
    s["strategy"] = {"type": "Recreate"}
    sim = stable(s, seed)
    sim.set_template(template("v2"))

    def check(sim: Sim) -> None:
        kinds = {c.rs for c in sim.clusters.values()}
        assert len(kinds) <= 1, f"old and new clusters at once: {sim.describe()}"
        assert len(sim.clusters) <= replicas
    sim.settle(check=check)


@settings(max_examples=60, deadline=None)
@given(before=st.integers(1, 20), after=st.integers(0, 30), seed=st.integers(0, 2**32 - 1),
       at=st.integers(0, 200))
def test_scaling_in_the_middle_of_a_rollout_still_finishes(before: int, after: int, seed: int, at: int) -> None:
    sim = stable(spec(before, 2, 1), seed)
    sim.set_template(template("v2"))
    for _ in range(at):
        sim.step()
    sim.fleet["spec"]["replicas"] = after
    sim.fleet["metadata"]["generation"] += 1
    sim.settle()
    assert len(sim.clusters) == after


def test_proportional_scaling_shares_new_replicas_by_size() -> None:
    """Deployment's documented example: 10 replicas, maxSurge 3, a rollout stuck at 8 old + 5 new
    (13 = 10 + 3), scaled to 15: 18 allowed, 5 more shared 3 to the old (8/13 of 5, rounded) and 2
    to the new."""
    sim = stable(spec(10, 3, 2), delay=lambda r: 1.0)
    sim.delay = lambda r: 10_000.0        # new clusters never become ready: the rollout is stuck
    sim.set_template(template("v2"))
    for _ in range(30):
        sim.sync_fleet()
        for name in list(sim.rss):
            sim.sync_rs(name)
    sizes = sorted(b["spec"]["replicas"] for b in sim.rss.values())
    assert sizes == [5, 8]
    sim.fleet["spec"]["replicas"] = 15
    sim.sync_fleet()
    sizes = {b["spec"]["template"]["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]:
             b["spec"]["replicas"] for b in sim.rss.values()}
    assert sizes == {"vllm:v1": 11, "vllm:v2": 7}


def test_the_progress_deadline_turns_progressing_false() -> None:
    sim = stable(spec(2, 1, 0, progressDeadlineSeconds=30), delay=lambda r: 1.0)
    sim.delay = lambda r: 10_000.0
    sim.set_template(template("v2"))
    for _ in range(3):
        sim.sync_fleet()
        for name in list(sim.rss):
            sim.sync_rs(name)
    cond = progress.get_condition(sim.fleet["status"], "Progressing")
    assert (cond["status"], cond["reason"]) == ("True", progress.RS_UPDATED)
    sim.now += 20
    assert sim.sync_fleet().requeue_after == pytest.approx(11.0)   # deadline - now + 1 s, as upstream
    sim.now += 11
    sim.sync_fleet()
    cond = progress.get_condition(sim.fleet["status"], "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", progress.TIMED_OUT)
    assert "has timed out progressing" in cond["message"]


def test_paused_fleets_scale_but_do_not_roll_out() -> None:
    sim = stable(spec(3, 1, 0), delay=lambda r: 1.0)
    sim.fleet["spec"]["paused"] = True
    sim.set_template(template("v2"))
    sim.fleet["spec"]["replicas"] = 5
    for _ in range(20):
        sim.step()
        sim.sync_fleet()
    assert len(sim.rss) == 1 and next(iter(sim.rss.values()))["spec"]["replicas"] == 5
    assert progress.get_condition(sim.fleet["status"], "Progressing")["reason"] == progress.PAUSED
    sim.fleet["spec"]["paused"] = False
    sim.settle()
    assert len(sim.clusters) == 5 and progress.get_condition(sim.fleet["status"], "Available")["status"] == "True"


def test_rollback_restores_the_old_template_and_renumbers_it() -> None:
    sim = stable(spec(2, 1, 0), delay=lambda r: 1.0)
    sim.fleet["metadata"]["annotations"]["kubernetes.io/change-cause"] = "v2 please"
    sim.set_template(template("v2"))
    sim.settle()
    v1 = next(b for b in sim.rss.values() if b["metadata"]["annotations"][REVISION] == "1")
    sim.fleet["metadata"]["annotations"][ROLLBACK_TO] = "0"       # the previous revision
    plan = sim.sync_fleet()
    assert plan.rollback is not None and plan.rollback.outcome == "RolledBack" and plan.rollback.revision == 1
    assert ROLLBACK_TO not in sim.fleet["metadata"]["annotations"]
    assert "kubernetes.io/change-cause" not in sim.fleet["metadata"]["annotations"]   # v1's annotations back
    assert sim.fleet["spec"]["template"] == template("v1")
    sim.settle()
    assert v1["metadata"]["annotations"][REVISION] == "3" and v1["metadata"]["annotations"][REVISION_HISTORY] == "1"
    assert sim.fleet["metadata"]["annotations"][REVISION] == "3"
    sim.fleet["metadata"]["annotations"][ROLLBACK_TO] = "7"
    assert sim.sync_fleet().rollback.outcome == "RollbackRevisionNotFound"
    sim.fleet["metadata"]["annotations"][ROLLBACK_TO] = "3"
    assert sim.sync_fleet().rollback.outcome == "RollbackTemplateUnchanged"


def test_revision_history_is_pruned_to_the_limit() -> None:
    sim = stable(spec(1, 1, 0, revisionHistoryLimit=2), delay=lambda r: 1.0)
    for v in range(2, 7):
        sim.set_template(template(f"v{v}"))
        sim.settle()
        for _ in range(5):          # the complete rollout's next syncs delete the oldest
            sim.sync_fleet()
            for name in list(sim.rss):
                sim.sync_rs(name)
    revisions = sorted(int(b["metadata"]["annotations"][REVISION]) for b in sim.rss.values())
    assert revisions == [4, 5, 6]


def test_a_failed_cluster_is_deleted_and_replaced() -> None:
    sim = stable(spec(3, 1, 0), delay=lambda r: 1.0)
    victim = next(iter(sim.clusters.values()))
    victim.failed = True
    name = next(iter(sim.rss))
    sim.sync_rs(name)
    assert victim.name not in sim.clusters and len(sim.clusters) == 3
    sim.settle()


def test_an_invalid_spec_is_reported_and_nothing_is_written() -> None:
    sim = Sim(spec(2, 0, 0), random.Random(0))
    plan = sim.sync_fleet()
    assert plan.create is None and not plan.updates
    cond = progress.get_condition(sim.fleet["status"], "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", "InvalidSpec") and "may not both be 0" in cond["message"]
    assert sim.sync_fleet().status is None                    # written once


def test_first_sync_creates_the_revision_1_replica_set_at_full_size() -> None:
    sim = Sim(spec(4), random.Random(0))
    plan = sim.sync_fleet()
    assert plan.create is not None
    body = plan.create
    assert body["spec"]["replicas"] == 4 and body["metadata"]["annotations"][REVISION] == "1"
    assert body["metadata"]["name"].startswith("llm-") and body["spec"]["selector"]["matchLabels"]["app"] == "llm"
    assert sim.fleet["status"]["selector"].startswith("app=llm")
    assert T0 > 0 and isinstance(fleetlib.plan, object)
