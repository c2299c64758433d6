"""Fixtures: engine_mock subprocesses and a gateway subprocess in front of them, on loopback.

`start_engines` / `start_gateway` are per test; `shared_stack` is one gateway over two engines
for a whole module (tests that do not change engine state share it to keep the suite fast).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from brix import procs


@dataclass
class Engine:
    url: str
    proc: procs.ManagedProcess


@dataclass
class Launcher:
    log_dir: Path
    started: list[procs.ManagedProcess] = field(default_factory=list)

    def _start(self, name: str, args: list[str], ready_url: str, env: dict[str, str] | None = None,
               wait: bool = True) -> procs.ManagedProcess:
        proc = procs.start(name, procs.brix_argv(*args), self.log_dir / f"{name}-{len(self.started)}.log",
                           ready_url=ready_url, env=env)
        self.started.append(proc)
        if wait:
            proc.wait_ready(30)
        return proc

    def engines(self, n: int = 2, *extra: str, model: str = "mock-llm") -> list[Engine]:
        out = []
        for i in range(n):
            port = procs.free_port()
            proc = self._start(f"engine-{i}", ["engine-mock", "--port", str(port), "--model", model,
                                               "--speed", "20", "--seed", str(i), *extra],
                               f"http://127.0.0.1:{port}/health", wait=False)
            out.append(Engine(f"http://127.0.0.1:{port}", proc))
        for e in out:
            e.proc.wait_ready(30)
        return out

    def gateway(self, endpoints: list[str], *extra: str, env: dict[str, str] | None = None,
                wait_ready: bool = True) -> str:
        port = procs.free_port()
        url = f"http://127.0.0.1:{port}"
        args = ["gateway", "--port", str(port), "--scrape-interval", "0.05", "--models-refresh", "0.5", *extra]
        if endpoints:
            args += ["--endpoints", ",".join(endpoints)]
        self._start("gateway", args, url + ("/readyz" if wait_ready else "/healthz"), env=env)
        return url

    def stop_all(self, show_logs: bool) -> None:
        for proc in reversed(self.started):
            proc.stop()
            if show_logs:
                print(f"\n----- log of {proc.name} (pid {proc.pid}) -----\n{proc.log_tail(60)}")


@pytest.fixture
def launcher(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Launcher]:
    lc = Launcher(tmp_path / "logs")
    yield lc
    failed = any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))
    lc.stop_all(failed)


@pytest.fixture
def start_engines(launcher: Launcher) -> Callable[..., list[Engine]]:
    return launcher.engines


@pytest.fixture
def start_gateway(launcher: Launcher) -> Callable[..., str]:
    return launcher.gateway


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[Engine]]]:
    lc = Launcher(tmp_path_factory.mktemp("stack") / "logs")
    try:
        engines = lc.engines(2)
        url = lc.gateway([e.url for e in engines], "--max-body-bytes", "65536")
        yield url, engines
    finally:
        lc.stop_all(False)
