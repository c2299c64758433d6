"""`brix autoscale-sim --optimizer`: a fleet of two GPU types scaled from GPU-mix targets on a
request trace, compared with each single-type fleet; gpu_cost per type beside replica-seconds,
SLO-violation seconds and oscillations."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

from brix import procs

GRID = [[64], [256, 4096]]


def write(tmp: Path, name: str, doc: object) -> Path:
    path = tmp / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def trace(tmp: Path, name: str, seconds: int, rps: float, prompt: int, seed: int) -> Path:
    rng, t, rows = random.Random(seed), 0.0, ["arrived_at,num_prefill_tokens,num_decode_tokens"]
    while t < seconds:
        t += rng.expovariate(rps)
        rows.append(f"{t:.3f},{prompt},{rng.randint(10, 60)}")
    return write(tmp, name, "\n".join(rows) + "\n")


def sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(procs.brix_argv("autoscale-sim", *args), capture_output=True, text=True, timeout=300)


def test_the_mixed_fleet_costs_less_where_types_cross_over(tmp_path: Path) -> None:
    small = write(tmp_path, "small.json", {"gpu": "small", "cost": 1.0, "tputs": [[2.0, 0.2]], "indexes": GRID})
    big = write(tmp_path, "big.json", {"gpu": "big", "cost": 3.0, "tputs": [[4.0, 1.6]], "indexes": GRID})
    chats = trace(tmp_path, "chats.csv", 1800, 6.0, 200, 1)     # short prompts: small is cheaper per request
    docs = trace(tmp_path, "docs.csv", 1800, 2.0, 3000, 2)      # long prompts: big is cheaper per request
    out = sim("--optimizer", "--profiles", str(small), str(big), "--trace", f"{chats},{docs}",
              "--startup-delay", "30", "--headroom", "0.2")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    mixed, only_small, only_big = rows[0], rows[1], rows[2]
    comparison = rows[-1]["comparison"]
    assert set(mixed["gpu_cost_by_type"]) == {"small", "big"} and all(v > 0 for v in mixed["gpu_cost_by_type"].values())
    assert {"replica_seconds", "slo_violation_seconds", "oscillations"} <= set(mixed)
    cheapest = min(only_small["gpu_cost"], only_big["gpu_cost"])
    assert comparison["cost_ratio"] < 0.9 and mixed["gpu_cost"] < cheapest
    assert "fleet" in out.stdout.splitlines()[3]   # the table's header follows the JSON lines


def test_the_mix_never_costs_more_than_the_type_cheapest_everywhere(tmp_path: Path) -> None:
    cheap = write(tmp_path, "cheap.json", {"gpu": "cheap", "cost": 0.3, "tputs": [[2.0, 0.5]], "indexes": GRID})
    dear = write(tmp_path, "dear.json", {"gpu": "dear", "cost": 1.0, "tputs": [[3.0, 0.6]], "indexes": GRID})
    mixed_trace = f"{trace(tmp_path, 'a.csv', 900, 4.0, 200, 3)},{trace(tmp_path, 'b.csv', 900, 1.0, 3000, 4)}"
    out = sim("--optimizer", "--profiles", str(cheap), str(dear), "--trace", mixed_trace)
    assert out.returncode == 0, out.stderr
    comparison = json.loads(out.stdout.splitlines()[-1])["comparison"]
    assert comparison["cheapest_single"] == "only cheap" and comparison["cost_ratio"] == 1.0


def test_profiles_on_different_grids_are_refused(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", {"gpu": "a", "cost": 1.0, "tputs": [[1.0, 1.0]], "indexes": GRID})
    b = write(tmp_path, "b.json", {"gpu": "b", "cost": 1.0, "tputs": [[1.0]], "indexes": [[64], [256]]})
    out = sim("--optimizer", "--profiles", str(a), str(b), "--trace", str(trace(tmp_path, "t.csv", 60, 1.0, 100, 5)))
    assert out.returncode == 2 and "differs from" in out.stderr and "same --buckets" in out.stderr
    rates_only = write(tmp_path, "rates.csv", "t,rps\n0,1\n1,2\n")
    out = sim("--optimizer", "--profiles", str(a), "--trace", str(rates_only))
    assert out.returncode == 2 and "needs a request trace with columns" in out.stderr
