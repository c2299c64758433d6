"""Fixtures: a real `brix engine-mock` subprocess on a loopback port, and a /metrics parser."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from brix import procs


@dataclass
class EngineUnderTest:
    url: str
    proc: procs.ManagedProcess

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as resp:
            return parse_metrics(resp.read().decode())


def parse_metrics(text: str) -> dict[str, float]:
    """`name{labels}` -> value for every sample line (labels kept verbatim in the key)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out


def metric(samples: dict[str, float], name: str, model: str = "m1") -> float:
    return samples[f'{name}{{engine="0",model_name="{model}"}}']


StartEngine = Callable[..., EngineUnderTest]


@pytest.fixture
def start_engine(brix_process) -> StartEngine:  # type: ignore[no-untyped-def]
    def start(*args: str, model: str = "m1", speed: str = "20") -> EngineUnderTest:
        port = procs.free_port()
        url = f"http://127.0.0.1:{port}"
        proc = brix_process("engine-mock", "engine-mock", "--port", str(port), "--model", model, "--speed", speed,
                            *args, ready_url=url + "/health")
        return EngineUnderTest(url, proc)

    return start


@pytest.fixture
def engine(start_engine: StartEngine) -> EngineUnderTest:
    return start_engine()
