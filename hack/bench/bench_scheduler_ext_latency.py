"""Filter + prioritize latency of `brix scheduler-ext` over HTTP, for one pod at 500 / 5,000 / 20,000 nodes.

Ours: nodeCacheCapable mode (NodeNames only, answered from the extender's precomputed node cache).
Baseline: the same extender fed full v1 NodeLists (nodeCacheCapable: false), which is what an
extender without its own cache must parse on every call. Goal: p99 < 5 ms at 5,000 nodes.

    .venv/bin/python hack/bench/bench_scheduler_ext_latency.py [--sizes 500,5000,20000] [--iterations 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from brix import procs  # noqa: E402

PRODUCTS = ["NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3", "NVIDIA-L4", "NVIDIA-A10G"]


def make_cluster(n: int, rnd: random.Random) -> tuple[list[dict], list[dict]]:
    nodes, pods = [], []
    for i in range(n):
        gpus = rnd.choice([4, 8, 8])
        name = f"node-{i:05d}"
        nodes.append({"apiVersion": "v1", "kind": "Node",
                      "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": rnd.choice(PRODUCTS),
                                                            "nvidia.com/gpu.memory": "81920",
                                                            "kubernetes.io/hostname": name}},
                      "status": {"capacity": {"cpu": "96", "memory": "1Ti", "nvidia.com/gpu": str(gpus)},
                                 "allocatable": {"cpu": "95", "memory": "1000Gi", "nvidia.com/gpu": str(gpus)}}})
        used = rnd.randint(0, gpus)
        if used:
            pods.append({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": f"busy-{i}", "namespace": "default", "uid": f"busy-{i}"},
                         "spec": {"nodeName": name, "containers": [
                             {"name": "c", "resources": {"limits": {"nvidia.com/gpu": str(used)}}}]},
                         "status": {"phase": "Running"}})
    return nodes, pods


POD = {"metadata": {"name": "engine-0", "namespace": "default", "uid": "bench-pod",
                    "labels": {"model.brix.dev/name": "llama"}},
       "spec": {"priority": 0, "containers": [{"name": "engine", "image": "vllm/vllm-openai",
                                               "resources": {"requests": {"cpu": "4", "memory": "32Gi"},
                                                             "limits": {"nvidia.com/gpu": "2"}}}]}}


def post(conn: http.client.HTTPConnection, path: str, body: bytes) -> bytes:
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{path}: HTTP {resp.status}: {data[:200]!r}")
    return data


def compact(doc: object) -> bytes:
    """kube-scheduler's encoding: Go's json.Marshal, no spaces, fields in struct order."""
    return json.dumps(doc, separators=(",", ":")).encode()


def measure(port: int, nodes: list[dict], iterations: int, cache_mode: bool) -> dict[str, float]:
    """Time the two round trips kube-scheduler makes per pod (bodies encoded beforehand, as the
    scheduler's own encoding is not the extender's cost)."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    names = [n["metadata"]["name"] for n in nodes]
    if cache_mode:
        filter_body = compact({"Pod": POD, "Nodes": None, "NodeNames": names})
    else:
        filter_body = compact({"Pod": POD, "Nodes": {"metadata": {}, "items": nodes}, "NodeNames": None})
    result = json.loads(post(conn, "/filter", filter_body))
    if cache_mode:
        prio_body = compact({"Pod": POD, "Nodes": None, "NodeNames": result["NodeNames"]})
    else:
        prio_body = compact({"Pod": POD, "Nodes": result["Nodes"], "NodeNames": None})
    samples = []
    for i in range(iterations + 3):
        started = time.perf_counter()
        post(conn, "/filter", filter_body)
        post(conn, "/prioritize", prio_body)
        if i >= 3:  # warm-up
            samples.append((time.perf_counter() - started) * 1000.0)
    conn.close()
    samples.sort()
    return {"p50": statistics.median(samples), "p99": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
            "per_s": 1000.0 / statistics.mean(samples), "body_kb": len(filter_body) / 1024,
            "passing": len(result["NodeNames"] if cache_mode else result["Nodes"]["items"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="500,5000,20000")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--baseline-iterations", type=int, default=20)
    args = parser.parse_args()
    rnd = random.Random(7)
    print("filter+prioritize round trips for one pod (2 GPUs) over HTTP on loopback, kube-scheduler's compact JSON")
    print(f"{'nodes':>6} | {'mode':<28} | {'p50 ms':>7} | {'p99 ms':>7} | {'pairs/s':>7} | {'filter body':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            nodes, pods = make_cluster(size, rnd)
            path = Path(tmp) / f"nodes-{size}.yaml"  # JSON is YAML
            path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes + pods}))
            port = procs.free_port()
            proc = procs.start("scheduler-ext", procs.brix_argv("scheduler-ext", "--nodes", str(path), "--port",
                                                                str(port), "--log-level", "warning"),
                               Path(tmp) / f"ext-{size}.log", ready_url=f"http://127.0.0.1:{port}/readyz")
            try:
                proc.wait_ready(120)
                ours = measure(port, nodes, args.iterations, True)
                base = measure(port, nodes, args.baseline_iterations, False)
            finally:
                proc.stop()
            for label, r in (("NodeNames + node cache (ours)", ours), ("full Nodes (no cache)", base)):
                print(f"{size:>6} | {label:<28} | {r['p50']:7.2f} | {r['p99']:7.2f} | {r['per_s']:7.0f} | "
                      f"{r['body_kb']:8.0f} KB")
            goal = " (goal p99 < 5 ms)" if size == 5000 else ""
            print(f"{'':>6} | speed-up p50 {base['p50'] / ours['p50']:.1f}x{goal}")


if __name__ == "__main__":
    main()
