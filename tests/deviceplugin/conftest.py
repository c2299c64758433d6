"""Fixtures of the device plugin tests: a short temp kubelet dir, a test kubelet, mock configs."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from brix import procs
from nvml_mock import builders
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


@pytest.fixture
def mock_config(tmp_path: Path) -> Callable[..., Path]:
    """write(text=None, name=..., **node_config kwargs) -> path of a mock TOML (nvml_mock.builders)."""

    def write(text: str | None = None, name: str = "node.toml", **kwargs: Any) -> Path:
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        else:
            kwargs.setdefault("nvlink", "pairs")
            kwargs.setdefault("node_name", "dp-test")
            builders.write_config(path, builders.node_config(**kwargs))
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
