"""The node agent: one process that plays the kubelet for many simulated GPU nodes.

For each node it registers the Node (GPU Feature Discovery labels, capacity and allocatable),
renews the node's Lease in kube-node-lease, and — when the node has a device-plugin folder —
serves `v1beta1.Registration` there (brix/mock_kubelet.py), so a `brix device-plugin` registers
with it exactly as with a kubelet; ListAndWatch updates become the node's capacity and allocatable.

For each pod bound to one of its nodes it does what a kubelet does: admission (Allocate the
pod's devices through the device plugin, or from the static count), a pod IP from 127.1.0.0/16,
the service-account token (TokenRequest, bound to the pod) as a kubeconfig, then containers:
a container that runs a `brix` subcommand is started as a local process on the pod's IP with the
Allocate response's environment; any other container is reported running without a process.
Readiness probes (httpGet, tcpSocket) drive the Ready condition; a crashed container restarts
with back-off (restartPolicy Always / OnFailure); deleting a pod stops its processes within the
grace period, then removes the pod object, as a kubelet does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import random
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from brix import procs
from brix.aio import cancel_and_wait
from brix.kube.controlplane import kubeconfig_yaml
from brix.kube.rest import ApiError, KubeRest
from brix.logs import kv
from brix.mock_kubelet import MockKubelet
from brix.node_agent import pods as podlib

log = logging.getLogger(__name__)

GPU_RESOURCE = "nvidia.com/gpu"
# GPU Feature Discovery product names and memory (MiB) of the built-in GPU types
GFD_PRODUCTS = {"A100": ("NVIDIA-A100-SXM4-80GB", "81920"), "H100": ("NVIDIA-H100-80GB-HBM3", "81559"),
                "A10": ("NVIDIA-A10", "23028"), "L20": ("NVIDIA-L20", "46068")}
KUBELET_VERSION = "v1.37.2-brix"
KUBELET_PLUGIN_DIR = "/var/lib/kubelet/device-plugins"  # kubelet's device-plugin folder
# the node's mock GPUs: the NVML mock config the mock device-plugin DaemonSet of deploy/local reads
MOCK_GPU_CONFIG = "/var/run/brix-mock/node.toml"


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    gpu_type: str
    gpus: int
    """Static GPU count, used when the node has no device plugins."""
    root: Path
    """The node's filesystem: hostPath volumes are folders under it."""
    device_plugins: bool = False
    """Serve kubelet.sock in <root>/var/lib/kubelet/device-plugins and take GPUs from the plugin
    that registers there (a `brix device-plugin` DaemonSet pod, say); False = static devices."""
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def kubelet_dir(self) -> Path | None:
        return self.root / KUBELET_PLUGIN_DIR.lstrip("/") if self.device_plugins else None


@dataclass(frozen=True)
class AgentSettings:
    kubeconfig: Path
    """Credentials of the agent (the local control plane writes node-agent.kubeconfig)."""
    nodes: tuple[NodeSpec, ...]
    workdir: Path
    """Pod folders (logs, service-account kubeconfigs, volumes) go here."""
    pod_cidr: str = "127.1.0.0/16"
    """Pod IPs come from this loopback range."""
    lease_seconds: int = 40
    """Node Lease duration (kubelet's default)."""
    renew_interval: float = 10.0
    """Seconds between Lease renewals (kubelet's default: a quarter of the duration)."""
    max_backoff: float = 40.0
    """Cap of the crash-loop back-off, seconds (kubelet's is 300)."""
    run_processes: bool = True
    """False marks every container running without a process (benchmarks of scheduling alone)."""
    watch_pods: bool = True
    """False: nodes and Leases only, pods bound to the nodes are left alone, as in kube-scheduler's
    own scheduler_perf benchmarks (nodes without kubelets); nothing runs, no pod status is written."""
    ready_delay: tuple[float, float] | None = None
    """Containers without a process turn Ready only after a delay drawn uniformly from (low, high)
    seconds, the k-th such pod getting the k-th draw of Random(ready_seed): slow-starting engines
    for benchmarks (hack/bench/bench_fleet_rollout.py). None: Ready at once."""
    ready_seed: int = 0


def node_labels(spec: NodeSpec) -> dict[str, str]:
    product, memory = GFD_PRODUCTS.get(spec.gpu_type, (spec.gpu_type, "0"))
    labels = {"kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "nvidia.com/gpu.product": product,
              "nvidia.com/gpu.memory": memory, "nvidia.com/gpu.count": str(spec.gpus),
              "model.brix.dev/gpu-type": spec.gpu_type, "brix.dev/mock-gpu": "true"}
    labels.update(dict(spec.labels))
    return labels


def node_resources(spec: NodeSpec, kubelet: MockKubelet | None) -> tuple[dict[str, str], dict[str, str]]:
    """capacity and allocatable: a GPU node's CPU, memory and pods plus one entry per device
    resource (capacity = devices the plugin lists, allocatable = healthy ones)."""
    capacity = {"cpu": "64", "memory": "512Gi", "pods": "110", "ephemeral-storage": "1Ti"}
    allocatable = dict(capacity)
    if kubelet is None:
        capacity[GPU_RESOURCE] = allocatable[GPU_RESOURCE] = str(spec.gpus)
    else:
        for resource, state in kubelet.plugins.items():
            capacity[resource] = str(len(state.devices))
            allocatable[resource] = str(state.healthy)
    return capacity, allocatable


def node_object(spec: NodeSpec, kubelet: MockKubelet | None) -> dict[str, Any]:
    capacity, allocatable = node_resources(spec, kubelet)
    stamp = now_iso()
    conditions = [podlib.condition(kind, False, stamp, reason) for kind, reason in
                  (("MemoryPressure", "KubeletHasSufficientMemory"), ("DiskPressure", "KubeletHasNoDiskPressure"),
                   ("PIDPressure", "KubeletHasSufficientPID"))]
    conditions.append({**podlib.condition("Ready", True, stamp, "KubeletReady"),
                       "message": "brix node agent is posting ready status"})
    for c in conditions:
        c.pop("lastProbeTime")
        c["lastHeartbeatTime"] = stamp
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": spec.name, "labels": node_labels(spec)},
        "spec": {},
        "status": {"capacity": capacity, "allocatable": allocatable, "conditions": conditions,
                   "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                 {"type": "Hostname", "address": spec.name}],
                   "nodeInfo": {"kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
                                "containerRuntimeVersion": "brix-node-agent://0.1", "operatingSystem": "linux",
                                "architecture": "amd64", "osImage": "brix mock GPU node",
                                "kernelVersion": os.uname().release, "machineID": spec.name,
                                "systemUUID": spec.name, "bootID": spec.name}},
    }


@dataclass
class NodeState:
    spec: NodeSpec
    kubelet: MockKubelet | None = None
    in_use: dict[str, set[str]] = field(default_factory=dict)  # resource -> device ids allocated to pods


@dataclass
class ContainerRuntime:
    spec: dict[str, Any]
    argv: list[str] | None  # None: no process (not a brix container)
    env: dict[str, str]
    log_path: Path
    probe: podlib.Probe
    process: procs.ManagedProcess | None = None
    started_at: str | None = None
    restarts: int = 0
    ready: bool = False
    probe_successes: int = 0
    probe_failures: int = 0
    next_probe: float = 0.0
    exit_code: int | None = None
    finished_at: str | None = None
    restart_at: float | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        if self.argv is None:
            return self.started_at is not None and self.exit_code is None
        return self.process is not None and self.process.alive()


@dataclass
class PodRuntime:
    pod: dict[str, Any]
    node: str
    ip: str = ""
    folder: Path = Path()
    devices: dict[str, list[str]] = field(default_factory=dict)
    device_env: dict[str, str] = field(default_factory=dict)  # the Allocate responses' environment
    containers: list[ContainerRuntime] = field(default_factory=list)
    start_time: str = field(default_factory=now_iso)
    task: asyncio.Task[None] | None = None
    last_status: dict[str, Any] | None = None
    phase: str = "Pending"
    stopping: bool = False

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])

    @property
    def path(self) -> str:
        meta = self.pod["metadata"]
        return f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"

    @property
    def key(self) -> str:
        meta = self.pod["metadata"]
        return f"{meta['namespace']}/{meta['name']}"


class AdmissionError(RuntimeError):
    pass


class NodeAgent:
    def __init__(self, settings: AgentSettings, api: KubeRest | None = None) -> None:
        self.settings = settings
        self.api = api or KubeRest.from_kubeconfig(settings.kubeconfig, connections=128)
        self.nodes = {spec.name: NodeState(spec) for spec in settings.nodes}
        self.pods: dict[str, PodRuntime] = {}
        self.ips = podlib.IpPool(settings.pod_cidr)
        self.ready = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._probe_session: aiohttp.ClientSession | None = None
        self._ready_rng = random.Random(settings.ready_seed)

    # -- lifecycle ---------------------------------------------------------------------------
    def mock_gpu_config(self, node: str) -> Path:
        """The node's mock GPUs (nvml_mock TOML): `brix nvml-mock inject --config` it to fault a GPU."""
        return self.nodes[node].spec.root / MOCK_GPU_CONFIG.lstrip("/")

    async def start(self) -> None:
        from nvml_mock import tool

        for state in self.nodes.values():
            config = self.mock_gpu_config(state.spec.name)
            if state.spec.device_plugins and not config.exists():
                config.parent.mkdir(parents=True, exist_ok=True)
                tool.run_init(tool.InitSettings(config=config, gpus=state.spec.gpus, model=state.spec.gpu_type,
                                                nvlink=None, node=state.spec.name, npus=0, force=False))
            if state.spec.kubelet_dir is not None:
                state.kubelet = MockKubelet(state.spec.name, state.spec.kubelet_dir,
                                            on_change=lambda k: self._spawn(self._push_node_resources(k.node)))
                await state.kubelet.start()
        await self._gather_limited([self._register(state) for state in self.nodes.values()])
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._lease_loop(), name="leases")]
        if self.settings.watch_pods:
            self._tasks.append(loop.create_task(self._pod_loop(), name="pods"))
        else:
            self.ready.set()
        kv(log, "node agent started", nodes=len(self.nodes), pod_cidr=self.settings.pod_cidr,
           device_plugins=sum(1 for s in self.nodes.values() if s.kubelet))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        await asyncio.gather(*(self._stop_containers(rt, grace=5.0) for rt in list(self.pods.values())),
                             return_exceptions=True)
        for state in self.nodes.values():
            if state.kubelet is not None:
                await state.kubelet.stop()
        if self._probe_session is not None:
            await self._probe_session.close()
        await self.api.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    @staticmethod
    async def _gather_limited(coros: list[Any], limit: int = 64) -> None:
        gate = asyncio.Semaphore(limit)

        async def one(c: Any) -> None:
            async with gate:
                await c
        await asyncio.gather(*(one(c) for c in coros))

    # -- nodes -------------------------------------------------------------------------------
    async def _register(self, state: NodeState) -> None:
        body = node_object(state.spec, state.kubelet)
        try:
            await self.api.post("/api/v1/nodes", body)
        except ApiError as exc:
            if exc.status != 409:
                raise
            # registered before (agent restart): refresh labels and status, as kubelet does
            await self.api.strategic_patch(f"/api/v1/nodes/{state.spec.name}",
                                           {"metadata": {"labels": body["metadata"]["labels"]}})
            await self.api.merge_patch(f"/api/v1/nodes/{state.spec.name}/status", {"status": body["status"]})
        await self._renew(state.spec.name)

    async def _push_node_resources(self, node: str) -> None:
        state = self.nodes[node]
        capacity, allocatable = node_resources(state.spec, state.kubelet)
        await self.api.merge_patch(f"/api/v1/nodes/{node}/status",
                                   {"status": {"capacity": capacity, "allocatable": allocatable}})
        fields: dict[str, Any] = {f"allocatable_{k}": v for k, v in allocatable.items() if "/" in k}
        kv(log, "node resources", node=node, **fields)

    async def _renew(self, node: str) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"
        spec = {"holderIdentity": node, "leaseDurationSeconds": self.settings.lease_seconds,
                "renewTime": now_micro()}
        try:
            await self.api.merge_patch(path, {"spec": spec})
        except ApiError as exc:
            if exc.status != 404:
                raise
            await self.api.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": node, "namespace": "kube-node-lease"}, "spec": spec})

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.renew_interval)
            try:
                await self._gather_limited([self._renew(n) for n in self.nodes])
            except (TimeoutError, ApiError, aiohttp.ClientError, OSError) as exc:
                kv(log, "lease renewal failed; retrying", level=logging.WARNING, error=exc)

    # -- pods: watch -------------------------------------------------------------------------
    async def _pod_loop(self) -> None:
        params = {"fieldSelector": "spec.nodeName!="}
        first = True
        while True:
            try:
                listing = await self.api.get("/api/v1/pods", params=params)
                seen = set()
                for pod in listing["items"]:
                    seen.add(pod["metadata"]["uid"])
                    self._observe(pod)
                for uid in [u for u in self.pods if u not in seen]:
                    self._gone(uid)
                if first:
                    self.ready.set()
                    first = False
                version = listing["metadata"]["resourceVersion"]
                async for event in self.api.watch("/api/v1/pods", {**params, "resourceVersion": version}):
                    kind, obj = event.get("type"), event.get("object", {})
                    if kind == "ERROR":
                        kv(log, "pod watch expired; listing again", reason=obj.get("message"))
                        break
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        self._gone(obj["metadata"]["uid"])
                    else:
                        self._observe(obj)
            except asyncio.CancelledError:
                raise
            except (TimeoutError, ApiError, aiohttp.ClientError, OSError, ValueError) as exc:
                kv(log, "pod watch failed; retrying in 1 s", level=logging.WARNING, error=exc)
                await asyncio.sleep(1.0)

    def _observe(self, pod: dict[str, Any]) -> None:
        node = pod.get("spec", {}).get("nodeName")
        if node not in self.nodes:
            return
        uid = pod["metadata"]["uid"]
        runtime = self.pods.get(uid)
        terminal = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
        if runtime is None:
            if pod["metadata"].get("deletionTimestamp"):
                # nothing runs for it here: finish the deletion the API server is waiting for
                self._spawn(self._finalize_delete(pod))
                return
            if terminal:
                return
            runtime = PodRuntime(pod, node)
            self.pods[uid] = runtime
            runtime.task = asyncio.get_running_loop().create_task(self._run_pod(runtime), name=f"pod {uid}")
            return
        runtime.pod = pod
        if pod["metadata"].get("deletionTimestamp") and not runtime.stopping:
            runtime.stopping = True
            self._spawn(self._delete_pod(runtime))

    def _gone(self, uid: str) -> None:
        runtime = self.pods.get(uid)
        if runtime is not None and not runtime.stopping:
            runtime.stopping = True
            self._spawn(self._delete_pod(runtime, object_gone=True))

    # -- pods: lifecycle ---------------------------------------------------------------------
    async def _run_pod(self, rt: PodRuntime) -> None:
        try:
            await self._admit(rt)
        except AdmissionError as exc:
            kv(log, "pod admission failed", level=logging.WARNING, pod=rt.key, node=rt.node, error=exc)
            rt.phase = "Failed"
            await self._push_status(rt, reason="UnexpectedAdmissionError", message=str(exc))
            await self._event(rt, "Warning", "UnexpectedAdmissionError", str(exc))
            self._release(rt)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported on the pod, never crashes the agent
            kv(log, "pod set-up failed", level=logging.ERROR, pod=rt.key, error=repr(exc))
            rt.phase = "Failed"
            await self._push_status(rt, reason="CreateContainerError", message=str(exc))
            self._release(rt)
            return
        delay = self._ready_delay() if any(c.argv is None for c in rt.containers) else 0.0
        for container in rt.containers:
            self._start_container(rt, container)
            if container.argv is None and not delay:
                container.ready = True  # running without a process: nothing to probe (documented)
        rt.phase = "Running"
        await self._push_status(rt)
        await self._event(rt, "Normal", "Started", f"started {len(rt.containers)} container(s) on {rt.ip}")
        if delay:
            await asyncio.sleep(delay)
            if rt.stopping:
                return
            for container in rt.containers:
                container.ready = container.ready or container.argv is None
            await self._push_status(rt)
        if all(c.argv is None for c in rt.containers):
            return  # nothing runs, so nothing to watch (thousands of such pods in benchmarks)
        while not rt.stopping:
            changed = await self._tick(rt)
            if changed and not rt.stopping:
                await self._push_status(rt)
            if rt.phase in ("Succeeded", "Failed"):
                self._release(rt)
                return
            await asyncio.sleep(0.2)

    def _ready_delay(self) -> float:
        if self.settings.ready_delay is None:
            return 0.0
        return self._ready_rng.uniform(*self.settings.ready_delay)

    async def _admit(self, rt: PodRuntime) -> None:
        meta, spec = rt.pod["metadata"], rt.pod["spec"]
        state = self.nodes[rt.node]
        for resource, count in podlib.device_requests(rt.pod).items():
            in_use = state.in_use.setdefault(resource, set())
            if state.kubelet is not None and resource in state.kubelet.plugins:
                try:
                    ids, envs = await state.kubelet.allocate(resource, count, frozenset(in_use))
                except ValueError as exc:
                    raise AdmissionError(f"Allocate failed: {exc}") from exc
            elif state.kubelet is None and resource == GPU_RESOURCE:
                free = [f"GPU-{rt.node}-{i}" for i in range(state.spec.gpus) if f"GPU-{rt.node}-{i}" not in in_use]
                if len(free) < count:
                    raise AdmissionError(f"{resource}: {count} requested, {len(free)} free on {rt.node}")
                ids, envs = free[:count], {"NVIDIA_VISIBLE_DEVICES": ",".join(free[:count])}
            else:
                raise AdmissionError(f"node {rt.node} has no device plugin for {resource}")
            in_use.update(ids)
            rt.devices[resource] = ids
            rt.device_env.update(envs)
        rt.ip = "127.0.0.1" if spec.get("hostNetwork") else self.ips.take()
        rt.folder = self.settings.workdir / "pods" / f"{meta['namespace']}_{meta['name']}_{rt.uid[:8]}"
        rt.folder.mkdir(parents=True, exist_ok=True)
        config_maps = await self._config_maps(rt.pod)
        mounts = await self._volumes(rt, config_maps)
        base_env: dict[str, str] = {}
        brix_containers = [c for c in spec.get("containers", []) if podlib.brix_args(c) is not None]
        if brix_containers and self.settings.run_processes and spec.get("automountServiceAccountToken", True):
            base_env["KUBECONFIG"] = str(await self._service_account_kubeconfig(rt))
        for container in spec.get("containers", []):
            args = podlib.brix_args(container) if self.settings.run_processes else None
            env, problems = podlib.container_env(rt.pod, container, pod_ip=rt.ip, host_ip="127.0.0.1",
                                                 device_env=rt.device_env, config_maps=config_maps)
            for problem in problems:
                await self._event(rt, "Warning", "Failed", f"container {container['name']}: {problem}")
            argv = None
            if args is not None:
                # paths the pod spec names (args, env) move with their volumes; the agent's own
                # paths (the service-account kubeconfig) are already host paths
                args = [_remap(a, mounts, container) for a in podlib.expand_args(args, env)]
                env = {k: _remap(v, mounts, container) for k, v in env.items()}
                argv = [sys.executable, "-m", "brix.node_agent.podexec", rt.ip, "--", *args]
            env = {**base_env, **env}
            env.setdefault("HOSTNAME", meta["name"])
            rt.containers.append(ContainerRuntime(container, argv, env, rt.folder / f"{container['name']}.log",
                                                  podlib.readiness_probe(container)))

    async def _config_maps(self, pod: dict[str, Any]) -> dict[str, dict[str, str]]:
        names: set[str] = set()
        for c in pod["spec"].get("containers", []):
            names.update(s["configMapRef"]["name"] for s in c.get("envFrom", []) if "configMapRef" in s)
            names.update(e["valueFrom"]["configMapKeyRef"]["name"] for e in c.get("env", [])
                         if "configMapKeyRef" in e.get("valueFrom", {}))
        names.update(v["configMap"]["name"] for v in pod["spec"].get("volumes", []) if "configMap" in v)
        ns = pod["metadata"]["namespace"]
        out = {}
        for name in names:
            found = await self.api.get(f"/api/v1/namespaces/{ns}/configmaps/{name}", ok_missing=True)
            if found is not None:
                out[name] = found.get("data", {})
        return out

    async def _volumes(self, rt: PodRuntime, config_maps: dict[str, dict[str, str]]) -> dict[str, Path]:
        """configMap and emptyDir volumes as folders in the pod's folder, hostPath volumes under the
        node's root folder; volume name -> folder."""
        out = {}
        for volume in rt.pod["spec"].get("volumes", []):
            folder = rt.folder / "volumes" / volume["name"]
            if "hostPath" in volume:
                host = volume["hostPath"]
                folder = self.nodes[rt.node].spec.root / host["path"].lstrip("/")
                kind = host.get("type", "")
                if not folder.exists():
                    if kind in ("", "DirectoryOrCreate"):
                        folder.mkdir(parents=True, exist_ok=True)
                    elif kind != "FileOrCreate":
                        raise AdmissionError(f"hostPath {host['path']} of volume {volume['name']!r} does not exist"
                                             f" on {rt.node} (looked in {folder})")
            elif "configMap" in volume:
                name = volume["configMap"]["name"]
                if name not in config_maps and not volume["configMap"].get("optional"):
                    raise AdmissionError(f"configMap {name!r} of volume {volume['name']!r} not found")
                folder.mkdir(parents=True, exist_ok=True)
                for key, value in config_maps.get(name, {}).items():
                    (folder / key).write_text(value)
            elif "emptyDir" in volume:
                folder.mkdir(parents=True, exist_ok=True)
            else:
                continue  # other volume kinds are not materialised (documented)
            out[volume["name"]] = folder
        return out

    async def _service_account_kubeconfig(self, rt: PodRuntime) -> Path:
        meta, spec = rt.pod["metadata"], rt.pod["spec"]
        account = spec.get("serviceAccountName") or "default"
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": 86400,
                         "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                            "uid": meta["uid"]}}}
        answer = await self.api.post(f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token", body)
        if self.api.credentials.ca_file is None:
            raise AdmissionError("the agent's kubeconfig names no certificate authority to hand to pods")
        path = rt.folder / "serviceaccount.kubeconfig"
        path.write_text(kubeconfig_yaml(self.api.credentials.server, Path(self.api.credentials.ca_file), token=answer["status"]["token"],
                                        user=f"system:serviceaccount:{meta['namespace']}:{account}",
                                        namespace=meta["namespace"]))
        path.chmod(0o600)
        return path

    def _start_container(self, rt: PodRuntime, c: ContainerRuntime) -> None:
        c.started_at, c.exit_code, c.restart_at = now_iso(), None, None
        c.ready, c.probe_successes, c.probe_failures = False, 0, 0
        c.next_probe = time.monotonic() + c.probe.initial_delay
        if c.argv is None:
            return
        c.process = procs.start(f"{rt.key}/{c.name}", c.argv, c.log_path, env=c.env, cwd=rt.folder,
                                inherit_env=False)
        kv(log, "container started", pod=rt.key, container=c.name, ip=rt.ip, pid=c.process.pid,
           log=c.log_path)

    async def _tick(self, rt: PodRuntime) -> bool:
        """One pass over the pod's containers: exits, restarts, probes. True when status changed."""
        changed = False
        policy = rt.pod["spec"].get("restartPolicy", "Always")
        now = time.monotonic()
        for c in rt.containers:
            if c.argv is not None and c.process is not None and c.exit_code is None and not c.process.alive():
                c.exit_code, c.finished_at, c.ready = c.process.popen.returncode, now_iso(), False
                restart = policy == "Always" or (policy == "OnFailure" and c.exit_code != 0)
                kv(log, "container exited", level=logging.WARNING, pod=rt.key, container=c.name,
                   code=c.exit_code, restart=restart, log=c.log_path)
                if restart:
                    delay = min(self.settings.max_backoff, 1.0 * 2 ** min(c.restarts, 10))
                    c.restart_at = now + delay
                    await self._event(rt, "Warning", "BackOff",
                                      f"container {c.name} exited with {c.exit_code}; restarting in {delay:.0f} s")
                changed = True
            if c.restart_at is not None and now >= c.restart_at:
                c.restarts += 1
                self._start_container(rt, c)
                changed = True
            if c.argv is not None and c.running and now >= c.next_probe:
                c.next_probe = now + c.probe.period
                ok = await self._probe(rt, c)
                if ok:
                    c.probe_successes, c.probe_failures = c.probe_successes + 1, 0
                    if not c.ready and c.probe_successes >= c.probe.success_threshold:
                        c.ready, changed = True, True
                else:
                    c.probe_failures, c.probe_successes = c.probe_failures + 1, 0
                    if c.ready and c.probe_failures >= c.probe.failure_threshold:
                        c.ready, changed = False, True
        if policy != "Always" and all(c.exit_code is not None and c.restart_at is None for c in rt.containers):
            rt.phase = "Succeeded" if all(c.exit_code == 0 for c in rt.containers) else "Failed"
            changed = True
        return changed

    async def _probe(self, rt: PodRuntime, c: ContainerRuntime) -> bool:
        probe = c.probe
        if probe.kind == "none":
            return True
        try:
            if probe.kind == "tcp":
                _, writer = await asyncio.wait_for(asyncio.open_connection(rt.ip, probe.port), probe.timeout)
                writer.close()
                return True
            if self._probe_session is None:
                self._probe_session = aiohttp.ClientSession()
            url = f"http://{rt.ip}:{probe.port}{probe.path}"
            async with self._probe_session.get(url, timeout=aiohttp.ClientTimeout(total=probe.timeout)) as resp:
                return 200 <= resp.status < 400
        except (TimeoutError, OSError, aiohttp.ClientError):
            return False

    async def _push_status(self, rt: PodRuntime, *, reason: str | None = None, message: str | None = None) -> None:
        views = [podlib.ContainerView(
            name=c.name, image=str(c.spec.get("image", "")), running=c.running, ready=c.ready and c.running,
            restarts=c.restarts, started_at=c.started_at, pid=c.process.pid if c.process else None,
            exit_code=c.exit_code, reason="Error" if c.exit_code else None, finished_at=c.finished_at,
            waiting_reason="CrashLoopBackOff" if c.restart_at is not None else None) for c in rt.containers]
        status = podlib.pod_status(phase=rt.phase, pod_ip=rt.ip, host_ip="127.0.0.1", start_time=rt.start_time,
                                   now=now_iso(), containers=views, previous=rt.last_status,
                                   reason=reason, message=message)
        try:
            await self.api.merge_patch(rt.path + "/status", {"status": status})
            rt.last_status = status
        except ApiError as exc:
            if exc.status != 404:
                kv(log, "pod status update failed", level=logging.WARNING, pod=rt.key, error=exc)

    async def _event(self, rt: PodRuntime, kind: str, reason: str, message: str) -> None:
        meta = rt.pod["metadata"]
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
                "involvedObject": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"],
                                   "uid": meta["uid"], "apiVersion": "v1"},
                "type": kind, "reason": reason, "message": message[:1000],
                "source": {"component": "kubelet", "host": rt.node}, "reportingComponent": "kubelet",
                "reportingInstance": rt.node, "firstTimestamp": now_iso(), "lastTimestamp": now_iso(), "count": 1}
        with contextlib.suppress(ApiError, aiohttp.ClientError, OSError, asyncio.TimeoutError):
            await self.api.post(f"/api/v1/namespaces/{meta['namespace']}/events", body)

    # -- pods: deletion ----------------------------------------------------------------------
    async def _delete_pod(self, rt: PodRuntime, *, object_gone: bool = False) -> None:
        grace = rt.pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = rt.pod["spec"].get("terminationGracePeriodSeconds", 30)
        if rt.task is not None:
            rt.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await rt.task
        if any(c.running for c in rt.containers):
            await self._event(rt, "Normal", "Killing", f"stopping containers (grace period {grace} s)")
        await self._stop_containers(rt, grace=float(grace))
        self._release(rt)
        self.pods.pop(rt.uid, None)
        if not object_gone:
            await self._finalize_delete(rt.pod)

    async def _finalize_delete(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                "preconditions": {"uid": meta["uid"]}}
        try:
            if await self.api.delete(path, body, ok_missing=True) is not None:
                kv(log, "pod removed", pod=f"{meta['namespace']}/{meta['name']}")
        except ApiError as exc:
            if exc.status != 409:  # 409: another pod of that name already (uid precondition)
                kv(log, "pod removal failed", level=logging.WARNING, pod=meta["name"], error=exc)

    async def _stop_containers(self, rt: PodRuntime, grace: float) -> None:
        running = [c for c in rt.containers if c.process is not None and c.process.alive()]
        for c in running:
            assert c.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(c.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(c.process is not None and c.process.alive() for c in running) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for c in running:
            assert c.process is not None
            if c.process.alive():
                kv(log, "container did not stop in its grace period; killing", pod=rt.key, container=c.name)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(c.process.pid, signal.SIGKILL)
                await asyncio.get_running_loop().run_in_executor(None, c.process.popen.wait)
            c.restart_at = None

    def _release(self, rt: PodRuntime) -> None:
        state = self.nodes.get(rt.node)
        if state is not None:
            for resource, ids in rt.devices.items():
                state.in_use.get(resource, set()).difference_update(ids)
        rt.devices = {}
        if rt.ip and rt.ip != "127.0.0.1":
            self.ips.give_back(rt.ip)


def _remap(value: str, mounts: dict[str, Path], container: dict[str, Any]) -> str:
    """A path under a volume's mountPath, rewritten to the volume's folder (one pass; the deepest
    mountPath wins, as in a container's mount table)."""
    targets = {}
    for mount in container.get("volumeMounts", []):
        folder = mounts.get(mount["name"])
        if folder is not None:
            targets[mount["mountPath"].rstrip("/") or "/"] = str(folder / mount["subPath"]) if mount.get("subPath") \
                else str(folder)
    if not targets:
        return value
    pattern = "|".join(re.escape(p) for p in sorted(targets, key=len, reverse=True))
    return re.sub(rf"(^|=)({pattern})(?=/|$)", lambda m: m.group(1) + targets[m.group(2)], value)
