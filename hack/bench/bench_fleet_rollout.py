"""RayClusterFleet rollout benchmark: 50 clusters rolled from one template to another with maxSurge 25 %
and maxUnavailable 0, against the same rollout of a 50-pod Deployment by kube-controller-manager.

Both on one local control plane (brix/kube/cluster.py, without deploy/local: 3 nodes, no extender).
The same readiness delays on both sides: the k-th RayCluster to appear turns ready after the k-th
draw of uniform(2, 10) s from Random(seed) (tests/controllers/fake_kuberay.py plays KubeRay), and the
k-th pod the node agent starts turns Ready after the k-th draw of the same generator (`brix
node-agent --ready-delay 2:10 --ready-seed SEED`; the pods' container runs no process). Each side
first creates its 50 (draws 0-49), then every rollout creates 50 more, so rollout r of both sides
sees the same delays in the same order of creation.

A rollout's time runs from the template change to the status saying it is complete (as `kubectl
rollout status`: updated = available = replicas = 50 and the new generation observed). The peak is
the most clusters (pods) that existed at once during it; the bound is 50 + maxSurge 13 = 63.
`brix controllers` runs as a process (one namespace, no leader election, the admin kubeconfig).
Rounds alternate which side goes first; the ratio is the median over rounds.

    .venv/bin/python hack/bench/bench_fleet_rollout.py [--replicas 50 --rounds 3 --seed 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from brix import procs  # noqa: E402
from brix.kube import manifests  # noqa: E402
from brix.kube.cluster import ClusterSettings, LocalCluster, start  # noqa: E402

STRATEGY = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}


def deployment(replicas: int, version: int) -> dict[str, Any]:
    labels = {"app": "bench-pods"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench-pods"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "strategy": STRATEGY,
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "engine", "image": f"vllm/vllm-openai:v{version}"}],
                                           "terminationGracePeriodSeconds": 0, "enableServiceLinks": False}}}}


class PodCounter:
    """Pods of the Deployment that exist at once (a watch), and the peak since the last reset."""

    def __init__(self, api: Any, namespace: str) -> None:
        from kubernetes import client, watch
        self.core, self.namespace, self.w = client.CoreV1Api(api), namespace, watch.Watch()
        self.names: set[str] = set()
        self.peak = 0
        self.lock = threading.Lock()
        listed = self.core.list_namespaced_pod(namespace, label_selector="app=bench-pods")
        self.names = {p.metadata.name for p in listed.items}
        self.thread = threading.Thread(target=self._run, args=(listed.metadata.resource_version,), daemon=True)
        self.thread.start()

    def _run(self, rv: str) -> None:
        while True:
            try:
                for ev in self.w.stream(self.core.list_namespaced_pod, self.namespace, label_selector="app=bench-pods",
                                        resource_version=rv, timeout_seconds=60):
                    obj = ev["object"]
                    rv = obj.metadata.resource_version
                    with self.lock:
                        if ev["type"] == "DELETED":
                            self.names.discard(obj.metadata.name)
                        else:
                            self.names.add(obj.metadata.name)
                        self.peak = max(self.peak, len(self.names))
            except Exception:  # noqa: BLE001 - a benchmark helper: start the watch again
                time.sleep(0.2)

    def reset(self) -> None:
        with self.lock:
            self.peak = len(self.names)

    def stop(self) -> None:
        self.w.stop()


def wait_complete(get: Any, replicas: int, timeout: float = 600.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        obj = get()
        st = obj.get("status") or {}
        if (st.get("updatedReplicas") == replicas and st.get("availableReplicas") == replicas
                and st.get("replicas") == replicas
                and int(st.get("observedGeneration") or 0) >= int(obj["metadata"]["generation"])):
            return time.monotonic()
        time.sleep(0.1)
    raise TimeoutError(f"not complete after {timeout} s: {json.dumps(obj.get('status'))[:400]}")


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from kubernetes import client, config

    from tests.controllers.fake_kuberay import FakeKubeRay, seeded_delays
    from tests.controllers.fleets import FleetReader, fleet_body

    cluster: LocalCluster = start(ClusterSettings(
        workdir=workdir, nodes=3, apply_deploy=False, timeout=240,
        agent_args=(f"--ready-delay={args.low:g}:{args.high:g}", f"--ready-seed={args.seed}")))
    controllers = kuberay = pods = None
    ns = "bench-fleet"
    try:
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        cluster.kubectl("create", "namespace", ns)
        cluster.wait_for("the default ServiceAccount", lambda: cluster.kubectl(
            "-n", ns, "get", "serviceaccount", "default", check=False).returncode == 0, 60, 0.2)
        cluster.kubectl("apply", "-k", str(manifests.DEPLOY / "crds"))
        cluster.kubectl("apply", "-k", str(manifests.DEPLOY / "crds" / "kuberay"))
        for crd in ("rayclusterfleets.orchestration.brix.dev", "rayclusters.ray.io"):
            cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
        port = procs.free_port()
        controllers = procs.start("controllers", procs.brix_argv(
            "controllers", "--namespace", ns, "--no-leader-election", "--kubeconfig", str(cluster.kubeconfig),
            "--host", "127.0.0.1", "--metrics-port", str(port)), workdir / "controllers.log",
            ready_url=f"http://127.0.0.1:{port}/readyz")
        controllers.wait_ready(60)
        kuberay = FakeKubeRay(client.ApiClient(api.configuration), ns, delay=seeded_delays(args.seed, args.low, args.high))
        kuberay.start()
        fleets = FleetReader(api, ns)
        apps = client.AppsV1Api(api)
        pods = PodCounter(api, ns)
        n = args.replicas

        # both sides at 50, all ready (draws 0..49 on each side)
        t = time.monotonic()
        fleets.create(fleet_body("bench", replicas=n, image="v0", workers=1, strategy=STRATEGY))
        fleet_up = wait_complete(lambda: fleets.fleet("bench"), n) - t
        t = time.monotonic()
        apps.create_namespaced_deployment(ns, deployment(n, 0))
        deploy_up = wait_complete(lambda: _deployment(apps, ns), n) - t

        def roll_fleet(version: int) -> tuple[float, int]:
            kuberay.reset_peak()
            template = fleets.fleet("bench")["spec"]["template"]
            template["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = f"rayproject/ray:v{version}"
            t0 = time.monotonic()
            fleets.patch({"spec": {"template": template}}, name="bench")
            done = wait_complete(lambda: fleets.fleet("bench"), n)
            return done - t0, kuberay.peak

        def roll_deployment(version: int) -> tuple[float, int]:
            pods.reset()
            t0 = time.monotonic()
            apps.patch_namespaced_deployment("bench-pods", ns, {"spec": {"template": {"spec": {"containers": [
                {"name": "engine", "image": f"vllm/vllm-openai:v{version}"}]}}}})
            done = wait_complete(lambda: _deployment(apps, ns), n)
            return done - t0, pods.peak

        rounds = []
        for r in range(1, args.rounds + 1):
            order = [("fleet", roll_fleet), ("deployment", roll_deployment)]
            if r % 2 == 0:
                order.reverse()
            got = {}
            for side, roll in order:
                secs, peak = roll(r)
                got[side] = {"seconds": round(secs, 2), "peak": peak}
                print(json.dumps({"round": r, "side": side, **got[side]}), flush=True)
            got["ratio"] = round(got["fleet"]["seconds"] / got["deployment"]["seconds"], 3)
            rounds.append(got)
        return {"replicas": n, "surge_bound": n + -(-n * 25 // 100), "delays": f"uniform({args.low:g}, {args.high:g})",
                "seed": args.seed, "initial_fleet_s": round(fleet_up, 2), "initial_deployment_s": round(deploy_up, 2),
                "rounds": rounds, "median_ratio": statistics.median(r["ratio"] for r in rounds),
                "max_fleet_peak": max(r["fleet"]["peak"] for r in rounds),
                "max_deployment_peak": max(r["deployment"]["peak"] for r in rounds),
                "kuberay_errors": kuberay.errors[-3:], "control_plane_s": cluster.timings.get("total_s")}
    finally:
        if pods is not None:
            pods.stop()
        if kuberay is not None:
            kuberay.stop()
        if controllers is not None:
            controllers.stop(timeout=20)
        cluster.stop()


def _camel(d: dict[str, Any]) -> dict[str, Any]:
    return {"".join(w if i == 0 else w.capitalize() for i, w in enumerate(k.split("_"))): v for k, v in d.items()}


def _deployment(apps: Any, ns: str) -> dict[str, Any]:
    d = apps.read_namespaced_deployment("bench-pods", ns)
    return {"metadata": {"generation": d.metadata.generation}, "status": _camel(d.status.to_dict())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--low", type=float, default=2.0, help="shortest readiness delay, seconds")
    ap.add_argument("--high", type=float, default=10.0, help="longest readiness delay, seconds")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        result = run(args, Path(tmp))
    print(json.dumps(result, indent=1))
    ok = result["median_ratio"] <= 1.2 and result["max_fleet_peak"] <= result["surge_bound"]
    print(f"fleet / Deployment rollout time: median {result['median_ratio']:.2f}x (goal <= 1.2x); peak clusters "
          f"{result['max_fleet_peak']} (bound {result['surge_bound']}): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
