"""`brix controllers` and `brix autoscale-sim` (flags only; heavy imports happen inside run)."""

from __future__ import annotations

import argparse
import os

from brix.commands import Command, UsageError
from brix.logs import add_logging_flags, setup


def _controllers_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--namespace", action="append", default=[], metavar="NS",
                   help="namespace to watch (repeat for several)")
    p.add_argument("--all-namespaces", action="store_true", help="watch every namespace (cluster-wide RBAC)")
    p.add_argument("--kubeconfig", default="", help="kubeconfig file (empty = in-cluster, then ~/.kube/config)")
    p.add_argument("--host", default="0.0.0.0", help="address of the health and metrics server")
    p.add_argument("--metrics-port", type=int, default=8080, help="port of /healthz, /readyz and /metrics")
    p.add_argument("--no-leader-election", action="store_true",
                   help="act at once without taking the Lease (only with a single replica)")
    p.add_argument("--lease-namespace", default=os.environ.get("POD_NAMESPACE", "default"),
                   help="namespace of the leader-election Lease (default: $POD_NAMESPACE, else default)")
    p.add_argument("--lease-name", default="brix-controllers", help="name of the leader-election Lease")
    p.add_argument("--lease-duration", type=float, default=15.0, help="seconds before a silent leader is replaced")
    p.add_argument("--tick", type=float, default=1.0, help="seconds between metric scrapes of each autoscaler")
    p.add_argument("--scrape-timeout", type=float, default=1.0, help="timeout of one /metrics read, seconds")
    p.add_argument("--gateway-url", action="append", default=[], metavar="URL",
                   help="a gateway whose held requests (brix_gateway_held_requests) scale targets from zero "
                        "(repeat for several)")
    add_logging_flags(p)


def controllers_settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from controllers.settings import AutoscalerSettings, LeaderSettings, OperatorSettings

    if bool(args.namespace) == bool(args.all_namespaces):
        raise UsageError("give --namespace NS (repeatable) or --all-namespaces, not both and not neither")
    for flag in ("tick", "scrape_timeout", "lease_duration"):
        if getattr(args, flag) <= 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be > 0, got {getattr(args, flag)}")
    if not 0 < args.metrics_port < 65536:
        raise UsageError(f"--metrics-port must be 1..65535, got {args.metrics_port}")
    for url in args.gateway_url:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--gateway-url must be an http:// or https:// URL, got {url!r}")
    return OperatorSettings(
        namespaces=tuple(args.namespace), all_namespaces=args.all_namespaces, kubeconfig=args.kubeconfig or None,
        host=args.host, metrics_port=args.metrics_port,
        leader=LeaderSettings(enabled=not args.no_leader_election, namespace=args.lease_namespace,
                              name=args.lease_name, lease_duration_s=args.lease_duration,
                              renew_period_s=max(0.5, args.lease_duration / 3)),
        autoscaler=AutoscalerSettings(tick_s=args.tick, scrape_timeout_s=args.scrape_timeout,
                                      gateway_urls=tuple(args.gateway_url)))


def _controllers_run(args: argparse.Namespace) -> int:
    setup(args.log_level, args.log_format)
    settings = controllers_settings(args)
    import asyncio

    from controllers.operator import run

    asyncio.run(run(settings))
    return 0


def _sim_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trace", required=True,
                   help="CSV of t,rps rows, or a request trace whose first column is an arrival time in seconds "
                        "(e.g. ../shared/data/traces/splitwise_conv.csv); `bursty` or `bursty:SEED` = a synthetic "
                        "bursty trace")
    p.add_argument("--strategy", default="all", choices=["hpa", "kpa", "apa", "all"], help="strategy to replay")
    p.add_argument("--pod-capacity", type=float, default=1.0, help="requests/s one Ready pod serves")
    p.add_argument("--startup-delay", type=float, default=60.0, help="seconds from scale-up to a Ready pod")
    p.add_argument("--slo-queue", type=float, default=2.0,
                   help="a second whose queue takes longer than this to drain violates the SLO")
    p.add_argument("--target-utilization", type=float, default=0.7, help="target load per pod / capacity")
    p.add_argument("--min-replicas", type=int, default=1, help="minReplicas of every strategy")
    p.add_argument("--max-replicas", type=int, default=64, help="maxReplicas of every strategy")
    p.add_argument("--spec", default="", metavar="FILE",
                   help="YAML of PodAutoscaler spec fields applied to every strategy (windows, tolerances, ...)")
    p.add_argument("--plot", default="", metavar="FILE.png", help="write a chart of demand and replicas")
    p.add_argument("--optimizer", action="store_true",
                   help="scale a fleet of several GPU types from GPU-mix targets (needs --profiles and a request "
                        "trace with token counts; --trace may list several CSVs, comma-separated, which are mixed)")
    p.add_argument("--profiles", nargs="+", default=[], metavar="FILE",
                   help="--optimizer: AIBrix-format GPU profiles on one grid (brix profile writes them); the "
                        "mixed fleet uses all, each single-type fleet one")
    p.add_argument("--mix-interval", type=int, default=10, help="--optimizer: seconds between GPU-mix solves")
    p.add_argument("--workload-window", type=int, default=60,
                   help="--optimizer: seconds of requests the workload rates are averaged over")
    p.add_argument("--headroom", type=float, default=0.0,
                   help="--optimizer: solve for the measured rate times 1 + headroom")
    p.add_argument("--down-delay", type=float, default=60.0,
                   help="--optimizer: a cheaper mix is taken only after it was cheaper this many seconds")
    p.add_argument("--down-margin", type=float, default=0.1,
                   help="--optimizer: ...by more than this fraction of the held mix's cost")


def _sim_run(args: argparse.Namespace) -> int:
    import json

    from controllers.autoscaler import sim
    from controllers.autoscaler.model import SpecError

    if args.optimizer or args.profiles:
        from controllers.autoscaler.mix_cli import run_mix_sim
        return run_mix_sim(args)
    for flag in ("pod_capacity", "target_utilization"):
        if getattr(args, flag) <= 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be > 0")
    if args.startup_delay < 0 or args.slo_queue <= 0:
        raise UsageError("--startup-delay must be >= 0 and --slo-queue > 0")
    if args.trace.startswith("bursty"):
        seed = args.trace.partition(":")[2]
        if seed and not seed.isdigit():
            raise UsageError(f"--trace bursty:SEED needs an integer seed, got {seed!r}")
        rps = sim.bursty_trace(seed=int(seed or 7))
    else:
        try:
            rps = sim.load_trace(args.trace)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--trace: {exc}") from None
    overrides = {}
    if args.spec:
        from brix.files import read_yaml
        try:
            overrides = read_yaml(args.spec, "--spec file") or {}
        except Exception as exc:  # noqa: BLE001 - FileError and YAML errors say what was wrong
            raise UsageError(f"--spec: {exc}") from None
        if not isinstance(overrides, dict):
            raise UsageError(f"--spec: {args.spec} must hold a mapping of spec fields")
    cfg = sim.SimConfig(pod_capacity=args.pod_capacity, startup_delay_s=args.startup_delay,
                        slo_queue_s=args.slo_queue, target_utilization=args.target_utilization,
                        min_replicas=args.min_replicas, max_replicas=args.max_replicas)
    strategies = ["HPA", "KPA", "APA"] if args.strategy == "all" else [args.strategy.upper()]
    results = []
    for s in strategies:
        try:
            spec = sim.sim_spec(s, cfg, overrides)
        except SpecError as exc:
            raise UsageError(str(exc)) from None
        results.append(sim.simulate(rps, spec, cfg))
    for r in results:
        print(json.dumps(r.summary()))
    print(sim.format_table(results))
    if args.plot:
        from controllers.autoscaler.plot import write_chart
        write_chart(args.plot, rps, {r.strategy: r.replicas for r in results}, cfg.pod_capacity)
        print(f"chart: {args.plot}")
    return 0


COMMANDS: list[Command] = [
    Command("controllers", "the Brix operator: PodAutoscaler (HPA / KPA / APA, scale from zero), ModelAdapter, "
            "KVCache, RayClusterFleet",
            _controllers_arguments, _controllers_run,
            description="One kopf operator with leader election through a Lease, /healthz, /readyz and /metrics. "
                        "See controllers/README.md."),
    Command("autoscale-sim", "replay a request-rate trace through HPA / KPA / APA and compare them",
            _sim_arguments, _sim_run,
            description="Runs the controller's decision code against a model of engine pods (capacity, start-up "
                        "delay, queueing) and prints replica-seconds, SLO-violation seconds, oscillations and the "
                        "largest replica count per strategy, as JSON lines and a table."),
]
