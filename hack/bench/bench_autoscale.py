"""HPA vs KPA vs APA through `brix autoscale-sim`'s model and the controller's decide(), on the
Splitwise conversation trace (../shared/data/traces/splitwise_conv.csv, binned per second) and on
a synthetic bursty trace; each strategy with its defaults from its definition.

Besides the three defaults, "KPA-tuned" is KPA with KPA_TUNED (below).

Goal (issue 11): the best strategy has at least 33 % fewer oscillations and less SLO-violation
time than HPA, at no more replica-seconds. Prints one JSON line per trace and strategy, the
ratios to HPA, and whether some strategy meets the goal on each trace.

    .venv/bin/python hack/bench/bench_autoscale.py [--pod-capacity 1] [--startup-delay 60] [--slo-queue 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from controllers.autoscaler import sim  # noqa: E402

# One tuned configuration beside the defaults: Knative's scale-down delay set to HPA's own 300 s
# downscale window, and a wider tolerance band. Chosen by trying 6 KPA and 4 APA variants (scale-down
# delay / window, tolerance, stable window) on these same two traces, so it may fit them better
# than other workloads: tune with `brix autoscale-sim --spec` on your own trace.
KPA_TUNED = {"scaleDownDelaySeconds": 300, "tolerances": {"up": 0.3, "down": 0.3}}

TRACE = ROOT.parent / "shared" / "data" / "traces" / "splitwise_conv.csv"
HELD_OUT = ROOT.parent / "shared" / "data" / "traces" / "splitwise_code.csv"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pod-capacity", type=float, default=1.0)
    p.add_argument("--startup-delay", type=float, default=60.0)
    p.add_argument("--slo-queue", type=float, default=2.0)
    p.add_argument("--plot-dir", default="", help="write one PNG chart per trace here")
    args = p.parse_args()
    cfg = sim.SimConfig(pod_capacity=args.pod_capacity, startup_delay_s=args.startup_delay, slo_queue_s=args.slo_queue)
    traces = {"bursty (seed 7)": sim.bursty_trace(seed=7)}
    if TRACE.exists():
        traces = {"splitwise_conv": sim.load_trace(TRACE), **traces}
    else:
        print(f"note: {TRACE} is absent; only the synthetic traces run", file=sys.stderr)
    # KPA_TUNED was chosen on the two traces above; these two were not looked at while tuning
    if HELD_OUT.exists():
        traces["splitwise_code (held out)"] = sim.load_trace(HELD_OUT)
    traces["bursty (seed 11, held out)"] = sim.bursty_trace(seed=11)
    for name, rps in traces.items():
        t0 = time.perf_counter()
        results = {s: sim.simulate(rps, sim.sim_spec(s, cfg), cfg) for s in ("HPA", "KPA", "APA")}
        tuned = sim.simulate(rps, sim.sim_spec("KPA", cfg, KPA_TUNED), cfg)
        tuned.strategy = "KPA-tuned"
        results["KPA-tuned"] = tuned
        elapsed = time.perf_counter() - t0
        hpa = results["HPA"]
        print(f"\n== {name}: {len(rps)} s, mean {sum(rps) / len(rps):.2f} req/s, peak {max(rps):.0f} req/s "
              f"({elapsed:.2f} s to simulate 4 configurations)")
        for r in results.values():
            print(json.dumps({"trace": name, **r.summary()}))
        print(sim.format_table(list(results.values())))
        met = []
        for s in ("KPA", "APA", "KPA-tuned"):
            r = results[s]
            osc = r.oscillations / hpa.oscillations if hpa.oscillations else float("inf")
            slo = r.slo_violation_seconds / hpa.slo_violation_seconds if hpa.slo_violation_seconds else float("inf")
            cost = r.replica_seconds / hpa.replica_seconds
            ok = osc <= 0.67 and r.slo_violation_seconds < hpa.slo_violation_seconds and cost <= 1.0
            met += [s] if ok else []
            print(f"{s} / HPA: oscillations {osc:.2f}x, SLO-violation seconds {slo:.2f}x, replica-seconds {cost:.2f}x"
                  f" -> goal {'met' if ok else 'not met'}")
        print(f"goal (>= 33 % fewer oscillations, less SLO violation, no more replica-seconds than HPA): "
              f"{'met by ' + ', '.join(met) if met else 'NOT met'}")
        if args.plot_dir:
            from controllers.autoscaler.plot import write_chart
            out = Path(args.plot_dir) / f"autoscale-{name.split()[0]}.png"
            write_chart(str(out), rps, {s: r.replicas for s, r in results.items()}, cfg.pod_capacity)
            print(f"chart: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
