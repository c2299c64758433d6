"""`brix up --standalone` end to end (tests/kube/test_up_kube.py runs the default, on the real
control plane): every component starts, the demo goes through each real protocol,
and everything stops by PID when it is done."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from brix import procs


def test_brix_up_standalone_runs_the_whole_mock_gpu_cluster(tmp_path: Path) -> None:
    base = procs.free_port()
    result = subprocess.run(
        [sys.executable, "-m", "brix", "up", "--standalone", "--workdir", str(tmp_path / "up"), "--base-port", str(base),
         "--nodes", "2", "--gpus-per-node", "4", "--engines", "2", "--duration", "0.2"],
        capture_output=True, text=True, timeout=240)
    out = result.stdout
    assert result.returncode == 0, f"{out}\n{result.stderr}"
    for started in ("device-plugin@gpu-node-0", "device-plugin@gpu-node-1", "scheduler-ext", "engine-0",
                    "engine-1", "gateway"):
        assert f"started {started}" in out
    assert "bound llama-engine-0 -> gpu-node-" in out
    assert "NVIDIA_VISIBLE_DEVICES=GPU-" in out
    assert out.count("completion_tokens=16") == 6
    assert "ListAndWatch reported 1 Unhealthy GPU" in out and "allocatable nvidia.com/gpu 4 -> 3" in out
    assert "needs 4 nvidia.com/gpu, node has 3 in total (1 unhealthy)" in out  # the extender saw it
    assert "GPU 1 Healthy again" in out
    assert "demo done" in out and out.rstrip().endswith("stopped")
    # every process was stopped: nothing listens on the gateway port any more
    logs = sorted(p.name for p in (tmp_path / "up" / "logs").iterdir())
    assert "gateway.log" in logs and "scheduler-ext.log" in logs
