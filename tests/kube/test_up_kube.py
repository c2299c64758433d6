"""`brix up` on the real control plane, as `make demo` runs it: nodes, device plugins, extender,
controllers, gateway and engine Deployments through the API, the demo (a GPU fault, a PodAutoscaler
scaling up, a ModelAdapter routed), then everything stopped by PID."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from brix.kube import binaries

pytestmark = pytest.mark.kube


def test_brix_up_runs_on_the_real_control_plane(tmp_path: Path) -> None:
    try:
        binaries.find()
    except binaries.MissingBinaries as exc:
        pytest.skip(str(exc))
    result = subprocess.run(
        [sys.executable, "-m", "brix", "up", "--workdir", str(tmp_path / "up"), "--nodes", "2",
         "--engines", "2", "--duration", "0.2"], capture_output=True, text=True, timeout=420)
    out = result.stdout
    assert result.returncode == 0, f"{out}\n{result.stderr}"
    assert "falling back" not in out
    assert "kubeconfig:" in out
    # kubectl get nodes,pods -o wide: two Ready GPU nodes, the extender, device plugins, gateway, engines
    assert out.count(" Ready ") >= 2
    for name in ("brix-scheduler-ext-", "brix-device-plugin-mock-", "brix-gateway-", "llama-2-7b-a100-",
                 "llama-2-7b-h100-"):
        assert name in out, name
    assert out.count("completion_tokens=16") == 4
    assert "allocatable nvidia.com/gpu 4 -> 3" in out
    assert "FailedScheduling:" in out and "is not among the pod's allowed types" in out
    assert "allocatable back to 4" in out
    assert "brix-controllers-" in out
    assert re.search(r"replicas 1 -> [23] .*none failed", out), out        # the PodAutoscaler scaled up
    assert re.search(r"chat with model=sql-lora: served by http://127\.", out), out  # the ModelAdapter is routed
    assert out.count("raycluster.ray.io/llama-405b-") == 2, out                  # the fleet made 2 RayClusters
    # the KVCache's servers serve: the second engine prefilled the first engine's prompt from the pool
    assert re.search(r"second engine \(from the pool\) \S+: \d+ prompt tokens, [1-9]\d* of them from the pool", out), out
    # the GPU-mix loop moved the replicas from the A100 Deployment to the H100 one when the prompts grew
    assert re.search(r"short prompts .*deployments \{'A100': [12], 'H100': 0\}", out), out
    assert re.search(r"long prompts .*deployments \{'A100': 0, 'H100': [12]\}", out), out
    assert "demo done" in out and out.rstrip().endswith("stopped")
    # every process of the cluster was stopped by PID: nothing of it is left running
    left = subprocess.run(["pgrep", "-f", str(tmp_path / "up")], capture_output=True, text=True)
    assert left.stdout.strip() == "", left.stdout
