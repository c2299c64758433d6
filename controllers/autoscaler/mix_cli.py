"""`brix autoscale-sim --optimizer --profiles P1 P2 ...`: flags -> mix_sim, printed side by side."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from brix.commands import UsageError


def run_mix_sim(args: argparse.Namespace) -> int:
    from controllers.autoscaler import mix_sim
    from scheduler_ext.gpu_mix import MixPolicy
    from scheduler_ext.solvers.profiles import InputError, load_profile

    if not args.optimizer:
        raise UsageError("--profiles is for --optimizer (a fleet scaled from GPU-mix targets); add --optimizer")
    if len(args.profiles) < 1:
        raise UsageError("--optimizer needs --profiles FILE [FILE ...] (AIBrix-format; brix profile writes them)")
    for flag in ("mix_interval", "workload_window"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= 1 second")
    if args.headroom < 0 or args.down_delay < 0 or not 0 <= args.down_margin < 1:
        raise UsageError("--headroom and --down-delay must be >= 0, --down-margin within [0, 1)")
    if args.startup_delay < 0 or args.slo_queue <= 0:
        raise UsageError("--startup-delay must be >= 0 and --slo-queue > 0")
    try:
        loaded = [load_profile(Path(p)) for p in args.profiles]
    except InputError as exc:
        raise UsageError(f"--profiles: {exc}") from None
    indexes = loaded[0][1]
    if not indexes:
        raise UsageError(f"--profiles {args.profiles[0]}: has no indexes (the [[output], [input]] token grid)")
    for (_, idx, _), path in zip(loaded, args.profiles, strict=True):
        if idx != indexes:
            raise UsageError(f"--profiles {path}: grid {idx} differs from {args.profiles[0]}'s {indexes}; "
                             "profile every GPU type on the same --buckets")
    names = [p.name for p, _, _ in loaded]
    if len(set(names)) != len(names):
        raise UsageError(f"--profiles: two profiles name the same GPU type ({names}); give each a distinct gpu")
    try:
        requests = mix_sim.load_requests([t for t in args.trace.split(",") if t])
    except (OSError, ValueError) as exc:
        raise UsageError(f"--trace: {exc}") from None
    cfg = mix_sim.MixSimConfig(interval_s=args.mix_interval, window_s=args.workload_window,
                               startup_delay_s=args.startup_delay, slo_queue_s=args.slo_queue,
                               max_replicas=args.max_replicas,
                               policy=MixPolicy(down_delay_s=args.down_delay, down_margin=args.down_margin,
                                                headroom=args.headroom))
    counts = mix_sim.per_second_grid(requests, indexes)
    gpus = [p for p, _, _ in loaded]
    mixed = mix_sim.simulate_mix(counts, gpus, cfg, fleet="mixed")
    singles = [mix_sim.simulate_mix(counts, [g], cfg, fleet=f"only {g.name}") for g in gpus] if len(gpus) > 1 else []
    for r in [mixed, *singles]:
        print(json.dumps(r.summary()))
    print(mix_sim.format_table([mixed, *singles]))
    if singles:
        print(json.dumps({"comparison": mix_sim.compare(mixed, singles)}))
    if args.plot:
        from controllers.autoscaler.plot import write_chart

        demand = [sum(map(sum, c)) for c in counts]
        write_chart(args.plot, demand, {f"mixed {k}": v for k, v in mixed.replicas.items()}, 1.0)
        print(f"chart: {args.plot}")
    return 0
