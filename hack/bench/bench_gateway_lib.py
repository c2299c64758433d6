"""Shared pieces of the gateway benchmarks: start engines, the Brix gateway and the peer routers
(sglang-router, vllm-router from a separate venv), and drive load with aiohttp.

Not a benchmark itself; imported by bench_gateway_overhead.py and bench_gateway_routing.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import statistics
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from brix import procs  # noqa: E402

PEER_HINT = ("python3 -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install sglang-router vllm-router "
             "(a separate venv: never install the peers into the project's .venv)")


class PeerUnavailable(Exception):
    pass


@dataclass
class Procs:
    log_dir: Path
    started: list[procs.ManagedProcess] = field(default_factory=list)

    def start(self, name: str, argv: list[str], ready_url: str | None, timeout: float = 60.0,
              env: dict[str, str] | None = None) -> procs.ManagedProcess:
        proc = procs.start(name, argv, self.log_dir / f"{name}.log", ready_url=ready_url, env=env)
        self.started.append(proc)
        proc.wait_ready(timeout)
        return proc

    def stop(self, proc: procs.ManagedProcess) -> None:
        proc.stop()
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        for p in reversed(self.started):
            p.stop()
        self.started.clear()


@contextlib.contextmanager
def process_group(log_dir: Path) -> Iterator[Procs]:
    ps = Procs(log_dir)
    try:
        yield ps
    finally:
        ps.stop_all()


def start_engines(ps: Procs, n: int, *extra: str, model: str = "bench-llm") -> list[str]:
    urls = []
    for i in range(n):
        port = procs.free_port()
        ps.start(f"engine-{i}", procs.brix_argv("engine-mock", "--port", str(port), "--model", model,
                                                "--seed", str(i), "--log-level", "warning", *extra),
                 f"http://127.0.0.1:{port}/health")
        urls.append(f"http://127.0.0.1:{port}")
    return urls


def start_brix(ps: Procs, endpoints: list[str], *extra: str, name: str = "brix-gateway",
               event_loop: str = "uvloop") -> str:
    """Start `brix gateway` on the given event loop (uvloop, or asyncio for comparison)."""
    port = procs.free_port()
    ps.start(name, procs.brix_argv("gateway", "--port", str(port), "--endpoints", ",".join(endpoints),
                                   "--no-access-log", "--log-level", "warning", "--event-loop", event_loop, *extra),
             f"http://127.0.0.1:{port}/readyz")
    return f"http://127.0.0.1:{port}"


def _peer_bin(venv: Path, name: str) -> Path:
    path = venv / "bin" / name
    if not path.exists():
        raise PeerUnavailable(f"{name} not found in {venv}; install with: {PEER_HINT}")
    return path


def start_sglang(ps: Procs, venv: Path, endpoints: list[str], policy: str, *extra: str) -> str:
    python = _peer_bin(venv, "python")
    _peer_bin(venv, "sglang-router")
    port, prom = procs.free_port(), procs.free_port()
    argv = [str(python), "-m", "sglang_router.launch_router", "--worker-urls", *endpoints, "--policy", policy,
            "--host", "127.0.0.1", "--port", str(port), "--prometheus-port", str(prom), "--log-level", "warn", *extra]
    try:
        ps.start(f"sglang-{policy}", argv, f"http://127.0.0.1:{port}/health")
    except procs.ProcessFailed as exc:
        raise PeerUnavailable(f"sglang-router did not start: {str(exc)[-400:]}") from None
    return f"http://127.0.0.1:{port}"


def start_vllm_router(ps: Procs, venv: Path, endpoints: list[str], policy: str, *extra: str) -> str:
    binary = _peer_bin(venv, "vllm-router")
    port, prom = procs.free_port(), procs.free_port()
    argv = [str(binary), "--worker-urls", *endpoints, "--policy", policy, "--host", "127.0.0.1",
            "--port", str(port), "--prometheus-port", str(prom), "--log-level", "warning", *extra]
    try:
        ps.start(f"vllm-router-{policy}", argv, f"http://127.0.0.1:{port}/health")
    except procs.ProcessFailed as exc:
        raise PeerUnavailable(f"vllm-router did not start: {str(exc)[-400:]}") from None
    return f"http://127.0.0.1:{port}"


def wait_serving(url: str, model: str, timeout: float = 30.0) -> None:
    """Wait until a completion through `url` succeeds (routers may need a moment to see workers)."""
    body = f'{{"model": "{model}", "prompt": "warm up", "max_tokens": 1}}'.encode()
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise PeerUnavailable(f"{url} never answered a completion: {last}")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


@dataclass
class LoadResult:
    latencies: list[float]
    errors: int
    elapsed: float

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def p(self, q: float) -> float:
        return pct(self.latencies, q)

    def mean(self) -> float:
        return statistics.fmean(self.latencies) if self.latencies else float("nan")


def session(limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, limit_per_host=0),
                                 skip_auto_headers=("User-Agent",))


async def closed_loop(urls: list[str], body: bytes, concurrency: int, duration: float) -> LoadResult:
    """`concurrency` workers send back-to-back POSTs for `duration` seconds (urls used round-robin)."""
    lat: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration
    headers = {"Content-Type": "application/json"}

    async with session(concurrency * 2) as s:
        async def worker(i: int) -> None:
            nonlocal errors
            n = i
            while time.perf_counter() < stop_at:
                url = urls[n % len(urls)]
                n += 1
                took = await _timed_post(s, url, body, headers)
                if took is not None:
                    lat.append(took)
                else:
                    errors += 1
        t_start = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return LoadResult(lat, errors, time.perf_counter() - t_start)


async def _timed_post(s: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> float | None:
    """Seconds one POST took to a 200 with its body read; None when it failed."""
    t0 = time.perf_counter()
    try:
        async with s.post(url, data=body, headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                return None
    except aiohttp.ClientError:
        return None
    return time.perf_counter() - t0


async def open_loop(urls: list[str], body: bytes, rate: float, duration: float) -> LoadResult:
    """Poisson-free fixed-rate arrivals: one POST every 1/rate seconds, whatever the latency."""
    lat: list[float] = []
    errors = 0
    headers = {"Content-Type": "application/json"}
    n = int(rate * duration)
    async with session(1024) as s:
        async def one(i: int, at: float) -> None:
            nonlocal errors
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            took = await _timed_post(s, urls[i % len(urls)], body, headers)
            if took is not None:
                lat.append(took)
            else:
                errors += 1
        t_start = time.perf_counter() + 0.05
        await asyncio.gather(*(one(i, t_start + i / rate) for i in range(n)))
        return LoadResult(lat, errors, time.perf_counter() - t_start)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, Callable[[Any], str]]]) -> str:
    head = [c[1] for c in columns]
    body = [[fmt(r.get(key)) if r.get(key) is not None else "-" for key, _, fmt in columns] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def has_binary(name: str) -> bool:
    return shutil.which(name) is not None
