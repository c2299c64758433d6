"""What `brix up` runs where: its settings and the plan (which process listens on which port,
which files each node uses), a pure function of the settings. brix.up runs the plan."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

GPU_TYPES = ("A100", "H100")  # alternated across simulated nodes and engines


@dataclass(frozen=True)
class UpSettings:
    workdir: Path
    base_port: int = 18000
    nodes: int = 2
    gpus_per_node: int = 4
    engines: int = 3
    model: str = "llama-2-7b"
    duration: float = 0.0
    demo: bool = True
    standalone: bool = False
    """No Kubernetes: mock kubelets and plain processes (the fallback without `make kube`)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> UpSettings:
        from brix.commands import UsageError

        if args.nodes < 1 or args.gpus_per_node < 1 or args.engines < 1:
            raise UsageError("--nodes, --gpus-per-node and --engines must each be at least 1")
        if not 1024 <= args.base_port <= 65000:
            raise UsageError(f"--base-port {args.base_port} is outside 1024..65000")
        return cls(Path(args.workdir).resolve(), args.base_port, args.nodes, args.gpus_per_node, args.engines,
                   args.model, args.duration, not args.no_demo, args.standalone)


@dataclass(frozen=True)
class NodePlan:
    name: str
    gpu_type: str
    gpus: int
    mock_config: Path
    kubelet_dir: Path
    metrics_port: int


@dataclass(frozen=True)
class EnginePlan:
    name: str
    gpu_type: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Plan:
    nodes: tuple[NodePlan, ...]
    engines: tuple[EnginePlan, ...]
    scheduler_port: int
    gateway_port: int
    nodes_file: Path
    logs: Path

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def scheduler_url(self) -> str:
        return f"http://127.0.0.1:{self.scheduler_port}"


def make_plan(settings: UpSettings) -> Plan:
    """Assign names, files and ports. Pure: the same settings give the same plan."""
    port = iter(range(settings.base_port, settings.base_port + 1000))
    nodes = tuple(
        NodePlan(
            name=f"gpu-node-{i}",
            gpu_type=GPU_TYPES[i % len(GPU_TYPES)],
            gpus=settings.gpus_per_node,
            mock_config=settings.workdir / f"gpu-node-{i}" / "nvml-mock.toml",
            kubelet_dir=settings.workdir / f"gpu-node-{i}" / "device-plugins",
            metrics_port=next(port),
        )
        for i in range(settings.nodes)
    )
    engines = tuple(
        EnginePlan(name=f"engine-{i}", gpu_type=GPU_TYPES[i % len(GPU_TYPES)], port=next(port))
        for i in range(settings.engines)
    )
    return Plan(nodes, engines, scheduler_port=next(port), gateway_port=next(port),
                nodes_file=settings.workdir / "nodes.yaml", logs=settings.workdir / "logs")


def say(message: str) -> None:
    print(f"[brix up] {message}", flush=True)
