"""Which processes `brix up` starts, in dependency order, and how it knows each is ready.

  1. per node: an NVML mock config (`brix nvml-mock init`), a mock kubelet (in this process,
     brix.mock_kubelet) and `brix device-plugin` registering with it;
  2. `brix scheduler-ext` reading the nodes the kubelets report (allocatable = healthy GPUs);
  3. `brix engine-mock` replicas;
  4. `brix gateway` in front of the engines.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from brix import procs
from brix.mock_kubelet import MockKubelet
from brix.node_agent.agent import GFD_PRODUCTS, GPU_RESOURCE
from brix.up_plan import Plan, UpSettings, say

SHARED_PROFILES = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "profiles"

T = TypeVar("T")


class KubeletHost:
    """Runs the nodes' mock kubelets on an asyncio loop in a background thread."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mock-kubelets", daemon=True)
        self.thread.start()
        self.kubelets: dict[str, MockKubelet] = {}
        self._write_lock = threading.Lock()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        async def start_all() -> None:
            for node in self.plan.nodes:
                product, memory = GFD_PRODUCTS.get(node.gpu_type, (node.gpu_type, "0"))
                kubelet = MockKubelet(node.name, node.kubelet_dir, labels={
                    "nvidia.com/gpu.product": product, "nvidia.com/gpu.memory": memory,
                    "nvidia.com/gpu.count": str(node.gpus)}, on_change=lambda _k: self.write_nodes_file())
                await kubelet.start()
                self.kubelets[node.name] = kubelet
        self.call(start_all())

    def stop(self) -> None:
        async def stop_all() -> None:
            for kubelet in self.kubelets.values():
                await kubelet.stop()
        try:
            self.call(stop_all(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)

    def devices(self, node: str) -> dict[str, str]:
        plugin = self.kubelets[node].plugins.get(GPU_RESOURCE)
        return dict(plugin.devices) if plugin else {}

    def wait_devices(self, node: str, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.devices(node)) >= count:
                return
            time.sleep(0.05)
        raise procs.ProcessFailed(f"{node}: the device plugin did not report {count} GPUs within {timeout:.0f}s")

    def write_nodes_file(self) -> None:
        """nodes.yaml for `brix scheduler-ext --nodes`: one v1 List, replaced atomically."""
        with self._write_lock:
            doc = {"apiVersion": "v1", "kind": "List",
                   "items": [k.node_object() for k in self.kubelets.values()]}
            tmp = self.plan.nodes_file.with_suffix(".tmp")
            tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
            tmp.replace(self.plan.nodes_file)


@dataclass
class Cluster:
    """The running processes, stopped in reverse start order."""

    plan: Plan
    processes: list[procs.ManagedProcess] = field(default_factory=list)
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    kubelets: KubeletHost | None = None   # once the nodes run

    def start(self, name: str, brix_args: list[str], *, ready_url: str | None = None,
              ready_socket: str | None = None, timeout: float = 60.0) -> procs.ManagedProcess:
        proc = procs.start(name, procs.brix_argv(*brix_args), self.plan.logs / f"{name}.log",
                           ready_url=ready_url, ready_socket=ready_socket)
        self.processes.append(proc)
        proc.wait_ready(timeout)
        say(f"started {name:<22} pid {proc.pid:<7} {ready_url or ready_socket or ''}")
        return proc

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        for callback in reversed(self.on_stop):
            callback()
        self.on_stop.clear()

    def running_kubelets(self) -> KubeletHost:
        if self.kubelets is None:
            raise RuntimeError("the mock kubelets are not running (start_all has not run)")
        return self.kubelets

    def check_alive(self) -> None:
        for proc in self.processes:
            if not proc.alive():
                raise procs.ProcessFailed(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")


def run_brix(*args: str) -> str:
    result = subprocess.run(procs.brix_argv(*args), capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise procs.ProcessFailed(f"brix {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def start_all(cluster: Cluster, settings: UpSettings) -> KubeletHost:
    plan = cluster.plan
    kubelets = KubeletHost(plan)
    cluster.on_stop.append(kubelets.stop)
    kubelets.start()
    for node in plan.nodes:
        node.mock_config.parent.mkdir(parents=True, exist_ok=True)
        run_brix("nvml-mock", "init", "--config", str(node.mock_config), "--gpus", str(node.gpus),
                 "--model", node.gpu_type, "--node", node.name, "--force")
        cluster.start(f"device-plugin@{node.name}", [
            "device-plugin", "--resource", GPU_RESOURCE, "--kubelet-dir", str(node.kubelet_dir),
            "--mock-config", str(node.mock_config), "--metrics-host", "127.0.0.1",
            "--metrics-port", str(node.metrics_port), "--health-quiet-period", "5"],
            ready_url=f"http://127.0.0.1:{node.metrics_port}/healthz")
        kubelets.wait_devices(node.name, node.gpus)
    kubelets.write_nodes_file()

    scheduler_args = ["scheduler-ext", "--port", str(plan.scheduler_port), "--nodes", str(plan.nodes_file)]
    if SHARED_PROFILES.is_dir():
        scheduler_args += ["--profiles", str(SHARED_PROFILES)]
    cluster.start("scheduler-ext", scheduler_args, ready_url=f"{plan.scheduler_url}/healthz")

    for engine in plan.engines:
        cluster.start(engine.name, [
            "engine-mock", "--port", str(engine.port), "--model", settings.model, "--gpu-type", engine.gpu_type,
            "--kv-blocks", "2048", "--seed", engine.name.rsplit("-", 1)[1]],
            ready_url=f"{engine.url}/health")

    cluster.start("gateway", [
        "gateway", "--port", str(plan.gateway_port), "--endpoints", ",".join(e.url for e in plan.engines)],
        ready_url=f"{plan.gateway_url}/readyz")
    cluster.kubelets = kubelets
    return kubelets


def print_endpoints(plan: Plan) -> None:
    rows = [("what", "where")]
    for node in plan.nodes:
        rows.append((f"{node.name} ({node.gpus}x {node.gpu_type})",
                     f"mock NVML {node.mock_config}; kubelet {node.kubelet_dir}/kubelet.sock; "
                     f"plugin metrics http://127.0.0.1:{node.metrics_port}/metrics"))
    rows.append(("scheduler extender", f"{plan.scheduler_url}/filter (nodes from {plan.nodes_file})"))
    for engine in plan.engines:
        rows.append((f"{engine.name} ({engine.gpu_type})", f"{engine.url}/v1 (metrics {engine.url}/metrics)"))
    rows.append(("gateway (OpenAI API)", f"{plan.gateway_url}/v1"))
    width = max(len(r[0]) for r in rows)
    say("cluster is up:")
    for what, where in rows:
        print(f"  {what:<{width}}  {where}", flush=True)
