"""`brix up` on the real control plane: the local cluster of brix/kube/cluster.py (kube-apiserver,
etcd, kube-controller-manager, kube-scheduler + the extender, the node agent's GPU nodes with
their mock device plugins), then the gateway from deploy/gateway and one engine-mock Deployment
per GPU type created through the API, placed by kube-scheduler and the extender.

Demo traffic, each step through a real protocol:
1. chat through the gateway (OpenAI API); it found the engines through the Kubernetes API;
2. inject XID 79 into one node's mock GPU: its allocatable drops 4 -> 3 in the Node object;
3. a pod asking for a GPU type no node has: kube-scheduler's FailedScheduling event carries the
   extender's reason;
4. heal the GPU; it is Healthy again after the device plugin's quiet period;
5. the cheapest GPU mix for a workload (Mélange ILP over the AIBrix profiles), when present;
6. a PodAutoscaler (KPA) on the A100 engines: concurrent chats through the gateway scale them up,
   `brix controllers` (deploy/local/controllers) writing the Deployment's /scale;
7. a ModelAdapter: a LoRA adapter loaded on an engine by the operator and chatted with by name;
8. a RayClusterFleet of two multi-node Ray clusters: the operator creates their RayClusters
   (KubeRay, not installed here, would run them);
9. a KVCache pool of two servers (the operator's StatefulSet, membership in a redis-server that
   `brix up` runs as the cluster's external metadata store) and two engines on it: a prompt one
   engine computed is prefilled from the pool by the other;
10. the GPU-mix loop: an optimizer (`brix scheduler-ext --gateway-url`) reads the gateway's live
   workload, and a PodAutoscaler per GPU type follows its targets: short prompts run on A100
   engines, and when the prompts turn long the replicas move to H100 ones.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from brix import procs
from brix.kube import manifests
from brix.kube.cluster import ClusterSettings, LocalCluster, start
from brix.up_components import run_brix
from brix.up_demo import gpu_mix, post_json
from brix.up_plan import GPU_TYPES, UpSettings, say
from brix.vllm_metrics import samples

NAMESPACE = "default"


def engine_deployment(model: str, gpu_type: str, replicas: int) -> dict[str, Any]:
    name = f"{model}-{gpu_type.lower()}"
    labels = {"app.kubernetes.io/name": name, "model.brix.dev/name": model, "model.brix.dev/port": "8000",
              "model.brix.dev/gpu-type": gpu_type}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                 "template": {
                     "metadata": {"labels": labels, "annotations": {"scheduling.brix.dev/gpu-types": gpu_type}},
                     "spec": {"enableServiceLinks": False, "terminationGracePeriodSeconds": 5,
                              "containers": [{
                                  "name": "engine", "image": "brix:0.1.0",
                                  "args": ["engine-mock", "--host=0.0.0.0", "--port=8000", f"--model={model}",
                                           f"--gpu-type={gpu_type}"],
                                  "ports": [{"name": "http", "containerPort": 8000}],
                                  "readinessProbe": {"httpGet": {"path": "/health", "port": "http"},
                                                     "periodSeconds": 1},
                                  "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}},
    }


def run(settings: UpSettings) -> int:
    say(f"starting the real control plane and {settings.nodes} GPU nodes in {settings.workdir / 'kube'}")
    cluster = start(ClusterSettings(workdir=settings.workdir / "kube", nodes=settings.nodes,
                                    gpus_per_node=settings.gpus_per_node))
    redis: procs.ManagedProcess | None = None
    try:
        rss = cluster.plane.rss_mib()
        say(f"control plane ready in {cluster.timings['control_plane_s']:.1f} s, cluster with deploy/local in "
            f"{cluster.timings['total_s']:.1f} s; RSS " + ", ".join(f"{k} {v:.0f} MiB" for k, v in rss.items()))
        say(f"kubeconfig: {cluster.kubeconfig}")
        say(f"  try: KUBECONFIG={cluster.kubeconfig} {manifests.kubectl_binary()} get nodes,pods -A -o wide")
        cluster.kubectl("apply", "-f", "-", stdin=manifests.dump(manifests.local_controllers_objects()))
        cluster.kubectl("-n", NAMESPACE, "apply", "-k", str(manifests.DEPLOY / "gateway"))
        per_type = max(1, settings.engines // len(GPU_TYPES))
        for gpu_type in GPU_TYPES:
            body = engine_deployment(settings.model, gpu_type, per_type)
            cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", stdin=json.dumps(body))
        for namespace, name in [("brix-system", "brix-controllers"), (NAMESPACE, "brix-gateway"),
                                *((NAMESPACE, f"{settings.model}-{t.lower()}") for t in GPU_TYPES)]:
            cluster.kubectl("-n", namespace, "rollout", "status", f"deployment/{name}", "--timeout=180s",
                            timeout=190)
        print(cluster.kubectl("get", "nodes,pods", "-A", "-o", "wide").stdout, flush=True)
        gateway = _gateway_url(cluster)
        say(f"gateway (Kubernetes discovery): {gateway}/v1/chat/completions")
        if settings.demo:
            redis = _metadata_redis(settings)
            demo(cluster, settings, gateway, redis)
        deadline = time.monotonic() + settings.duration if settings.duration > 0 else float("inf")
        say("running; press Ctrl-C to stop" if settings.duration <= 0 else f"running for {settings.duration:g}s more")
        while time.monotonic() < deadline:
            if cluster.agent is None or not cluster.agent.alive():
                raise procs.ProcessFailed("the node agent exited")
            for name, proc in cluster.plane.processes.items():
                if not proc.alive():
                    raise procs.ProcessFailed(f"{name} exited:\n{proc.log_tail()}")
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        return 0
    finally:
        say("stopping: node agent (its pods' processes), kube-scheduler, controller-manager, apiserver, etcd")
        cluster.stop()
        if redis is not None:
            redis.stop()


def _gateway_ips(cluster: LocalCluster) -> list[str]:
    """The IPs of the gateway's Ready pods (not those a rollout is taking down)."""
    pods = cluster.get_json("-n", NAMESPACE, "pods", "-l", "app.kubernetes.io/name=brix-gateway")["items"]
    return [p["status"]["podIP"] for p in pods
            if p["status"].get("podIP") and not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]


def _gateway_url(cluster: LocalCluster) -> str:
    return f"http://{_gateway_ips(cluster)[0]}:8888"


def _allocatable(cluster: LocalCluster, node: str) -> str:
    return str(cluster.get_json("node", node)["status"]["allocatable"].get("nvidia.com/gpu"))


def demo(cluster: LocalCluster, settings: UpSettings, gateway: str, redis: procs.ManagedProcess | None) -> None:
    say("demo 1/10: chatting through the gateway, which found the engine pods through the API")

    def gateway_knows_model() -> bool:
        try:
            with urllib.request.urlopen(f"{gateway}/v1/models", timeout=5) as response:
                return any(m.get("id") == settings.model for m in json.loads(response.read()).get("data", []))
        except OSError:
            return False
    cluster.wait_for(f"the gateway to list {settings.model}", gateway_knows_model, 60)
    system = "You are a helpful assistant for the Brix mock-GPU cluster. " * 8
    for i in range(4):
        started = time.perf_counter()
        reply, headers = post_json(f"{gateway}/v1/chat/completions", {
            "model": settings.model, "max_tokens": 16,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": f"question {i}"}]})
        say(f"  request {i}: endpoint {headers.get('x-brix-endpoint', '?')} "
            f"completion_tokens={reply.get('usage', {}).get('completion_tokens')} "
            f"in {1000 * (time.perf_counter() - started):.0f} ms")

    victim = cluster.node_names[0]
    say(f"demo 2/10: XID 79 (GPU fell off the bus) on {victim} GPU 1")
    before = _allocatable(cluster, victim)
    injected = time.perf_counter()
    run_brix("nvml-mock", "inject", "--config", str(cluster.mock_gpu_config(victim)), "--gpu", "1", "--xid", "79")
    cluster.wait_for("allocatable to drop", lambda: _allocatable(cluster, victim) != before, 30, 0.05)
    say(f"  Node {victim} allocatable nvidia.com/gpu {before} -> {_allocatable(cluster, victim)} "
        f"{time.perf_counter() - injected:.2f} s after the fault (device plugin -> node agent -> API)")

    say("demo 3/10: a pod asking for an L20 GPU, which no node has: kube-scheduler asks the extender")
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "l20-engine", "annotations": {"scheduling.brix.dev/gpu-types": "L20"}},
           "spec": {"containers": [{"name": "c", "image": "brix:0.1.0", "args": ["version"],
                                    "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
    cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", stdin=json.dumps(pod))

    def reason() -> str | None:
        events = cluster.get_json("-n", NAMESPACE, "events", "--field-selector", "involvedObject.name=l20-engine")
        return next((e["message"] for e in events["items"] if e["reason"] == "FailedScheduling"), None)
    say(f"  FailedScheduling: {cluster.wait_for('FailedScheduling', reason, 60)}")
    cluster.kubectl("-n", NAMESPACE, "delete", "pod", "l20-engine", "--wait=false")

    say(f"demo 4/10: healing {victim} GPU 1 (the device plugin's quiet period is 30 s)")
    healed = time.perf_counter()
    run_brix("nvml-mock", "inject", "--config", str(cluster.mock_gpu_config(victim)), "--gpu", "1", "--heal")
    cluster.wait_for("allocatable back", lambda: _allocatable(cluster, victim) == before, 90, 0.2)
    say(f"  allocatable back to {before} {time.perf_counter() - healed:.1f} s after the heal")

    gpu_mix(settings, "5/10")
    autoscale(cluster, settings, gateway, "6/10")
    model_adapter(cluster, settings, gateway, "7/10")
    ray_fleet(cluster, "8/10")
    kv_cache(cluster, redis, "9/10")
    gpu_mix_loop(cluster, "10/10")
    say("demo done")


def _chat(gateway: str, model: str, text: str, max_tokens: int) -> dict[str, str]:
    _reply, headers = post_json(f"{gateway}/v1/chat/completions", {
        "model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]})
    return headers


def autoscale(cluster: LocalCluster, settings: UpSettings, gateway: str, step: str) -> None:
    target = f"{settings.model}-a100"
    say(f"demo {step}: a PodAutoscaler (KPA, 2 running requests per pod) on deployment/{target}; "
        "8 clients chat through the gateway")
    body = {"apiVersion": "autoscaling.brix.dev/v1alpha1", "kind": "PodAutoscaler", "metadata": {"name": target},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "minReplicas": 1, "maxReplicas": 3, "scalingStrategy": "KPA",
                     "windows": {"stableSeconds": 6, "panicSeconds": 2},
                     "metricsSources": [{"type": "pod", "metric": "vllm:num_requests_running", "targetValue": 2}]}}
    cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", stdin=json.dumps(body))
    before = cluster.get_json("-n", NAMESPACE, f"deployment/{target}")["spec"]["replicas"]
    done = threading.Event()

    def client(i: int) -> int:
        sent = 0
        while not done.is_set():
            _chat(gateway, settings.model, f"load {i} {sent}", 200)
            sent += 1
        return sent
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        clients = [pool.submit(client, i) for i in range(8)]
        try:
            cluster.wait_for("the PodAutoscaler to scale up", lambda: cluster.get_json(
                "-n", NAMESPACE, f"deployment/{target}")["spec"]["replicas"] > before, 90)
        finally:
            done.set()
        sent = sum(c.result(120) for c in clients)
    decision = cluster.get_json("-n", NAMESPACE, f"podautoscalers.autoscaling.brix.dev/{target}")["status"][
        "lastDecisions"][0]
    say(f"  replicas {decision['from']} -> {decision['to']} {time.perf_counter() - started:.1f} s after the load "
        f"began ({decision['reason']}); {sent} requests, none failed")
    print(cluster.kubectl("-n", NAMESPACE, "get", "podautoscalers").stdout, flush=True)


def model_adapter(cluster: LocalCluster, settings: UpSettings, gateway: str, step: str) -> None:
    name = "sql-lora"
    say(f"demo {step}: a ModelAdapter: LoRA adapter {name} on one {settings.model} engine, placed by the "
        "CP-SAT solver and loaded through vLLM's API")
    body = {"apiVersion": "model.brix.dev/v1alpha1", "kind": "ModelAdapter", "metadata": {"name": name},
            "spec": {"baseModel": settings.model, "artifactURL": f"huggingface://brix-demo/{name}", "replicas": 1,
                     "podSelector": {"matchLabels": {"model.brix.dev/name": settings.model}}}}
    status, seconds = _apply_until_phase(cluster, body, f"modeladapters.model.brix.dev/{name}", "Running")
    say(f"  Running on {', '.join(status.get('instances') or [])} {seconds:.1f} s after kubectl apply")
    headers = cluster.wait_for(f"the gateway to route {name}", lambda: _try_chat(gateway, name), 30)
    say(f"  chat with model={name}: served by {headers.get('x-brix-endpoint', '?')}")
    print(cluster.kubectl("-n", NAMESPACE, "get", "modeladapters").stdout, flush=True)


def ray_fleet(cluster: LocalCluster, step: str) -> None:
    name = "llama-405b"
    say(f"demo {step}: a RayClusterFleet {name} of 2 Ray clusters (a head and 2 GPU workers each)")
    worker = {"groupName": "gpu", "replicas": 2, "minReplicas": 2, "maxReplicas": 2, "rayStartParams": {},
              "template": {"spec": {"containers": [{"name": "ray-worker", "image": "rayproject/ray:2.49.0",
                                                    "resources": {"limits": {"nvidia.com/gpu": "8"}}}]}}}
    head = {"rayStartParams": {"num-cpus": "0"},
            "template": {"spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.49.0"}]}}}
    body = {"apiVersion": "orchestration.brix.dev/v1alpha1", "kind": "RayClusterFleet", "metadata": {"name": name},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"headGroupSpec": head, "workerGroupSpecs": [worker]}}}}
    cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", stdin=json.dumps(body))
    cluster.wait_for("the fleet's 2 RayClusters", lambda: len(cluster.get_json(
        "-n", NAMESPACE, "rayclusters.ray.io", "-l", f"app={name}")["items"]) == 2, 60)
    print(cluster.kubectl("-n", NAMESPACE, "get", "rayclusterfleets,rayclusterreplicasets,rayclusters.ray.io").stdout,
          flush=True)
    say("  KubeRay (not installed on this local cluster) would start each cluster's head and workers; the fleet "
        "counts a cluster ready once KubeRay says so")


def _apply_until_phase(cluster: LocalCluster, body: dict[str, Any], resource: str, phase: str,
                       timeout: float = 90) -> tuple[dict[str, Any], float]:
    """kubectl apply `body`, then wait until its status.phase is `phase`: (status, seconds it took)."""
    started = time.perf_counter()
    cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", stdin=json.dumps(body))

    def reached() -> dict[str, Any] | None:
        status = cluster.get_json("-n", NAMESPACE, resource).get("status") or {}
        return status if status.get("phase") == phase else None
    status = cluster.wait_for(f"{resource} to be {phase}", reached, timeout)
    return status, time.perf_counter() - started


def _try_chat(gateway: str, model: str) -> dict[str, str] | None:
    try:
        return _chat(gateway, model, "SELECT the answer", 8)
    except OSError:       # 404 until the gateway has learnt the adapter
        return None


def _metadata_redis(settings: UpSettings) -> procs.ManagedProcess | None:
    """A redis-server on loopback, standing for the external Redis a KVCache's membership lives in
    (the node agent runs only Brix containers, so `metadata.redis.managed` cannot run here)."""
    if not shutil.which("redis-server"):
        return None
    port = procs.free_port()
    redis = procs.start("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                  "--appendonly", "no"], settings.workdir / "redis.log", ready_port=port)
    try:
        redis.wait_ready(10)
    except procs.ProcessFailed as exc:
        say(f"the demo's redis-server did not start: {exc}")
        redis.stop()
        return None
    return redis


def _redis_port(redis: procs.ManagedProcess) -> int:
    return int(redis.argv[redis.argv.index("--port") + 1])


def _engine_metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        return sum(value for _labels, value in samples(response.read().decode(), name))


def kv_cache(cluster: LocalCluster, redis: procs.ManagedProcess | None, step: str) -> None:
    name = "llama2-7b-kv"
    if redis is None:
        say(f"demo {step}: KVCache skipped (no redis-server for the pool's membership; make redis installs it)")
        return
    address = f"127.0.0.1:{_redis_port(redis)}"
    say(f"demo {step}: a KVCache pool of 2 servers, membership in Redis at {address}; 2 engines share prefill "
        "through it")
    body = {"apiVersion": "orchestration.brix.dev/v1alpha1", "kind": "KVCache", "metadata": {"name": name},
            "spec": {"mode": "distributed", "replicas": 2, "capacity": "256MiB", "eviction": "s3fifo",
                     "metadata": {"redis": {"address": address}}, "cache": {"image": "brix:0.1.0"}}}
    status, seconds = _apply_until_phase(cluster, body, f"kvcaches.orchestration.brix.dev/{name}", "Ready")
    pool_url = status["poolURL"]
    say(f"  Ready ({status['readyReplicas']}/{status['replicas']} servers) {seconds:.1f} s after kubectl apply; "
        f"engines pass --kv-pool={pool_url}")
    engines = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "kv-engines"},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "kv-engines"}},
                        "template": {"metadata": {"labels": {"app": "kv-engines"}},
                                     "spec": {"enableServiceLinks": False, "terminationGracePeriodSeconds": 5,
                                              "containers": [{
                                                  "name": "engine", "image": "brix:0.1.0",
                                                  "args": ["engine-mock", "--host=0.0.0.0", "--port=8000",
                                                           "--model=kv-demo", "--gpu-type=A10",
                                                           "--max-model-len=16384", f"--kv-pool={pool_url}"],
                                                  "readinessProbe": {"httpGet": {"path": "/health", "port": 8000},
                                                                     "periodSeconds": 1}}]}}}}
    cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", stdin=json.dumps(engines))
    cluster.kubectl("-n", NAMESPACE, "rollout", "status", "deployment/kv-engines", "--timeout=90s", timeout=100)
    pods = cluster.get_json("-n", NAMESPACE, "pods", "-l", "app=kv-engines")["items"]
    a, b = (f"http://{p['status']['podIP']}:8000" for p in pods[:2])
    prompt = " ".join(f"clause {i % 97} of the shared contract" for i in range(600))
    for label, url in (("first engine (computes it)", a), ("second engine (from the pool)", b)):
        ttft, pooled = (_engine_metric(url, m) for m in ("vllm:time_to_first_token_seconds_sum",
                                                          "engine_mock_kv_pool_prefill_tokens_total"))
        reply, _ = post_json(f"{url}/v1/completions", {"model": "kv-demo", "prompt": prompt, "max_tokens": 4})
        ttft = _engine_metric(url, "vllm:time_to_first_token_seconds_sum") - ttft
        pooled = _engine_metric(url, "engine_mock_kv_pool_prefill_tokens_total") - pooled
        say(f"  {label} {url}: {reply['usage']['prompt_tokens']} prompt tokens, {pooled:.0f} of them from the pool; "
            f"TTFT {1000 * ttft:.0f} ms (simulated A10)")
        if url == a:  # the first engine writes its full blocks back to the pool asynchronously
            blocks = reply["usage"]["prompt_tokens"] // 16
            cluster.wait_for("the write-back to the pool", lambda n=blocks: _engine_metric(
                a, "engine_mock_kv_pool_blocks_written_total") >= n, 30, 0.1)
    print(cluster.kubectl("-n", NAMESPACE, "get", "kvcaches").stdout, flush=True)
    print(cluster.kubectl("-n", NAMESPACE, "get", "statefulsets,pods", "-l",
                          f"kvcache.orchestration.brix.dev/name={name}").stdout, flush=True)


MIX_MODEL = "llama-mix"
MIX_GRID = [[64], [256, 4096]]
# illustrative profiles (the loop's mechanics, not measurements): short prompts are cheaper per request
# on the A100, long ones on the H100 (8x the throughput for 3x the price)
MIX_PROFILES = {"a100.json": {"gpu": "A100", "cost": 1.0, "tputs": [[2.0, 0.1]], "indexes": MIX_GRID},
                "h100.json": {"gpu": "H100", "cost": 3.0, "tputs": [[4.0, 1.0]], "indexes": MIX_GRID}}


def _optimizer_objects(gateway_ips: list[str]) -> list[dict[str, Any]]:
    nodes = {"apiVersion": "v1", "kind": "List", "items": [   # the optimizer places nothing: a stand-in node
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "unused"},
         "status": {"allocatable": {"nvidia.com/gpu": "1"}}}]}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mix-profiles"},
         "data": {name: json.dumps({**doc, "model": MIX_MODEL}) for name, doc in MIX_PROFILES.items()}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mix-nodes"},
         "data": {"nodes.json": json.dumps(nodes)}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gpu-optimizer"},
         "spec": {"enableServiceLinks": False, "terminationGracePeriodSeconds": 2, "containers": [{
             "name": "optimizer", "image": "brix:0.1.0",
             "args": ["scheduler-ext", "--nodes=/etc/mix-nodes/nodes.json", "--profiles=/etc/mix-profiles",
                      "--host=0.0.0.0", "--port=8890", *(f"--gateway-url=http://{ip}:8888" for ip in gateway_ips),
                      f"--gateway-namespace={NAMESPACE}", "--mix-interval=1", "--mix-down-delay=5"],
             "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8890}, "periodSeconds": 1},
             "volumeMounts": [{"name": "profiles", "mountPath": "/etc/mix-profiles"},
                              {"name": "nodes", "mountPath": "/etc/mix-nodes"}]}],
             "volumes": [{"name": "profiles", "configMap": {"name": "mix-profiles"}},
                         {"name": "nodes", "configMap": {"name": "mix-nodes"}}]}},
    ]


def _mix_autoscaler(gpu_type: str, optimizer_ip: str) -> dict[str, Any]:
    name = f"{MIX_MODEL}-{gpu_type.lower()}"
    return {"apiVersion": "autoscaling.brix.dev/v1alpha1", "kind": "PodAutoscaler", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                     "modelName": MIX_MODEL, "minReplicas": 0, "maxReplicas": 2, "scalingStrategy": "KPA",
                     "scaleToZeroGracePeriodSeconds": 2,
                     "metricsSources": [{"type": "optimizer", "url": f"http://{optimizer_ip}:8890",
                                         "gpuType": gpu_type}]}}


def _mix_replicas(cluster: LocalCluster) -> dict[str, int]:
    return {t: int(cluster.get_json("-n", NAMESPACE, f"deployment/{MIX_MODEL}-{t.lower()}")["spec"]["replicas"])
            for t in GPU_TYPES}


def gpu_mix_loop(cluster: LocalCluster, step: str) -> None:
    say(f"demo {step}: the GPU-mix loop: the optimizer reads the gateway's workload; a PodAutoscaler per GPU type "
        "follows its targets (illustrative profiles: A100 cheaper on short prompts, H100 on long ones)")
    # a 10 s workload window instead of 60 s, so that the mix follows the load within the demo
    cluster.kubectl("-n", NAMESPACE, "set", "env", "deployment/brix-gateway", "BRIX_GATEWAY_WORKLOAD_WINDOW=10")
    cluster.kubectl("-n", NAMESPACE, "rollout", "status", "deployment/brix-gateway", "--timeout=120s", timeout=130)
    ips = cluster.wait_for("the restarted gateway's pods", lambda: _gateway_ips(cluster), 60)
    for obj in _optimizer_objects(ips):   # every gateway replica: the optimizer sums their workloads
        cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", stdin=json.dumps(obj))
    cluster.kubectl("-n", NAMESPACE, "wait", "--for=condition=Ready", "pod/gpu-optimizer", "--timeout=60s",
                    timeout=70)
    optimizer_ip = cluster.get_json("-n", NAMESPACE, "pod/gpu-optimizer")["status"]["podIP"]
    for gpu_type in GPU_TYPES:
        cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", stdin=json.dumps(engine_deployment(MIX_MODEL, gpu_type, 1)))
    for gpu_type in GPU_TYPES:
        cluster.kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{MIX_MODEL}-{gpu_type.lower()}",
                        "--timeout=120s", timeout=130)
        cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", stdin=json.dumps(_mix_autoscaler(gpu_type, optimizer_ip)))
    gateway = f"http://{ips[0]}:8888"
    cluster.wait_for(f"the gateway to serve {MIX_MODEL}", lambda: _try_complete(gateway, "hi"), 60)
    targets = f"http://{optimizer_ip}:8890/v1/optimizer/targets/{NAMESPACE}/{MIX_MODEL}"
    for label, words, rps, want in (("short prompts (200 tokens, 3 req/s)", 200, 3.0, "A100"),
                                    ("long prompts (3,000 tokens, 0.8 req/s)", 3000, 0.8, "H100")):
        started = time.perf_counter()
        with _steady_load(gateway, "abcd" + " abcd" * (words - 1), rps):
            cluster.wait_for(f"{want} engines only", lambda gpu=want: _only_on(cluster, gpu), 150, 1.0)
        with urllib.request.urlopen(targets, timeout=5) as response:
            wanted = {labels["gpu_type"]: int(value) for labels, value in
                      samples(response.read().decode(), "brix_optimizer_target_replicas")}
        say(f"  {label}: optimizer targets {wanted}; deployments {_mix_replicas(cluster)} "
            f"{time.perf_counter() - started:.0f} s after the load began")


def _only_on(cluster: LocalCluster, gpu_type: str) -> bool:
    """Whether the mix model's engines run on `gpu_type` alone."""
    replicas = _mix_replicas(cluster)
    return replicas[gpu_type] >= 1 and all(n == 0 for t, n in replicas.items() if t != gpu_type)


@contextlib.contextmanager
def _steady_load(gateway: str, prompt: str, rps: float) -> Iterator[None]:
    """Completions of `prompt` through the gateway, one every 1/rps s, for the length of the block."""
    done = threading.Event()

    def load() -> None:
        while not done.is_set():
            _try_complete(gateway, prompt)
            done.wait(1.0 / rps)
    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(60)


def _try_complete(gateway: str, prompt: str) -> dict[str, Any] | None:
    try:
        reply, _ = post_json(f"{gateway}/v1/completions", {"model": MIX_MODEL, "prompt": prompt, "max_tokens": 20})
        return reply
    except OSError:   # 404 until the gateway knows the model; a pod going away mid-request
        return None
