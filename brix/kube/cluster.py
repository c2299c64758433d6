"""The local mock-GPU cluster on the real control plane: kube-apiserver, etcd, kube-controller-
manager and kube-scheduler (brix/kube/controlplane.py), `brix node-agent` playing the kubelet of
the GPU nodes, and deploy/local applied with kubectl (the extender, one mock device plugin per
node), each component running as a pod with the ServiceAccount and RBAC of deploy/. `brix up`
and the tests' `kube` fixture both start it through `start`.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brix import procs
from brix.kube import manifests, pki
from brix.kube.controlplane import ControlPlane, ControlPlaneSettings


@dataclass(frozen=True)
class ClusterSettings:
    workdir: Path
    """Everything the cluster writes: certificates, etcd, node folders, pod logs."""
    nodes: int = 3
    """Simulated GPU nodes (node agent)."""
    gpus_per_node: int = 4
    gpu_types: tuple[str, ...] = ("A100", "H100")
    """Alternated across nodes; each node's GFD labels and mock GPUs follow its type."""
    apply_deploy: bool = True
    """Apply deploy/local (extender + mock device plugins). False: nodes get static GPUs and
    kube-scheduler runs without the extender (the benchmark's baseline)."""
    run_processes: bool = True
    """False: the node agent starts no container processes (scheduling benchmarks)."""
    scheduler_qps: float = 50.0
    renew_interval: float = 10.0
    agent_args: tuple[str, ...] = ()
    """More `brix node-agent` flags (benchmarks: --ready-delay, --ready-seed)."""
    timeout: float = 180.0


@dataclass
class LocalCluster:
    settings: ClusterSettings
    plane: ControlPlane
    extender_port: int = 0
    agent: procs.ManagedProcess | None = None
    node_names: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    pod_cidr: str = ""
    """This cluster's pod IPs: a 127.X.0.0/16 no other local cluster on the machine holds."""
    _cidr_lock: Any = None
    nodes_root: Path = Path()
    """Each node's filesystem (hostPath volumes, the device-plugin folder): a short folder under
    /tmp, because unix socket paths must stay under 108 bytes."""

    def mock_gpu_config(self, node: str) -> Path:
        """The node's mock GPUs: `brix nvml-mock inject --config <this> --gpu 1 --xid 79` faults one."""
        return self.nodes_root / node / "var/run/brix-mock/node.toml"

    def kubectl(self, *args: str, **kwargs: Any) -> Any:
        return manifests.kubectl(self.kubeconfig, *args, **kwargs)

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop(timeout=30)
            self.agent = None
        self.plane.stop()
        shutil.rmtree(self.nodes_root, ignore_errors=True)
        if self._cidr_lock is not None:
            self._cidr_lock.close()
            self._cidr_lock = None

    def wait_for(self, what: str, check: Any, timeout: float | None = None, interval: float = 0.25) -> Any:
        deadline = time.monotonic() + (timeout or self.settings.timeout)
        last: Any = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            if self.agent is not None and not self.agent.alive():
                raise procs.ProcessFailed(f"node agent exited while waiting for {what}:\n{self.agent.log_tail()}")
            time.sleep(interval)
        raise TimeoutError(f"timed out waiting for {what} (last: {last!r})")


def start(settings: ClusterSettings) -> LocalCluster:
    t0 = time.monotonic()
    extender_port = procs.free_port()
    plane = ControlPlane(ControlPlaneSettings(
        workdir=settings.workdir / "control-plane",
        scheduler_config=manifests.SCHEDULER_CONFIG if settings.apply_deploy else None,
        extender_url=f"http://127.0.0.1:{extender_port}" if settings.apply_deploy else None,
        scheduler_qps=settings.scheduler_qps, start_timeout=settings.timeout))
    cluster = LocalCluster(settings, plane, extender_port,
                           nodes_root=Path(tempfile.mkdtemp(prefix="brix-nodes-", dir="/tmp")))
    cluster.pod_cidr, cluster._cidr_lock = reserve_pod_cidr()
    try:
        plane.start()
        cluster.timings["control_plane_s"] = plane.started_in
        health = procs.free_port()
        argv = ["node-agent", f"--kubeconfig={plane.kubeconfig_for(pki.NODE_AGENT)}",
                f"--nodes={settings.nodes}", f"--gpus-per-node={settings.gpus_per_node}",
                f"--gpu-types={','.join(settings.gpu_types)}", f"--nodes-root={cluster.nodes_root}",
                f"--workdir={settings.workdir / 'node-agent'}", f"--health-port={health}",
                f"--renew-interval={settings.renew_interval}", f"--pod-cidr={cluster.pod_cidr}"]
        if settings.apply_deploy:
            argv.append("--device-plugins")
        if not settings.run_processes:
            argv.append("--no-processes")
        argv.extend(settings.agent_args)
        cluster.agent = procs.start("node-agent", procs.brix_argv(*argv), plane.logs / "node-agent.log",
                                    ready_url=f"http://127.0.0.1:{health}/readyz")
        cluster.agent.wait_ready(settings.timeout)
        cluster.node_names = tuple(f"gpu-node-{i}" for i in range(settings.nodes))
        cluster.wait_for("the node lifecycle controller to untaint the new nodes",
                         lambda: nodes_schedulable(cluster.get_json("nodes")["items"], settings.nodes))
        if settings.apply_deploy:
            apply_local_deploy(cluster)
        cluster.timings["total_s"] = time.monotonic() - t0
    except BaseException:
        cluster.stop()
        raise
    return cluster


def nodes_schedulable(nodes: list[dict[str, Any]], expected: int) -> bool:
    """All nodes registered and none still carries the node.kubernetes.io/not-ready taint that the
    TaintNodesByCondition admission plugin puts on every new Node (the node lifecycle controller
    lifts it within its monitor period once it sees Ready)."""
    return len(nodes) >= expected and not any(
        t.get("key") == "node.kubernetes.io/not-ready" for n in nodes for t in n.get("spec", {}).get("taints", []))


def reserve_pod_cidr(folder: Path = Path("/tmp/brix-pod-cidrs")) -> tuple[str, Any]:
    """127.X.0.0/16 for X in 1..254, held with an exclusive lock on /tmp/brix-pod-cidrs/X for as
    long as the returned file stays open, so two local clusters (a test run beside `brix up`)
    never hand out the same pod IP."""
    folder.mkdir(parents=True, exist_ok=True)
    for octet in range(1, 255):
        handle = open(folder / str(octet), "a")  # noqa: SIM115 - kept open as the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return f"127.{octet}.0.0/16", handle
    raise RuntimeError(f"every 127.X.0.0/16 is held by another local cluster (locks in {folder})")


def apply_local_deploy(cluster: LocalCluster) -> None:
    """kubectl apply deploy/local, then wait until the extender answers and every node reports the
    GPUs its device plugin lists."""
    objects = manifests.local_objects(cluster.extender_port)
    cluster.kubectl("apply", "-f", "-", stdin=manifests.dump(objects))
    try:
        cluster.kubectl("-n", "brix-system", "rollout", "status", "deployment/brix-scheduler-ext",
                        f"--timeout={int(cluster.settings.timeout)}s", timeout=cluster.settings.timeout + 10)
    except RuntimeError as exc:
        pods = cluster.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
        agent = cluster.agent.log_tail(20) if cluster.agent else ""
        raise RuntimeError(f"{exc}\npods:\n{pods}\nnode agent log ({cluster.plane.logs}):\n{agent}") from None
    want = str(cluster.settings.gpus_per_node)

    def gpus_reported() -> bool:
        nodes = cluster.get_json("nodes")["items"]
        return len(nodes) >= cluster.settings.nodes and all(
            n["status"].get("allocatable", {}).get("nvidia.com/gpu") == want for n in nodes)
    cluster.wait_for("every node's device plugin to report its GPUs", gpus_reported)
