"""Pods scheduled per second by real kube-scheduler, with the Brix extender and without it, side by
side on the same simulated cluster size: the local control plane (hack/kube binaries), the node
agent playing N GPU nodes (static GPUs, no container processes, so only scheduling is measured),
and P pods of one GPU each created through the API.

    .venv/bin/python hack/bench/bench_kube_scheduling.py [--nodes 1000] [--pods 2000] [--scheduler-qps 500]

The pods are queued while kube-scheduler is stopped; throughput = pods / (kube-scheduler started
-> last pod bound), so pod creation is not measured. kube-scheduler's client QPS is raised
the same way for both runs (its default of 50 caps the binding calls of the baseline). Extender
call latency (filter, prioritize, bind) is what the extender logs per call, server side: each call's
time from its first byte read to its response built.
Goal: the extender keeps >= 0.5x of kube-scheduler's own throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from brix import procs  # noqa: E402
from brix.kube import binaries, manifests, pki  # noqa: E402
from brix.kube.cluster import nodes_schedulable  # noqa: E402
from brix.kube.controlplane import ControlPlane, ControlPlaneSettings  # noqa: E402
from brix.kube.rest import KubeRest  # noqa: E402


def pod(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"bench-{i:05d}", "labels": {"model.brix.dev/name": "bench"}},
            "spec": {"automountServiceAccountToken": False, "enableServiceLinks": False,
                     "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "engine", "image": "brix:0.1.0", "args": ["version"],
                                     "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}


async def create(kubeconfig: Path, pods: int) -> float:
    api = KubeRest.from_kubeconfig(kubeconfig, connections=32)
    try:
        while await api.get("/api/v1/namespaces/default/serviceaccounts/default", ok_missing=True) is None:
            await asyncio.sleep(0.2)  # the controller manager creates it; pods are refused until then
        t0 = time.monotonic()
        gate = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with gate:
                await api.post("/api/v1/namespaces/default/pods", pod(i))
        await asyncio.gather(*(one(i) for i in range(pods)))
        return time.monotonic() - t0
    finally:
        await api.close()


async def wait_bound(kubeconfig: Path, pods: int, t0: float, timeout: float) -> dict[str, float]:
    api = KubeRest.from_kubeconfig(kubeconfig, connections=4)
    try:
        bound = 0
        while time.monotonic() - t0 < timeout:
            listing = await api.get("/api/v1/namespaces/default/pods", params={"fieldSelector": "spec.nodeName!="})
            bound = len(listing["items"])
            if bound >= pods:
                break
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - t0
        return {"schedule_s": elapsed, "bound": bound, "pods_per_s": bound / elapsed}
    finally:
        await api.close()


def run(mode: str, args: argparse.Namespace, workdir: Path) -> dict:
    with_extender = mode == "extender"
    extender_port = procs.free_port()
    plane = ControlPlane(ControlPlaneSettings(
        workdir=workdir / "control-plane",
        scheduler_config=manifests.SCHEDULER_CONFIG if with_extender else None,
        extender_url=f"http://127.0.0.1:{extender_port}" if with_extender else None,
        scheduler_qps=args.scheduler_qps))
    started: list[procs.ManagedProcess] = []
    try:
        plane.start()
        health = procs.free_port()
        agent = procs.start("node-agent", procs.brix_argv(
            "node-agent", f"--kubeconfig={plane.kubeconfig_for(pki.NODE_AGENT)}", f"--nodes={args.nodes}",
            "--gpus-per-node=4", f"--nodes-root={workdir / 'nodes'}", f"--workdir={workdir / 'agent'}",
            "--no-processes", "--renew-interval=20", f"--health-port={health}"),
            workdir / "node-agent.log", ready_url=f"http://127.0.0.1:{health}/readyz")
        started.append(agent)
        agent.wait_ready(300)
        while not nodes_schedulable(json.loads(manifests.kubectl(plane.kubeconfig, "get", "nodes", "-o", "json")
                                               .stdout)["items"], args.nodes):
            time.sleep(0.5)  # new nodes carry the not-ready taint until the node lifecycle controller lifts it
        extender = None
        if with_extender:
            extender = procs.start("scheduler-ext", procs.brix_argv(
                "scheduler-ext", "--kubernetes", f"--kubeconfig={plane.kubeconfig}", "--host=127.0.0.1",
                f"--port={extender_port}"), workdir / "extender.log",
                ready_url=f"http://127.0.0.1:{extender_port}/readyz")
            started.append(extender)
            extender.wait_ready(120)
        # queue every pod first with kube-scheduler stopped, then time it from its start (healthy
        # includes its informers' initial list) to the last binding: only scheduling is measured
        plane.stop_scheduler()
        created_s = asyncio.run(create(plane.kubeconfig, args.pods))
        t0 = time.monotonic()
        before = cpu_seconds({**{p.name: p.pid for p in started}, **{n: p.pid for n, p in plane.processes.items()}})
        plane.start_scheduler()
        result = {"created_s": created_s, **asyncio.run(wait_bound(plane.kubeconfig, args.pods, t0, args.timeout))}
        after = cpu_seconds({**{p.name: p.pid for p in started}, **{n: p.pid for n, p in plane.processes.items()}})
        result["cpu_s_while_scheduling"] = {k: round(v - before.get(k, 0.0), 1) for k, v in after.items()}
        result["rss_mib"] = plane.rss_mib()
        if extender is not None:
            result["extender_ms"] = extender_latencies(extender.log_path)
        return result
    finally:
        for proc in reversed(started):
            proc.stop()
        plane.stop()


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """user + system CPU seconds of each process so far, from /proc/<pid>/stat."""
    out = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def extender_latencies(log: Path) -> dict[str, dict[str, float]]:
    calls: dict[str, list[float]] = {}
    for line in log.read_text().splitlines():
        if "extender call" not in line:
            continue
        verb, ms = re.search(r"verb=(\w+)", line), re.search(r"ms=([\d.]+)", line)
        if verb and ms:
            calls.setdefault(verb.group(1), []).append(float(ms.group(1)))
    out = {}
    for verb, values in calls.items():
        values.sort()
        out[verb] = {"calls": len(values), "p50": statistics.median(values),
                     "p99": values[min(len(values) - 1, int(0.99 * len(values)))]}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--scheduler-qps", type=float, default=500.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the clusters by PID on SIGTERM too
    try:
        binaries.find()
    except binaries.MissingBinaries as exc:
        print(f"bench_kube_scheduling: {exc}", file=sys.stderr)
        return 2
    results = {}
    with tempfile.TemporaryDirectory(prefix="brix-bench-kube-") as tmp:
        for mode in ("alone", "extender"):
            print(f"== kube-scheduler {mode}: {args.nodes} nodes, {args.pods} one-GPU pods", flush=True)
            results[mode] = run(mode, args, Path(tmp) / mode)
            print(json.dumps(results[mode], indent=1), flush=True)
    ratio = results["extender"]["pods_per_s"] / results["alone"]["pods_per_s"]
    print(f"\npods/s: kube-scheduler alone {results['alone']['pods_per_s']:.1f}, with the Brix extender "
          f"{results['extender']['pods_per_s']:.1f} -> {ratio:.2f}x (goal >= 0.5x)")
    for verb, stats in results["extender"].get("extender_ms", {}).items():
        print(f"  extender {verb:<10} {stats['calls']:>5} calls  p50 {stats['p50']:.2f} ms  p99 {stats['p99']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
