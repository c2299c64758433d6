"""Root fixtures: loopback servers shared by every component's tests.

- free_port: a free TCP port on 127.0.0.1.
- brix_process: start `brix <subcommand>` as a subprocess, wait for /healthz or a socket,
  stop it by PID afterwards; its log is printed when the test fails.
- redis_url: a real redis-server on a free loopback port (skipped outside CI when absent).
- k8s_api: see tests/k8s_api/__init__.py (the fast emulator).
- kube_cluster, kube: see tests/kube/__init__.py (the real control plane).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from brix import procs

pytest_plugins = ["tests.k8s_api", "tests.kube"]

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data; skips with a clear reason when the folder is absent (CI always has it)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"test data folder {SHARED_DATA} is absent (CI provides ../shared beside the checkout)")
    return SHARED_DATA


@pytest.fixture
def free_port() -> int:
    return procs.free_port()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


StartBrix = Callable[..., procs.ManagedProcess]


@pytest.fixture
def brix_process(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartBrix]:
    """start(name, *args, ready_url=..., ready_socket=..., env=..., timeout=30) -> ManagedProcess.

    Every process started is stopped by PID at teardown; if the test failed, its log tail is
    printed so the failure explains itself.
    """
    started: list[procs.ManagedProcess] = []

    def start(name: str, *args: str, ready_url: str | None = None, ready_socket: str | None = None,
              env: dict[str, str] | None = None, timeout: float = 30.0, wait: bool = True) -> procs.ManagedProcess:
        proc = procs.start(name, procs.brix_argv(*args), tmp_path / "logs" / f"{name}-{len(started)}.log",
                           ready_url=ready_url, ready_socket=ready_socket, env=env)
        started.append(proc)
        if wait:
            proc.wait_ready(timeout)
        return proc

    yield start
    failed = any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))
    for proc in reversed(started):
        proc.stop()
        if failed:
            print(f"\n----- log of {proc.name} (pid {proc.pid}, {' '.join(proc.argv[2:])}) -----\n{proc.log_tail(80)}")


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free loopback port. In CI it must exist (make test installs it)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; `make test` installs it with apt-get when run as root")
        pytest.skip("redis-server binary not found; install it (apt-get install redis-server) to run this test")
    port = procs.free_port()
    proc = procs.start(
        "redis-server",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        tmp_path / "redis.log",
        ready_port=port,
    )
    try:
        proc.wait_ready(10)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.stop()
