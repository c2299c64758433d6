"""`brix up`: the local mock-GPU cluster, every Brix component on loopback.

The plan (which process listens where) is a pure function of the settings; `run` starts the
processes in dependency order, waits for each to be ready, prints where everything is, sends
demo traffic through the real protocols, and stops everything by PID on exit.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brix import procs

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


@dataclass
class Cluster:
    """The running processes, stopped in reverse start order."""

    plan: Plan
    processes: list[procs.ManagedProcess] = field(default_factory=list)
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    kubelets: Any = None  # brix.up_components.KubeletHost once the nodes run

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

    def check_alive(self) -> None:
        for proc in self.processes:
            if not proc.alive():
                raise procs.ProcessFailed(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")


def say(message: str) -> None:
    print(f"[brix up] {message}", flush=True)


def run(settings: UpSettings) -> int:
    if not settings.standalone:
        from brix.kube import binaries

        try:
            binaries.find()
        except binaries.MissingBinaries as exc:
            say(f"falling back to --standalone: {exc}")
        else:
            return run_kube(settings)
    return run_standalone(settings)


def run_kube(settings: UpSettings) -> int:
    from brix import up_kube

    settings.workdir.mkdir(parents=True, exist_ok=True)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        return up_kube.run(settings)
    except KeyboardInterrupt:
        return 0
    except (procs.ProcessFailed, TimeoutError, RuntimeError) as exc:
        print(f"[brix up] error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        say("stopped")


def run_standalone(settings: UpSettings) -> int:
    from brix import up_components, up_demo

    plan = make_plan(settings)
    settings.workdir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(plan)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops the cluster the same way Ctrl-C does

    signal.signal(signal.SIGTERM, on_signal)
    say(f"workdir {settings.workdir} (configs, sockets, logs in {plan.logs})")
    try:
        up_components.start_all(cluster, settings)
        up_components.print_endpoints(plan)
        if settings.demo:
            up_demo.run(cluster, settings)
        if settings.duration > 0:
            say(f"running for {settings.duration:g}s more")
            deadline = time.monotonic() + settings.duration
        else:
            say("running; press Ctrl-C to stop")
            deadline = float("inf")
        while time.monotonic() < deadline:
            cluster.check_alive()
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        return 0
    except KeyboardInterrupt:
        return 0
    except procs.ProcessFailed as exc:
        print(f"[brix up] error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        say("stopping every process by PID")
        cluster.stop()
        say("stopped")
