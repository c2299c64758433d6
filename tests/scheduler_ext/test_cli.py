"""`brix optimize` and `brix lora-plan` as a user runs them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from brix import procs
from scheduler_ext.solvers.melange import Problem, solve
from scheduler_ext.solvers.profiles import load_profile


def brix(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(procs.brix_argv(*args), capture_output=True, text=True, timeout=60)


@pytest.fixture
def toy(tmp_path: Path) -> dict[str, str]:
    files = {}
    for name, cost, tputs in (("A10G", 1.01, [[2, 1], [5, 2]]), ("A100", 3.67, [[20, 20], [40, 20]])):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"gpu": name, "cost": cost, "tputs": tputs, "indexes": [[64, 128], [256, 512]]}))
        files[name] = str(path)
    workload = tmp_path / "workload.json"
    workload.write_text(json.dumps({"indexes": [[64, 128], [256, 512]], "distribution": [[0.2, 0.1], [0.5, 0.2]]}))
    files["workload"] = str(workload)
    return files


def test_optimize_toy(toy):
    out = brix("optimize", "--profiles", toy["A10G"], toy["A100"], "--workload", toy["workload"], "--rps", "30",
               "--slice-factor", "1")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["replicas"] == {"A10G": 3, "A100": 1}
    assert doc["cost"] == pytest.approx(6.70)
    assert doc["solve_ms"] >= 0


def test_optimize_infeasible_exits_1_and_bad_input_exits_2(toy, tmp_path):
    out = brix("optimize", "--profiles", toy["A10G"], "--workload", toy["workload"], "--rps", "30",
               "--max", "A10G=2")
    assert out.returncode == 1 and "infeasible" in out.stderr and "A10G<=2" in out.stderr
    out = brix("optimize", "--profiles", toy["A10G"], "--workload", toy["workload"], "--rps", "30", "--max", "A10G")
    assert out.returncode == 2 and "expected GPU=N" in out.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"gpu": "x", "tputs": [[1]]}')
    out = brix("optimize", "--profiles", str(bad), "--workload", toy["workload"], "--rps", "1")
    assert out.returncode == 2 and "field cost" in out.stderr and "bad.json" in out.stderr
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"indexes": [[1, 2], [3, 4]], "distribution": [[1, 0], [0, 0]]}))
    out = brix("optimize", "--profiles", toy["A10G"], "--workload", str(grid), "--rps", "1")
    assert out.returncode == 2 and "bucket grid" in out.stderr


def test_optimize_on_the_aibrix_profiles(shared_data, tmp_path):
    a100 = shared_data / "profiles" / "simulator-llama2-7b-a100.json"
    a40 = shared_data / "profiles" / "simulator-llama2-7b-a40.json"
    profile, indexes, _ = load_profile(a100)
    # every feasible cell of the A100 profile, weighted toward short requests
    dist = [[(1.0 / (o + 1)) if profile.tputs[o][i] > 0 else 0.0 for i in range(5)] for o in range(8)]
    workload = tmp_path / "w.json"
    workload.write_text(json.dumps({"indexes": indexes, "distribution": dist}))
    out = brix("optimize", "--profiles", str(a100), str(a40), "--workload", str(workload), "--rps", "100",
               "--max", "simulator-llama2-7b-a40=10")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    reps = doc["replicas"]
    assert reps["simulator-llama2-7b-a40"] <= 10 and reps["simulator-llama2-7b-a100"] > 0
    assert doc["cost"] == pytest.approx(reps["simulator-llama2-7b-a100"] * 1.0 + reps["simulator-llama2-7b-a40"] * 0.3)
    bound = solve(Problem([profile, load_profile(a40)[0]], dist, 100, continuous=True,
                          max_count={"simulator-llama2-7b-a40": 10}))
    assert doc["cost"] >= bound.cost - 1e-6
    assert doc["cost"] <= bound.cost + 1.0 + 1e-6  # within one A100 of the exact fractional optimum


def test_lora_plan_prints_a_plan(tmp_path):
    state = tmp_path / "state.yaml"
    state.write_text("""
pods:
  - {name: engine-0, slots: 2, memory_mib: 2048}
  - {name: engine-1, slots: 2, memory_mib: 2048}
adapters:
  - {name: sql, size_mib: 512, rate: 8, min_replicas: 2}
  - {name: chat, size_mib: 512, rate: 1}
current:
  engine-0: [sql, chat]
options: {time_limit_s: 5, seed: 1}
""")
    out = brix("lora-plan", "--state", str(state))
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["feasible"] and plan["load"] == [{"adapter": "sql", "pod": "engine-1"}]
    assert plan["unload"] == [] and plan["moves"] == 1
    state.write_text("pods: [{name: p, slots: 1, memory_mib: 10}]\nadapters: [{name: a, size_mib: 50, rate: 1}]\n")
    out = brix("lora-plan", "--state", str(state))
    assert out.returncode == 1 and "fits on no pod" in out.stderr
    out = brix("lora-plan", "--state", str(tmp_path / "missing.yaml"))
    assert out.returncode == 2 and "cannot read" in out.stderr


EXAMPLES = Path(__file__).resolve().parents[2] / "scheduler_ext" / "examples"


def test_shipped_examples_run(shared_data):
    out = brix("lora-plan", "--state", str(EXAMPLES / "lora-state.yaml"))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["placement"]
    profiles = [str(shared_data / "profiles" / f"simulator-llama2-7b-{g}.json") for g in ("a100", "a40")]
    out = brix("optimize", "--profiles", *profiles, "--workload", str(EXAMPLES / "workload-llama2-7b.json"),
               "--rps", "200", "--max", "simulator-llama2-7b-a40=10")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["replicas"]["simulator-llama2-7b-a100"] > 0


def test_scheduler_ext_usage_errors(tmp_path):
    out = brix("scheduler-ext", "--port", "1")
    assert out.returncode == 2 and "--kubernetes" in out.stderr and "--nodes FILE" in out.stderr
    bad = tmp_path / "nodes.yaml"
    bad.write_text("kind: Deployment\nmetadata: {name: x}\n")
    out = brix("scheduler-ext", "--nodes", str(bad), "--port", "1")
    assert out.returncode == 2 and "only Node and Pod objects are read" in out.stderr
    out = brix("scheduler-ext", "--nodes", str(bad), "--tls-cert", str(bad))
    assert out.returncode == 2 and "--tls-key" in out.stderr
