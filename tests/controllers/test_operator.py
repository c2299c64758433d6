"""`brix controllers` against the k8s_api emulator: a PodAutoscaler scales a Deployment through its
/scale subresource from metrics scraped on the pods' own IPs, reports status, and survives restarts;
two replicas elect one leader through a Lease."""

from __future__ import annotations

import asyncio
import datetime
import urllib.error
import urllib.request
from typing import Any

from tests.controllers.conftest import (
    FakePods,
    autoscaler,
    deployment,
    eventually,
    operator_settings,
    running_operator,
    text_endpoint,
)
from tests.k8s_api import K8sApi, Route

LABELS = {"app": "llama"}


async def http_get(url: str) -> str:
    """GET from a thread: the operator's server runs on this test's event loop."""
    def fetch() -> str:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.read().decode()
    return await asyncio.to_thread(fetch)


def replicas(api: K8sApi, name: str = "llama") -> int:
    return int(api.apps_v1().read_namespaced_deployment_scale(name, "default").spec.replicas)


def status(api: K8sApi, name: str = "pa") -> dict[str, Any]:
    obj = api.custom().get_namespaced_custom_object("autoscaling.brix.dev", "v1alpha1", "default",
                                                    "podautoscalers", name)
    return obj.get("status") or {}


async def test_kpa_scales_the_deployment_up_on_load_and_back_down(k8s_api: K8sApi, fake_pods: FakePods) -> None:
    deployment(k8s_api)
    await fake_pods.add("llama-0", "127.0.0.2", 30.0, LABELS)       # 3x the target on the one Ready pod
    autoscaler(k8s_api, "pa", fake_pods.port)
    settings = operator_settings()
    async with running_operator(k8s_api, settings):
        await eventually(lambda: replicas(k8s_api) == 3, "a scale-up to ceil(30 / 10) = 3")
        st = await eventually(lambda: status(k8s_api).get("desiredReplicas") == 3 and status(k8s_api),
                              "status.desiredReplicas 3")
        assert st["lastDecisions"][-1]["from"] == 1 and st["lastDecisions"][-1]["to"] == 3
        conds = {c["type"]: c for c in st["conditions"]}
        assert conds["AbleToScale"]["status"] == "True" and conds["ScalingActive"]["status"] == "True"
        page = await http_get(f"http://127.0.0.1:{settings.metrics_port}/metrics")
        assert 'brix_autoscaler_desired_replicas{name="pa",namespace="default"} 3.0' in page
        fake_pods.values["llama-0"] = 2.0
        await eventually(lambda: replicas(k8s_api) == 1, "a scale-down once the panic window has passed")


async def test_a_failing_scrape_is_missing_not_zero(k8s_api: K8sApi, fake_pods: FakePods) -> None:
    deployment(k8s_api, replicas=4)
    await fake_pods.add("llama-0", "127.0.0.2", 10.0, LABELS)
    autoscaler(k8s_api, "pa", fake_pods.port, minReplicas=0)
    async with running_operator(k8s_api, operator_settings()):
        await eventually(lambda: status(k8s_api).get("desiredReplicas") is not None, "a first decision")
        del fake_pods.values["llama-0"]                               # /metrics answers 500 from now on
        await asyncio.sleep(12)                                       # two stable windows without data
        st = status(k8s_api)
        conds = {c["type"]: c for c in st["conditions"]}
        assert conds["ScalingActive"]["status"] == "False"
        assert replicas(k8s_api) >= 1, "failed scrapes were read as zero load"


async def test_an_invalid_spec_is_reported_in_a_condition(k8s_api: K8sApi, fake_pods: FakePods) -> None:
    deployment(k8s_api)
    autoscaler(k8s_api, "pa", fake_pods.port, minReplicas=5, maxReplicas=2)   # the emulator does not run CEL
    async with running_operator(k8s_api, operator_settings()):
        st = await eventually(lambda: status(k8s_api).get("conditions") and status(k8s_api), "a condition")
        cond = next(c for c in st["conditions"] if c["type"] == "ScalingActive")
        assert cond["reason"] == "InvalidSpec" and "spec.minReplicas (5) must be <= spec.maxReplicas (2)" in cond["message"]
    assert replicas(k8s_api) == 1


async def test_a_restarted_operator_resumes_from_status(k8s_api: K8sApi, fake_pods: FakePods) -> None:
    deployment(k8s_api)
    await fake_pods.add("llama-0", "127.0.0.2", 30.0, LABELS)
    autoscaler(k8s_api, "pa", fake_pods.port, windows={"stableSeconds": 30, "panicSeconds": 2})
    async with running_operator(k8s_api, operator_settings()):
        await eventually(lambda: status(k8s_api).get("panic") is True and replicas(k8s_api) == 3, "panic at 3")
    before = status(k8s_api)
    fake_pods.values["llama-0"] = 1.0                                  # the burst is over
    async with running_operator(k8s_api, operator_settings()):
        await asyncio.sleep(5)
        after = status(k8s_api)
        # the panic (entered less than a stable window ago) came back from status.state: no scale-down
        assert replicas(k8s_api) == 3 and after["panic"] is True
        assert after["state"]["panicSince"] == before["state"]["panicSince"]
        assert after["lastDecisions"][: len(before["lastDecisions"])] == before["lastDecisions"]


async def test_two_replicas_elect_one_leader_and_the_standby_takes_over(k8s_api: K8sApi, fake_pods: FakePods) -> None:
    deployment(k8s_api)
    await fake_pods.add("llama-0", "127.0.0.2", 30.0, LABELS)
    a, b = operator_settings("replica-a", leader=True), operator_settings("replica-b", leader=True)
    coord = k8s_api.coordination_v1()

    def holder() -> str:
        try:
            return coord.read_namespaced_lease("brix-controllers", "default").spec.holder_identity or ""
        except Exception:  # noqa: BLE001 - not created yet
            return ""
    async with running_operator(k8s_api, a):
        first = await eventually(holder, "a Lease holder")
        async with running_operator(k8s_api, b) as stop_b:
            await asyncio.sleep(2)
            assert holder() == first == "replica-a"
            ready = {name: await http_get(f"http://127.0.0.1:{s.metrics_port}/readyz") for name, s in (("a", a), ("b", b))}
            assert '"leader": true' in ready["a"] and '"leader": false' in ready["b"]
            stop_a_then = True
        assert stop_a_then and stop_b.is_set()
    assert holder() == ""                 # a leader that stops gives the Lease up
    # a leader that dies without releasing: the next replica takes over once the lease has expired
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    coord.patch_namespaced_lease("brix-controllers", "default", {"spec": {
        "holderIdentity": "dead-replica", "leaseDurationSeconds": 3, "renewTime": now}})
    c = operator_settings("replica-c", leader=True)
    autoscaler(k8s_api, "pa", fake_pods.port)
    async with running_operator(k8s_api, c):
        await asyncio.sleep(1)
        assert holder() == "dead-replica"     # its renewTime is recent: not yet
        await eventually(lambda: holder() == "replica-c", "replica-c leading after the lease expired", timeout=10)
        await eventually(lambda: replicas(k8s_api) == 3, "the new leader scaling")


async def test_a_409_conflict_on_the_scale_write_is_retried(k8s_api: K8sApi, fake_pods: FakePods) -> None:
    deployment(k8s_api)
    await fake_pods.add("llama-0", "127.0.0.2", 30.0, LABELS)
    assert k8s_api.kmock is not None
    k8s_api.kmock["patch /apis/apps/v1/namespaces/default/deployments/llama/scale"][:1] << 409
    autoscaler(k8s_api, "pa", fake_pods.port, syncPeriodSeconds=60)   # a lost write would wait a minute
    async with running_operator(k8s_api, operator_settings()):
        await eventually(lambda: replicas(k8s_api) == 3, "the scale-up despite a 409 on the first write", 10)
        st = await eventually(lambda: status(k8s_api).get("lastDecisions") and status(k8s_api), "a decision")
        assert [(d["from"], d["to"]) for d in st["lastDecisions"]] == [(1, 3)]   # one decision, not lost or doubled
    patches = [r for r in list(k8s_api.kmock) if str(r.method).upper().endswith("PATCH")
               and r.url.path.endswith("/deployments/llama/scale")]
    assert len(patches) >= 2


async def test_an_external_source_is_a_total_for_the_whole_target(k8s_api: K8sApi) -> None:
    queue = {"depth": 35.0}
    text = lambda: f'# TYPE queue_depth gauge\nqueue_depth{{queue="llama"}} {queue["depth"]}\n'  # noqa: E731
    async with text_endpoint("/q", text) as url:
        deployment(k8s_api)
        autoscaler(k8s_api, "pa", 8000, metricsSources=[{"type": "external", "url": url,
                                                         "metric": "queue_depth", "targetValue": 10}])
        async with running_operator(k8s_api, operator_settings()):
            await eventually(lambda: replicas(k8s_api) == 4, "ceil(35 / 10) = 4 replicas")


async def test_an_expired_watch_410_is_relisted_and_the_decider_state_kept(k8s_api: K8sApi, fake_pods: FakePods) -> None:
    deployment(k8s_api)
    deployment(k8s_api, "other")
    await fake_pods.add("llama-0", "127.0.0.2", 30.0, LABELS)
    autoscaler(k8s_api, "pa", fake_pods.port, windows={"stableSeconds": 30, "panicSeconds": 2})
    autoscaler(k8s_api, "gone", fake_pods.port, scaleTargetRef={"apiVersion": "apps/v1", "kind": "Deployment",
                                                               "name": "other"}, minReplicas=2)
    async with running_operator(k8s_api, operator_settings()):
        await eventually(lambda: status(k8s_api).get("panic") is True and replicas(k8s_api) == 3, "panic at 3")
        await eventually(lambda: replicas(k8s_api, "other") == 2, "the second autoscaler at its minimum")
        fake_pods.values["llama-0"] = 1.0                              # the burst is over: panic holds 3
        await asyncio.sleep(2.5)
        before = status(k8s_api)
        # etcd compacted under the operator's watch of PodAutoscalers: the stream ends with 410 Gone
        # and its resourceVersion cannot be resumed from; "gone" is deleted before the re-list, so its
        # DELETED event is never sent
        def compact_then_delete() -> None:
            assert k8s_api.kmock is not None
            k8s_api.kmock.expire_watches("autoscaling.brix.dev", "podautoscalers")
            k8s_api.kmock._store.delete(k8s_api.kmock._store.types[("autoscaling.brix.dev", "podautoscalers")],
                                        Route("autoscaling.brix.dev", "v1alpha1", "podautoscalers", "default",
                                              "gone", None), None)
        last = list(k8s_api.kmock or [])[-1]
        k8s_api.call(compact_then_delete)
        await asyncio.sleep(2)
        log = list(k8s_api.kmock or [])
        since = next((i + 1 for i, r in enumerate(log) if r is last), 0)   # the log keeps the last 200
        relists = [r for r in log[since:] if r.url.path.endswith("/podautoscalers")
                   and str(r.method).upper().endswith("GET") and r.params.get("watch") != "true"]
        assert relists, "no re-list of PodAutoscalers after the 410"
        after = status(k8s_api)
        assert replicas(k8s_api) == 3 and after["panic"] is True, "the panic was forgotten on the re-list"
        assert after["state"]["panicSince"] == before["state"]["panicSince"]
        assert after["state"]["maxPanicPods"] == 3
        # still watching: a spec change made after the 410 is followed
        k8s_api.custom().patch_namespaced_custom_object("autoscaling.brix.dev", "v1alpha1", "default",
                                                        "podautoscalers", "pa", {"spec": {"minReplicas": 4}})
        await eventually(lambda: replicas(k8s_api) == 4, "the new minReplicas after the 410", 10)
        st = status(k8s_api)
        assert [(d["from"], d["to"]) for d in st["lastDecisions"]] == [(1, 3), (3, 4)]
        # the autoscaler deleted during the gap no longer scales its target
        k8s_api.apps_v1().patch_namespaced_deployment_scale("other", "default", {"spec": {"replicas": 1}})
        await asyncio.sleep(3)
        assert replicas(k8s_api, "other") == 1, "an autoscaler deleted while the watch was expired still scales"
