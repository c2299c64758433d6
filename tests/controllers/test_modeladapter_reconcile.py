"""ModelAdapter reconcile as pure functions with scripted inputs: pods appear and vanish, loads fail,
engines restart; time and jitter are passed in."""

from __future__ import annotations

import random

import pytest

from controllers.modeladapter.model import AdapterView, PodView, SpecError, State, adapter_view, parse_spec
from controllers.modeladapter.reconcile import Outcome, Settings, plan, record, serving, summarize

T0 = 1_000_000.0
SPEC = {"baseModel": "llama", "podSelector": {"matchLabels": {"app": "llama"}}, "artifactURL": "huggingface://org/sql"}


def adapter(name: str = "sql", generation: int = 1, instances: tuple[str, ...] = (), **spec: object) -> AdapterView:
    body = {"metadata": {"name": name, "uid": f"uid-{name}", "generation": generation},
            "spec": {**SPEC, **spec}, "status": {"instances": list(instances)}}
    return adapter_view(body)


def pod(name: str, loaded: tuple[str, ...] = (), ready: bool = True, slots: int = 4, deleting: bool = False,
        app: str = "llama") -> PodView:
    return PodView(name=name, uid=f"uid-{name}", ip=f"127.0.0.{len(name)}", port=8000,
                   labels={"app": app, "model.brix.dev/name": "llama"}, ready=ready, deleting=deleting,
                   loaded=frozenset(loaded), base_models=frozenset({"llama"}), slots=slots)


def loads(p) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return sorted((a.adapter, a.pod) for a in p.actions if a.kind == "load")


def unloads(p) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return sorted((a.adapter, a.pod) for a in p.actions if a.kind == "unload")


def test_replicas_two_on_three_pods_loads_on_two_and_the_load_carries_vllms_path() -> None:
    out = plan([adapter(replicas=2)], [pod("a"), pod("b"), pod("c")], State(), T0)
    assert len(out.placement["sql"]) == 2 and len(loads(out)) == 2
    assert {a.lora_path for a in out.actions} == {"org/sql"}        # huggingface://org/sql -> org/sql
    assert out.scheduling["sql"].ok


def test_unset_replicas_means_every_matching_ready_pod() -> None:
    pods = [pod("a"), pod("b"), pod("c", ready=False), pod("d", app="other"), pod("e", deleting=True)]
    out = plan([adapter()], pods, State(), T0)
    assert out.placement["sql"] == ("a", "b") and out.desired["sql"] == 2


def test_a_deleted_pods_adapter_moves_to_a_spare_pod_and_nothing_else_moves() -> None:
    a = adapter(replicas=2, instances=("a", "b"))
    out = plan([a], [pod("a", ("sql",)), pod("b", ("sql",), deleting=True), pod("c")], State(), T0)
    assert out.placement["sql"] == ("a", "c") and loads(out) == [("sql", "c")] and not unloads(out)


def test_engine_restart_is_repaired_on_the_same_pod() -> None:
    a = adapter(replicas=2, instances=("a", "b"))
    out = plan([a], [pod("a", ("sql",)), pod("b", ()), pod("c")], State(), T0)    # b restarted: empty
    assert out.placement["sql"] == ("a", "b") and loads(out) == [("sql", "b")] and not out.solved


def test_scale_down_drains_before_it_unloads() -> None:
    state = State()
    a = adapter(replicas=1, instances=("a", "b"))
    pods = [pod("a", ("sql",)), pod("b", ("sql",))]
    first = plan([a], pods, state, T0, Settings(drain_s=1.0))
    assert len(first.placement["sql"]) == 1 and not unloads(first)
    gone = ({"a", "b"} - set(first.placement["sql"])).pop()
    assert [p.name for p in serving(a, first.placement["sql"], pods)] == list(first.placement["sql"])
    later = plan([a], pods, state, T0 + 1.0, Settings(drain_s=1.0))
    assert unloads(later) == [("sql", gone)]


def test_a_pod_that_stops_matching_gets_an_unload_and_a_replacement() -> None:
    state = State()
    a = adapter(replicas=1, instances=("a",))
    pods = [pod("a", ("sql",), app="other"), pod("b")]
    plan([a], pods, state, T0, Settings(drain_s=0.0))
    out = plan([a], pods, state, T0, Settings(drain_s=0.0))
    assert loads(out) == [("sql", "b")] and unloads(out) == [("sql", "a")]


def test_hand_loaded_adapters_are_left_alone_and_use_up_slots() -> None:
    pods = [pod("a", ("by-hand",), slots=1), pod("b", slots=1)]
    out = plan([adapter(replicas=1)], pods, State(), T0, Settings(drain_s=0.0))
    assert out.placement["sql"] == ("b",) and not unloads(out)


def test_deleting_an_adapter_unloads_it_everywhere() -> None:
    state = State()
    body = {"metadata": {"name": "sql", "uid": "u", "generation": 1, "deletionTimestamp": "now"}, "spec": SPEC}
    out = plan([adapter_view(body)], [pod("a", ("sql",)), pod("b", ("sql",))], state, T0, Settings(drain_s=0.0))
    assert unloads(out) == [("sql", "a"), ("sql", "b")] and out.placement["sql"] == ()


def test_retriable_failures_back_off_exponentially_with_jitter_and_a_cap() -> None:
    state, rng = State(), random.Random(1)
    a, pods = adapter(replicas=1), [pod("a")]
    s = Settings(backoff_base_s=1.0, backoff_cap_s=8.0)
    now, delays = T0, []
    for _ in range(6):
        out = plan([a], pods, state, now, s)
        assert loads(out) == [("sql", "a")]
        record(state, [a], [Outcome(out.actions[0], False, False, "ClientConnectorError: refused")], now, rng, s)
        wait = state.backoff[("sql", "a")].next_at - now
        delays.append(wait)
        assert not plan([a], pods, state, now + wait - 0.01, s).actions       # nothing before it is due
        now += wait
    bounds = [min(8.0, 2 ** i) for i in range(6)]
    assert all(b / 2 <= d <= b for d, b in zip(delays, bounds, strict=True)), delays
    status = summarize(a, plan([a], pods, state, now, s), pods, state, now, [])
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "Retrying" and "refused" in ready["message"] and "attempt 6" in ready["message"]


def test_a_permanent_error_fails_the_adapter_with_the_engines_message_and_is_not_retried() -> None:
    state, rng = State(), random.Random(0)
    a, pods = adapter(replicas=2), [pod("a"), pod("b")]
    out = plan([a], pods, state, T0)
    msg = "HTTP 404: Loading lora sql failed: No adapter found for /nope"
    record(state, [a], [Outcome(out.actions[0], False, True, msg), Outcome(out.actions[1], True)], T0, rng)
    after = plan([a], [pod("a"), pod("b", ("sql",))], state, T0 + 100)
    assert not loads(after)
    status = summarize(a, after, pods, state, T0 + 100, [])
    assert status["phase"] == "Failed"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "LoadFailed" and msg in ready["message"]
    # read back from status by a new operator process: still failed for this generation...
    body = {"metadata": {"name": "sql", "uid": "u", "generation": 1}, "spec": {**SPEC, "replicas": 2},
            "status": status}
    assert not loads(plan([adapter_view(body)], pods, State(), T0 + 200))
    # ...and tried again once the spec changes
    body["metadata"]["generation"] = 2
    assert loads(plan([adapter_view(body)], pods, State(), T0 + 200))


def test_status_running_once_every_desired_pod_lists_it() -> None:
    state = State()
    a = adapter(replicas=2)
    out = plan([a], [pod("a"), pod("b"), pod("c")], state, T0)
    placed = out.placement["sql"]
    after = [pod(n, ("sql",) if n in placed else ()) for n in "abc"]
    status = summarize(a, out, after, state, T0, [])
    assert status["phase"] == "Running" and status["readyReplicas"] == 2 and status["desiredReplicas"] == 2
    assert sorted(status["instances"]) == sorted(placed)


def test_more_replicas_than_pods_says_so() -> None:
    out = plan([adapter(replicas=3)], [pod("a"), pod("b")], State(), T0)
    assert out.scheduling["sql"].reason == "NotEnoughPods" and len(out.placement["sql"]) == 2


def test_adapters_are_balanced_across_pods_by_the_solver() -> None:
    adapters = [adapter(f"a{i}", replicas=1) for i in range(6)]
    out = plan(adapters, [pod("p"), pod("q"), pod("r")], State(), T0)
    per_pod = {p: sum(p in out.placement[a.name] for a in adapters) for p in "pqr"}
    assert per_pod == {"p": 2, "q": 2, "r": 2}


@pytest.mark.parametrize("spec,field", [
    ({"artifactURL": "ftp://x"}, "spec.artifactURL"),
    ({"replicas": 0}, "spec.replicas"),
    ({"podSelector": {}}, "spec.podSelector"),
    ({"additionalConfig": {"sizeMiB": "big"}}, "spec.additionalConfig.sizeMiB"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}, "spec.podSelector.matchExpressions[0]"),
])
def test_bad_specs_name_the_field(spec: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(SpecError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_spec({**SPEC, **spec})


def test_a_restarting_engine_keeps_its_adapter_through_the_grace_period_then_it_moves() -> None:
    state, s = State(), Settings(unready_grace_s=30.0)
    a = adapter(replicas=2, instances=("a", "b"))
    down = [pod("a", ("sql",)), PodView("b", "uid-b", "127.0.0.9", 8000, {"app": "llama"}, ready=False,
                                        deleting=False), pod("c")]
    out = plan([a], down, state, T0, s)
    assert out.placement["sql"] == ("a", "b") and not out.actions       # b restarting: wait for it
    back = plan([a], [pod("a", ("sql",)), pod("b", ()), pod("c")], state, T0 + 5, s)
    assert loads(back) == [("sql", "b")]                                # back, empty: loaded again there
    state2 = State()
    plan([a], down, state2, T0, s)
    late = plan([a], down, state2, T0 + 31, s)
    assert late.placement["sql"] == ("a", "c") and loads(late) == [("sql", "c")]
