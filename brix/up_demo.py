"""Demo traffic for `brix up`: every step goes through a component's real protocol.

1. schedule a 2-GPU pod: the extender's /filter, /prioritize and /bind (kube-scheduler's JSON);
2. allocate its GPUs on the chosen node: GetPreferredAllocation + Allocate on the device plugin;
3. chat through the gateway (OpenAI API) with prefix-cache-aware routing;
4. inject XID 79 into one mock GPU and time how long the plugin takes to report it Unhealthy;
   the node's allocatable drops, and the extender sees it;
5. heal the GPU and watch it come back;
6. ask the GPU-mix optimizer for the cheapest A100/A40 mix (when ../shared/data is present).
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from brix import procs
from brix.up_components import GPU_RESOURCE, SHARED_PROFILES, Cluster, run_brix
from brix.up_plan import UpSettings, say


def post_json(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[Any, dict[str, str]]:
    """POST JSON, return (decoded answer, response headers); both demos use it."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null"), dict(response.headers)


def demo_pod(name: str, gpus: int, model: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                     "annotations": {"model.brix.dev/name": model}},
        "spec": {"containers": [{"name": "engine", "resources": {
            "requests": {GPU_RESOURCE: str(gpus)}, "limits": {GPU_RESOURCE: str(gpus)}}}]},
    }


def schedule(cluster: Cluster, pod: dict[str, Any]) -> str:
    plan = cluster.plan
    names = [n.name for n in plan.nodes]
    args = {"Pod": pod, "Nodes": None, "NodeNames": names}
    filtered, _ = post_json(f"{plan.scheduler_url}/filter", args)
    fits = filtered.get("NodeNames") or []
    for node, why in {**(filtered.get("FailedNodes") or {}),
                      **(filtered.get("FailedAndUnresolvableNodes") or {})}.items():
        say(f"  filter: {node} rejected: {why}")
    if not fits:
        raise procs.ProcessFailed(f"no node fits pod {pod['metadata']['name']}")
    scores, _ = post_json(f"{plan.scheduler_url}/prioritize", {**args, "NodeNames": fits})
    best = max(scores, key=lambda s: s["Score"])["Host"]
    say(f"  filter kept {fits}; prioritize scores {[(s['Host'], s['Score']) for s in scores]}")
    meta = pod["metadata"]
    bound, _ = post_json(f"{plan.scheduler_url}/bind", {"PodName": meta["name"], "PodNamespace": meta["namespace"],
                                                     "PodUID": meta["uid"], "Node": best})
    if bound.get("Error"):
        raise procs.ProcessFailed(f"bind failed: {bound['Error']}")
    return str(best)


def run(cluster: Cluster, settings: UpSettings) -> None:
    plan, kubelets = cluster.plan, cluster.running_kubelets()
    say("demo 1/6: scheduling a 2-GPU engine pod through the extender (/filter, /prioritize, /bind)")
    node = schedule(cluster, demo_pod("llama-engine-0", 2, settings.model))
    say(f"  bound llama-engine-0 -> {node}")

    say(f"demo 2/6: allocating its GPUs on {node} through the device plugin (gRPC v1beta1)")
    ids, envs = kubelets.call(kubelets.kubelets[node].allocate(GPU_RESOURCE, 2))
    say(f"  preferred + allocated {ids}; NVIDIA_VISIBLE_DEVICES={envs.get('NVIDIA_VISIBLE_DEVICES')}")

    say("demo 3/6: chatting through the gateway (OpenAI API, prefix-cache-aware routing)")
    system = "You are a helpful assistant for the Brix mock-GPU cluster. " * 8
    for i in range(6):
        started = time.perf_counter()
        body = {"model": settings.model, "max_tokens": 16,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": f"question {i}"}]}
        reply, headers = post_json(f"{plan.gateway_url}/v1/chat/completions", body,
                               {"routing-strategy": "prefix-cache-aware"})
        usage = reply.get("usage", {})
        say(f"  request {i}: endpoint {headers.get('x-brix-endpoint', '?')} "
            f"prompt_tokens={usage.get('prompt_tokens')} completion_tokens={usage.get('completion_tokens')} "
            f"in {1000 * (time.perf_counter() - started):.0f} ms")

    victim = plan.nodes[0]
    say(f"demo 4/6: injecting XID 79 (GPU fell off the bus) into {victim.name} GPU 1")
    before = kubelets.devices(victim.name)
    injected = time.perf_counter()
    run_brix("nvml-mock", "inject", "--config", str(victim.mock_config), "--gpu", "1", "--xid", "79")
    unhealthy = _wait_for(lambda: sum(h != "Healthy" for h in kubelets.devices(victim.name).values()) == 1, 10)
    say(f"  ListAndWatch reported 1 Unhealthy GPU {1000 * (unhealthy - injected):.0f} ms after the fault; "
        f"{victim.name} allocatable {GPU_RESOURCE} {len(before)} -> "
        f"{sum(h == 'Healthy' for h in kubelets.devices(victim.name).values())}")
    why: dict[str, str] = {}

    def extender_sees_it() -> bool:  # the extender re-reads the nodes file within ~0.25 s of a change
        filtered, _ = post_json(f"{plan.scheduler_url}/filter", {"Pod": demo_pod("big", victim.gpus, settings.model),
                                                            "Nodes": None, "NodeNames": [victim.name]})
        why.update(filtered.get("FailedAndUnresolvableNodes") or {})
        return victim.name in why

    _wait_for(extender_sees_it, 10)
    say(f"  extender on a {victim.gpus}-GPU pod for {victim.name}: {why.get(victim.name, 'fits')}")

    say(f"demo 5/6: healing {victim.name} GPU 1 (the plugin's quiet period is 5 s)")
    healed = time.perf_counter()
    run_brix("nvml-mock", "inject", "--config", str(victim.mock_config), "--gpu", "1", "--heal")
    back = _wait_for(lambda: all(h == "Healthy" for h in kubelets.devices(victim.name).values()), 30)
    say(f"  GPU 1 Healthy again {back - healed:.1f} s after the heal")

    gpu_mix(settings, "6/6")
    say("demo done")


def gpu_mix(settings: UpSettings, step: str) -> None:
    """The demo's last step in both modes: `brix optimize` on the AIBrix profiles, when present."""
    if not SHARED_PROFILES.is_dir():
        say(f"demo {step}: skipped (no GPU profiles at {SHARED_PROFILES})")
        return
    say(f"demo {step}: cheapest GPU mix for 20 req/s of llama2-7b (Mélange ILP over the AIBrix profiles)")
    workload = settings.workdir / "workload.json"
    profiles = sorted(str(p) for p in SHARED_PROFILES.glob("*.json"))
    grid = json.loads(open(profiles[0]).read())["indexes"]
    cells = len(grid[0]) * len(grid[1])
    workload.write_text(json.dumps({"indexes": grid, "distribution": [
        [1.0 / cells] * len(grid[1]) for _ in grid[0]]}))
    say(f"  {run_brix('optimize', '--profiles', *profiles, '--workload', str(workload), '--rps', '20').strip()}")


def _wait_for(condition: Any, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.perf_counter()
        time.sleep(0.01)
    raise procs.ProcessFailed(f"condition not reached within {timeout:.0f}s")
