"""Pods scheduled per second by real kube-scheduler, with the Brix extender and without it, side by
side on the same simulated cluster size: the local control plane (hack/kube binaries), the node
agent playing N GPU nodes (static GPUs, Leases renewed; pods bound to them are left alone, as
kube-scheduler's own scheduler_perf does with nodes that have no kubelet, so only scheduling is
measured), and P pods of one GPU each created through the API.

    .venv/bin/python hack/bench/bench_kube_scheduling.py [--nodes 1000] [--pods 2000] [--scheduler-qps 500]

One cluster serves every run. Each round queues the pods while kube-scheduler is stopped, then
times it from its start to the last binding (pods / that time; creation is not measured), once
with the extender and once without (kube-scheduler's configuration minus its extenders), the
order alternating between rounds; the median ratio is the result. kube-scheduler's client QPS is raised
the same way for both runs (its default of 50 caps the binding calls of the baseline). Extender
call latency (filter, prioritize, bind) is the extender's own histogram
(brix_scheduler_ext_request_seconds, scraped before and after each run, quantiles interpolated in
its buckets as histogram_quantile does), server side: each call's time from its first byte read to
its response built.
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
import urllib.request
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


async def delete_all(kubeconfig: Path) -> None:
    """Remove the previous run's pods at once (no kubelet runs them, so no grace period) and wait
    until the list is empty."""
    api = KubeRest.from_kubeconfig(kubeconfig, connections=4)
    try:
        await api.delete("/api/v1/namespaces/default/pods", {"gracePeriodSeconds": 0})
        while (await api.get("/api/v1/namespaces/default/pods", params={"limit": "1"}))["items"]:
            await asyncio.sleep(0.2)
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


def run(args: argparse.Namespace, workdir: Path) -> dict[str, list[dict]]:
    """One cluster (control plane, node agent, extender); each round queues the pods, times
    kube-scheduler with the extender and without it (alternating which goes first), and deletes
    the pods between runs."""
    extender_port = procs.free_port()
    plane = ControlPlane(ControlPlaneSettings(
        workdir=workdir / "control-plane", scheduler_config=manifests.SCHEDULER_CONFIG,
        extender_url=f"http://127.0.0.1:{extender_port}", scheduler_qps=args.scheduler_qps))
    started: list[procs.ManagedProcess] = []
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    try:
        plane.start()
        health = procs.free_port()
        agent = procs.start("node-agent", procs.brix_argv(
            "node-agent", f"--kubeconfig={plane.kubeconfig_for(pki.NODE_AGENT)}", f"--nodes={args.nodes}",
            "--gpus-per-node=4", f"--nodes-root={workdir / 'nodes'}", f"--workdir={workdir / 'agent'}",
            "--no-pods", "--renew-interval=20", f"--health-port={health}"),
            workdir / "node-agent.log", ready_url=f"http://127.0.0.1:{health}/readyz")
        started.append(agent)
        agent.wait_ready(300)
        while not nodes_schedulable(json.loads(manifests.kubectl(plane.kubeconfig, "get", "nodes", "-o", "json")
                                               .stdout)["items"], args.nodes):
            time.sleep(0.5)  # new nodes carry the not-ready taint until the node lifecycle controller lifts it
        extender = procs.start("scheduler-ext", procs.brix_argv(
            "scheduler-ext", "--kubernetes", f"--kubeconfig={plane.kubeconfig}", "--host=127.0.0.1",
            f"--port={extender_port}", f"--filter-keep={args.filter_keep}"), workdir / "extender.log", ready_url=f"http://127.0.0.1:{extender_port}/readyz")
        started.append(extender)
        extender.wait_ready(120)
        for round_ in range(args.rounds):
            modes = tuple(args.modes.split(","))
            order = modes[::-1] if round_ % 2 else modes
            for mode in order:
                plane.stop_scheduler()
                asyncio.run(delete_all(plane.kubeconfig))
                created_s = asyncio.run(create(plane.kubeconfig, args.pods))
                calls_before = extender_histograms(extender_port)
                pids = {**{p.name: p.pid for p in started}, **{n: p.pid for n, p in plane.processes.items()}}
                before = cpu_seconds(pids)
                t0 = time.monotonic()
                plane.start_scheduler(extenders=mode == "extender",
                                      feature_gates={"OpportunisticBatching": False} if mode == "unbatched" else None)
                result = {"created_s": created_s,
                          **asyncio.run(wait_bound(plane.kubeconfig, args.pods, t0, args.timeout))}
                pids["kube-scheduler"] = plane.processes["kube-scheduler"].pid
                after = cpu_seconds(pids)
                result["cpu_s"] = {k: round(v - before.get(k, 0.0), 1) for k, v in after.items()
                                   if k != "kube-scheduler"}
                result["cpu_s"]["kube-scheduler"] = round(after.get("kube-scheduler", 0.0), 1)
                if mode == "extender":
                    result["extender_ms"] = latency_quantiles(calls_before, extender_histograms(extender_port))
                print(f"round {round_ + 1} {mode}: {json.dumps(result)}", flush=True)
                results[mode].append(result)
        results["rss_mib"] = [plane.rss_mib()]  # type: ignore[list-item]
        return results
    finally:
        for proc in reversed(started):
            proc.stop()
        plane.stop()


# kube-scheduler alone; with the extender; alone without OpportunisticBatching (beta, on by default
# since 1.35: pods of one signature reuse the last pod's filter and score results), which
# kube-scheduler turns off for a profile with extenders ("Disabling signatures for profile because
# it has extenders configured"), so the third run shows what that batching is worth by itself.
MODES = ("alone", "extender", "unbatched")


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


def extender_histograms(port: int) -> dict[str, dict[float, float]]:
    """verb -> {bucket upper bound: cumulative count} of brix_scheduler_ext_request_seconds."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, dict[float, float]] = {}
    for m in re.finditer(r'^brix_scheduler_ext_request_seconds_bucket\{le="([^"]+)",verb="(\w+)"\} (\S+)$', text, re.M):
        out.setdefault(m.group(2), {})[float(m.group(1))] = float(m.group(3))
    return out


def latency_quantiles(before: dict[str, dict[float, float]],
                      after: dict[str, dict[float, float]]) -> dict[str, dict[str, float]]:
    """p50 / p99 in ms of the calls between two scrapes, interpolated inside histogram buckets as
    Prometheus' histogram_quantile does."""
    out = {}
    for verb, buckets in after.items():
        counts = sorted((le, n - before.get(verb, {}).get(le, 0.0)) for le, n in buckets.items())
        total = counts[-1][1]
        if total <= 0:
            continue
        result = {"calls": total}
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            rank, lower, below = q * total, 0.0, 0.0
            for le, n in counts:
                if n >= rank:
                    upper = le if le != float("inf") else lower
                    result[name] = round(1000 * (lower + (upper - lower) * (rank - below) / max(n - below, 1e-9)), 3)
                    break
                lower, below = le, n
        out[verb] = result
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--scheduler-qps", type=float, default=500.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs on one cluster")
    parser.add_argument("--modes", default=",".join(MODES), help=f"which runs, in order (of {', '.join(MODES)})")
    parser.add_argument("--filter-keep", type=int, default=1,
                        help="the extender's --filter-keep (deploy/ runs it with 1; 0: every fitting node)")
    parser.add_argument("--keep", type=Path, help="keep the cluster's logs in this folder (default: a temporary one)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the clusters by PID on SIGTERM too
    try:
        binaries.find()
    except binaries.MissingBinaries as exc:
        print(f"bench_kube_scheduling: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="brix-bench-kube-") as tmp:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = str(args.keep)
        print(f"== {args.nodes} nodes, {args.pods} one-GPU pods, {args.rounds} rounds", flush=True)
        results = run(args, Path(tmp))
    rates = {mode: [r["pods_per_s"] for r in results[mode]] for mode in MODES if results.get(mode)}
    names = {"alone": "kube-scheduler alone", "extender": "with the Brix extender",
             "unbatched": "alone without OpportunisticBatching"}
    print("\npods/s per round: " + "; ".join(f"{names[m]} {', '.join(f'{x:.1f}' for x in v)}" for m, v in rates.items()))
    for base, label in (("alone", "(goal >= 0.5x)"),
                        ("unbatched", "(the batching kube-scheduler turns off for profiles with extenders)")):
        if "extender" in rates and base in rates:
            ratios = [e / a for e, a in zip(rates["extender"], rates[base], strict=True)]
            print(f"with the extender / {names[base]}: {', '.join(f'{r:.2f}x' for r in ratios)}; "
                  f"median {statistics.median(ratios):.2f}x {label}")
    for verb in ("filter", "prioritize", "bind"):
        p50s = [r["extender_ms"][verb]["p50"] for r in results["extender"] if verb in r.get("extender_ms", {})]
        p99s = [r["extender_ms"][verb]["p99"] for r in results["extender"] if verb in r.get("extender_ms", {})]
        if p50s:
            print(f"  extender {verb:<10} p50 {min(p50s):.2f}-{max(p50s):.2f} ms  p99 {min(p99s):.2f}-{max(p99s):.2f} ms")
    print(f"  RSS MiB at the end: {json.dumps(results['rss_mib'][0])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
