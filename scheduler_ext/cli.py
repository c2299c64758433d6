"""`brix` subcommands of scheduler_ext (flags only; heavy imports happen inside run).

- `brix scheduler-ext`: the kube-scheduler HTTP extender;
- `brix optimize`: the GPU-mix solver (Mélange ILP) on AIBrix-format profiles;
- `brix lora-plan`: the LoRA adapter placement plan (CP-SAT) for a state file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from brix.commands import Command, UsageError
from brix.logs import add_logging_flags

POLICIES = ("binpack", "spread")

if TYPE_CHECKING:
    from scheduler_ext.settings import Settings


# ---------------------------------------------------------------------- scheduler-ext

def _ext_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a cluster)")
    parser.add_argument("--port", type=int, default=8888, help="port kube-scheduler's urlPrefix points at")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--kubernetes", action="store_true",
                      help="Kubernetes mode: watch nodes and pods, /bind creates pods/binding")
    mode.add_argument("--nodes", default=None, metavar="FILE",
                      help="standalone mode: YAML List or multi-document file of v1 Nodes (and bound Pods)")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig for --kubernetes (else in-cluster, then ~/.kube/config)")
    parser.add_argument("--profiles", default=None, metavar="DIR",
                        help="folder of AIBrix-format GPU profiles (*.json) for the optimizer and the cost policy")
    parser.add_argument("--workloads", default=None, metavar="FILE",
                        help="YAML list of workloads {namespace, model, rps, distribution, ...} solved at start")
    parser.add_argument("--tls-cert", default=None, metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", default=None, metavar="FILE", help="private key for --tls-cert (PEM)")
    parser.add_argument("--default-policy", default="binpack", choices=POLICIES,
                        help="node scoring when neither the pod's scheduling.brix.dev/policy nor GPU-mix targets decide")
    parser.add_argument("--filter-keep", type=int, default=0, metavar="N",
                        help="answer /filter with only the N best-scoring fitting nodes (0: all of them); kube-scheduler "
                             "then scores only those, and with 1 skips scoring and /prioritize (deploy/ uses 1)")
    parser.add_argument("--resources", default=None,
                        help="comma-separated extended resources to manage (default: nvidia.com/gpu, amd.com/gpu, "
                             "huawei.com/Ascend910, ...)")
    parser.add_argument("--gateway-url", action="append", default=[], metavar="URL",
                        help="a gateway whose GET /v1/workload drives the GPU-mix targets (repeat for each replica: "
                             "their rates are summed); needs --profiles")
    parser.add_argument("--gateway-namespace", default="default",
                        help="namespace of the models the gateways serve (targets are stored under it)")
    parser.add_argument("--mix-interval", type=float, default=10.0, help="seconds between GPU-mix solves")
    parser.add_argument("--mix-down-delay", type=float, default=60.0,
                        help="a cheaper mix replaces the targets only after being cheaper this many seconds")
    parser.add_argument("--mix-down-margin", type=float, default=0.1,
                        help="...by more than this fraction of the current targets' cost")
    parser.add_argument("--mix-headroom", type=float, default=0.0,
                        help="solve for the measured request rate times 1 + headroom")
    add_logging_flags(parser)


def _existing(flag: str, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not path.exists():
        raise UsageError(f"{flag} {value}: no such file or folder")
    return path


def _run_ext(args: argparse.Namespace) -> int:

    from brix import logs
    from scheduler_ext.model import DEFAULT_RESOURCES
    from scheduler_ext.settings import Settings

    if not args.kubernetes and args.nodes is None:
        raise UsageError("choose a mode: --kubernetes (watch the API) or --nodes FILE (standalone)")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together; give both or neither")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: must be 1..65535")
    if args.filter_keep < 0:
        raise UsageError(f"--filter-keep {args.filter_keep}: must be >= 0 (0 keeps every fitting node)")
    resources = tuple(r.strip() for r in args.resources.split(",") if r.strip()) if args.resources else DEFAULT_RESOURCES
    profiles = _existing("--profiles", args.profiles)
    if profiles is not None and not profiles.is_dir():
        raise UsageError(f"--profiles {args.profiles}: must be a folder of *.json profiles")
    for url in args.gateway_url:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--gateway-url {url!r}: expected an http:// or https:// URL of a brix gateway")
    if args.gateway_url and profiles is None:
        raise UsageError("--gateway-url needs --profiles DIR: the GPU-mix targets are solved on those profiles")
    if args.mix_interval <= 0 or args.mix_down_delay < 0 or args.mix_headroom < 0 or not 0 <= args.mix_down_margin < 1:
        raise UsageError("--mix-interval must be > 0, --mix-down-delay and --mix-headroom >= 0, "
                         "--mix-down-margin within [0, 1)")
    settings = Settings(
        host=args.host, port=args.port, kubernetes=args.kubernetes, kubeconfig=args.kubeconfig,
        nodes_file=_existing("--nodes", args.nodes), profiles_dir=profiles,
        workloads_file=_existing("--workloads", args.workloads),
        tls_cert=_existing("--tls-cert", args.tls_cert), tls_key=_existing("--tls-key", args.tls_key),
        default_policy=args.default_policy, filter_keep=args.filter_keep, resources=resources,
        gateway_urls=tuple(args.gateway_url), gateway_namespace=args.gateway_namespace,
        mix_interval_s=args.mix_interval, mix_down_delay_s=args.mix_down_delay,
        mix_down_margin=args.mix_down_margin, mix_headroom=args.mix_headroom,
        log_level=args.log_level, log_format=args.log_format,
    )
    logs.setup(settings.log_level, settings.log_format)
    return run(settings)


def run(settings: Settings) -> int:
    import asyncio

    from scheduler_ext.nodes_file import NodesFileError
    from scheduler_ext.server import serve
    from scheduler_ext.solvers.melange import ProblemError
    from scheduler_ext.solvers.profiles import InputError

    try:
        asyncio.run(serve(settings))
    except (NodesFileError, InputError, ProblemError) as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        pass
    return 0


# ---------------------------------------------------------------------- optimize

def _opt_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profiles", nargs="+", required=True, metavar="FILE",
                        help="AIBrix-format GPU profiles (gpu, cost, tputs[output][input], indexes)")
    parser.add_argument("--workload", required=True, metavar="FILE",
                        help='JSON {"indexes": [[out], [in]], "distribution": [[fraction]]} on the profiles\' grid')
    parser.add_argument("--rps", type=float, required=True, help="total request rate (requests/s)")
    parser.add_argument("--slice-factor", type=int, default=4, help="slices per bucket (Mélange: 4 is enough)")
    parser.add_argument("--max", action="append", default=[], metavar="GPU=N",
                        help="at most N replicas of GPU type GPU (availability); repeatable")
    parser.add_argument("--min", action="append", default=[], metavar="GPU=N",
                        help="at least N replicas of GPU type GPU; repeatable")
    parser.add_argument("--time-limit", type=float, default=10.0, help="solver time limit in seconds")


def _counts(flag: str, items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.strip().isdigit():
            raise UsageError(f"{flag} {item!r}: expected GPU=N with N a non-negative integer, e.g. {flag} a100=4")
        out[name.strip()] = int(value)
    return out


def _run_opt(args: argparse.Namespace) -> int:
    from scheduler_ext.solvers import melange
    from scheduler_ext.solvers.profiles import InputError, check_grid, load_profile, load_workload

    try:
        loaded = [load_profile(Path(p)) for p in args.profiles]
        distribution, indexes = load_workload(Path(args.workload))
        for profile, pidx, _ in loaded:
            check_grid(pidx, indexes, f"{args.workload} vs profile {profile.name}")
        problem = melange.Problem([p for p, _, _ in loaded], distribution, args.rps, slice_factor=args.slice_factor,
                                  max_count=_counts("--max", args.max), min_count=_counts("--min", args.min),
                                  time_limit_s=args.time_limit)
        solution = melange.solve(problem)
    except (InputError, melange.ProblemError) as exc:
        raise UsageError(str(exc)) from None
    if not solution.feasible:
        print(f"brix optimize: infeasible: {solution.reason}", file=sys.stderr)
        return 1
    print(json.dumps({"replicas": solution.replicas, "cost": round(solution.cost, 6),
                      "solve_ms": round(solution.solve_ms, 2), "optimal": solution.optimal}))
    return 0


# ---------------------------------------------------------------------- lora-plan

def _lora_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", required=True, metavar="FILE",
                        help="JSON or YAML with pods, adapters, current placement (see scheduler_ext/README.md)")
    parser.add_argument("--time-limit", type=float, default=None, help="solver time limit in seconds (default: from the file, else 10)")
    parser.add_argument("--seed", type=int, default=None, help="solver random seed (default: from the file, else 0)")
    parser.add_argument("--move-cost", type=float, default=None,
                        help="req/s of peak-load reduction one load/unload move is worth (default: from the file, else 1.0)")


def _run_lora(args: argparse.Namespace) -> int:
    import dataclasses

    from brix.files import FileError, read_yaml
    from scheduler_ext.solvers import lora_placement

    path = Path(args.state)
    try:
        doc = read_yaml(path, "--state")
    except FileError as exc:
        raise UsageError(str(exc)) from None
    try:
        problem = lora_placement.problem_from_doc(doc, str(path))
        overrides = {k: v for k, v in (("time_limit_s", args.time_limit), ("seed", args.seed),
                                        ("move_cost_rps", args.move_cost)) if v is not None}
        problem = dataclasses.replace(problem, **overrides)
        plan = lora_placement.solve(problem)
    except lora_placement.ProblemError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(plan.to_json()))
    if not plan.feasible:
        print(f"brix lora-plan: infeasible: {plan.reason}", file=sys.stderr)
        return 1
    return 0


COMMANDS: list[Command] = [
    Command("scheduler-ext", "kube-scheduler HTTP extender for GPU and LoRA workloads", _ext_args, _run_ext,
            description="Filter, prioritize, bind and preempt for GPU pods by free GPUs, GPU type, cost and SLO; "
                        "serves GPU-mix targets at /v1/optimizer/targets/{namespace}/{model}."),
    Command("optimize", "cheapest GPU mix for a workload (Mélange ILP, OR-Tools)", _opt_args, _run_opt,
            description='Prints {"replicas": {...}, "cost": c, "solve_ms": t}; exit 1 when infeasible, 2 on bad input.'),
    Command("lora-plan", "LoRA adapter placement plan (CP-SAT)", _lora_args, _run_lora,
            description="Prints the plan JSON: placement, load/unload moves, peak load; exit 1 when infeasible."),
]
