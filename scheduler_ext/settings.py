"""Typed settings of `brix scheduler-ext`, filled from flags / BRIX_ environment variables in cli.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scheduler_ext.model import DEFAULT_RESOURCES


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    """Address to listen on; 0.0.0.0 inside a cluster."""
    port: int = 8888
    """HTTP(S) port kube-scheduler's urlPrefix points at."""
    kubernetes: bool = False
    """Kubernetes mode: informer on nodes and pods, /bind creates pods/binding."""
    kubeconfig: str | None = None
    """kubeconfig path for Kubernetes mode; in-cluster config, then ~/.kube/config when unset."""
    nodes_file: Path | None = None
    """Standalone mode: YAML of v1 Nodes (and optionally bound Pods)."""
    profiles_dir: Path | None = None
    """Folder of AIBrix-format GPU profiles (*.json) for the GPU-mix optimizer and the cost policy."""
    workloads_file: Path | None = None
    """Optional YAML/JSON list of workloads solved at start (same body as POST /v1/optimizer/workload)."""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    default_policy: str = "binpack"
    """Scoring policy when neither the pod annotation nor GPU-mix targets decide: binpack | spread."""
    filter_keep: int = 0
    """Answer /filter with only this many of the fitting nodes, the best-scoring ones by the pod's
    policy (ties in kube-scheduler's order); 0 keeps every fitting node. kube-scheduler then scores
    only those, and with 1 it skips scoring and /prioritize altogether (one feasible node is taken
    as is), as HAMi's extender does. Nodes left out are not reported as failed: when some node
    fits, the pod is placed; when none does, every reason is reported as before."""
    resources: tuple[str, ...] = DEFAULT_RESOURCES
    """Extended resources the extender manages (GPUs, NPUs)."""
    gateway_urls: tuple[str, ...] = ()
    """Gateways whose GET /v1/workload feeds the GPU-mix loop (replicas of one gateway: rates summed)."""
    gateway_namespace: str = "default"
    """Namespace the gateways' models run in: the loop's targets are stored under it."""
    mix_interval_s: float = 10.0
    """Seconds between GPU-mix solves from the gateways' workload."""
    mix_down_delay_s: float = 60.0
    """A cheaper mix replaces the held targets only after being cheaper this long."""
    mix_down_margin: float = 0.1
    """...by more than this fraction of the held mix's cost."""
    mix_headroom: float = 0.0
    """Solve for the measured rate times 1 + headroom."""
    log_level: str = "info"
    log_format: str = "kv"
