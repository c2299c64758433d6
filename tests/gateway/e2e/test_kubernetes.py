"""Kubernetes mode: the gateway watches labelled pods in the k8s_api fixture and routes to the
Ready ones (engine_mock processes on loopback stand in for the pods)."""

from __future__ import annotations

import time

import openai


def kubeconfig(path, server: str) -> str:  # type: ignore[no-untyped-def]
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: test, cluster: {{server: "{server}"}}}}]
contexts: [{{name: test, context: {{cluster: test, user: test}}}}]
current-context: test
users: [{{name: test, user: {{token: test-token}}}}]
""")
    return str(path)


def pod(name: str, port: int, model: str = "mock-llm") -> dict:  # type: ignore[type-arg]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"model.brix.dev/name": model, "model.brix.dev/port": str(port)}},
            "spec": {"containers": [{"name": "engine", "image": "brix/engine-mock"}]}}


def set_ready(core, name: str, ready: bool) -> None:  # type: ignore[no-untyped-def]
    core.patch_namespaced_pod_status(name, "default", {"status": {
        "phase": "Running", "podIP": "127.0.0.1",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}})


def wait_for(predicate, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_routes_to_ready_labelled_pods_only(k8s_api, start_engines, start_gateway, tmp_path):  # type: ignore[no-untyped-def]
    engines = start_engines(2)
    ports = [int(e.url.rsplit(":", 1)[1]) for e in engines]
    core = k8s_api.core_v1()
    core.create_namespaced_pod("default", pod("engine-a", ports[0]))
    core.create_namespaced_pod("default", pod("engine-b", ports[1]))
    set_ready(core, "engine-a", True)
    set_ready(core, "engine-b", False)
    url = start_gateway([], "--kubernetes", "--namespace", "default",
                        "--kubeconfig", kubeconfig(tmp_path / "kubeconfig", k8s_api.url))
    c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20)

    def endpoints_used(n: int = 8) -> set[str]:
        return {c.completions.with_raw_response.create(model="mock-llm", prompt=f"p{i}", max_tokens=1,
                                                       extra_headers={"routing-strategy": "random"})
                .headers["x-brix-endpoint"] for i in range(n)}

    # /readyz answers once discovery has listed the pods; the model is known once the Ready pod's
    # /v1/models was read
    wait_for(lambda: any(m.id == "mock-llm" for m in c.models.list().data),
             "the gateway never learnt the model of the Ready pod")
    assert endpoints_used() == {engines[0].url}
    # engine-b turns Ready: both get traffic
    set_ready(core, "engine-b", True)
    wait_for(lambda: len(endpoints_used()) == 2, "the gateway never routed to the pod that became Ready")
    # engine-a is deleted: only engine-b remains
    core.delete_namespaced_pod("engine-a", "default")
    wait_for(lambda: endpoints_used() == {engines[1].url}, "the gateway kept routing to a deleted pod")
