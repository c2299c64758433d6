"""Fixtures of the device plugin tests: a short temp kubelet dir, a test kubelet, mock configs."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from brix import procs
from tests.deviceplugin.kubelet import TestKubelet


@pytest.fixture
def kubelet_dir() -> Iterator[Path]:
    # unix socket paths are limited to ~107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="bdp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def kubelet(kubelet_dir: Path) -> AsyncIterator[TestKubelet]:
    k = TestKubelet(kubelet_dir)
    await k.start()
    yield k
    await k.stop()


def gpu_config(cards: int = 4, *, node: str = "dp-test", extra: str = "") -> str:
    """A mock node of A100s: NVLink pairs (0-1, 2-3, ...), two NUMA nodes, one PCIe switch per pair."""
    lines = [f'node_name = "{node}"', "", "[gpus]", f"card_count = {cards}", ""]
    for i in range(cards):
        peer = i ^ 1
        lines += [f"[gpus-{i}]", 'device_name = "NVIDIA A100-SXM4-80GB"',
                  f"numa_node = {0 if i < cards // 2 or cards == 1 else 1}", f"pcie_switch = {i // 2}"]
        if peer < cards:
            lines += ["nvlink_active = [true, true, true, true]", f"nvlink_peers = [{peer}, {peer}, {peer}, {peer}]"]
        else:
            lines += ["nvlink_active = []", "nvlink_peers = []"]
        lines.append("")
    return "\n".join(lines) + extra


@pytest.fixture
def mock_config(tmp_path: Path) -> Callable[..., Path]:
    def write(text: str | None = None, name: str = "node.toml", **kwargs: object) -> Path:
        path = tmp_path / name
        path.write_text(text if text is not None else gpu_config(**kwargs))  # type: ignore[arg-type]
        return path

    return write


def brix_run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a short `brix` command (inject, diagnose) to completion."""
    return subprocess.run(procs.brix_argv(*args), capture_output=True, text=True, timeout=timeout)


def inject(config: Path, *args: str) -> None:
    result = brix_run("nvml-mock", "inject", "--config", str(config), *args)
    assert result.returncode == 0, f"brix nvml-mock inject {' '.join(args)} failed:\n{result.stderr}"


def plugin_args(kubelet_dir: Path, config: Path, *extra: str, metrics_port: int = 0) -> list[str]:
    return ["device-plugin", "--kubelet-dir", str(kubelet_dir), "--mock-config", str(config),
            "--metrics-port", str(metrics_port), "--health-poll-interval", "0.1",
            "--kubelet-poll-interval", "0.2", "--health-quiet-period", "1", *extra]
