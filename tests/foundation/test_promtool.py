"""`promtool check metrics` passes for every /metrics name Brix makes up (engine-mock's vllm:*
names are vLLM's and keep vLLM's colons; everything else carries no colon)."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from brix import procs

ROOT = Path(__file__).resolve().parent.parent.parent


def promtool() -> str:
    """$PROMTOOL (make test sets it from hack/promtool.sh), promtool on PATH, or hack/promtool.sh's cache."""
    candidates = [os.environ.get("PROMTOOL", ""), shutil.which("promtool") or ""]
    result = subprocess.run([str(ROOT / "hack" / "promtool.sh"), "--cached"], capture_output=True, text=True,
                            timeout=30)
    candidates.append(result.stdout.strip())
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    message = "promtool is missing: run `make promtool` (builds it with `go install`) or put promtool on PATH"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


def lint(tool: str, text: str) -> list[str]:
    result = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    if result.returncode not in (0, 3):  # 3: lint problems found (listed); anything else: promtool failed
        pytest.fail(f"promtool check metrics failed to run: {result.stderr}")
    return [p for p in problems if not p.startswith("vllm:")]  # vLLM's own names are vLLM's business


def names(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_promtool_passes_for_every_name_brix_makes_up(brix_process, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tool = promtool()
    engine_port, gateway_port, ext_port, dp_port = (procs.free_port() for _ in range(4))
    engine = f"http://127.0.0.1:{engine_port}"
    brix_process("engine-mock", "engine-mock", "--port", str(engine_port), "--speed", "50",
                 ready_url=f"{engine}/health")
    gateway = f"http://127.0.0.1:{gateway_port}"
    brix_process("gateway", "gateway", "--port", str(gateway_port), "--endpoints", engine,
                 ready_url=f"{gateway}/readyz")
    body = b'{"model":"mock-model","prompt":"hello","max_tokens":2}'
    for url in (engine, gateway):  # a request through each, so the histograms have samples
        request = urllib.request.Request(f"{url}/v1/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
    ext = f"http://127.0.0.1:{ext_port}"
    brix_process("scheduler-ext", "scheduler-ext", "--port", str(ext_port), "--nodes",
                 str(ROOT / "scheduler_ext" / "examples" / "nodes.yaml"), ready_url=f"{ext}/healthz")
    mock = tmp_path / "node.toml"
    subprocess.run([*procs.brix_argv("nvml-mock", "init", "--config", str(mock), "--gpus", "2")], check=True,
                   capture_output=True, timeout=60)
    dp = f"http://127.0.0.1:{dp_port}"
    (tmp_path / "kubelet").mkdir()
    brix_process("device-plugin", "device-plugin", "--mock-config", str(mock), "--kubelet-dir",
                 str(tmp_path / "kubelet"), "--metrics-host", "127.0.0.1", "--metrics-port", str(dp_port),
                 ready_url=f"{dp}/healthz")
    failures = {}
    for component, url in (("engine-mock", engine), ("gateway", gateway), ("scheduler-ext", ext),
                           ("device-plugin", dp)):
        text = page(f"{url}/metrics")
        ours = {n for n in names(text) if not n.startswith("vllm:")}
        assert ours, f"{component} exports no metric of its own"
        colons = sorted(n for n in ours if ":" in n)
        problems = lint(tool, text) + [f"{n}: a colon in a name Brix makes up" for n in colons]
        if problems:
            failures[component] = problems
    assert not failures, failures
