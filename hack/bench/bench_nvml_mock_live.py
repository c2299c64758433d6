"""Benchmark the NVML mock's live channel and per-call cost.

    .venv/bin/python hack/bench/bench_nvml_mock_live.py [--events 40] [--calls 200000]

Prints, side by side:
1. fault-to-event latency: XID written with update_config (what `brix nvml-mock inject` does) ->
   nvmlEventSetWait_v2 returns it in another thread, for poll intervals 20 ms and 50 ms, against
   the 5000 ms event-wait period of NVIDIA's device plugin;
2. the same through a real `brix nvml-mock inject` subprocess (includes Python start-up);
3. NVML calls/s with the live re-read (one stat per call) against the same mock with the config
   frozen, and a full 8-GPU health sweep (the calls a health checker makes) per second.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pynvml

from brix.procs import brix_argv
from nvml_mock import builders, faults
from nvml_mock.live import LiveConfig, update_config
from nvml_mock.nvml import NvmlMock

NVIDIA_DP_WAIT_MS = 5000.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def event_latency(path: Path, poll_s: float, events: int) -> list[float]:
    nvml = NvmlMock(LiveConfig(path), poll_interval_s=poll_s)
    nvml.nvmlInit()
    event_set = nvml.nvmlEventSetCreate()
    nvml.nvmlDeviceRegisterEvents(nvml.nvmlDeviceGetHandleByIndex(5), pynvml.nvmlEventTypeXidCriticalError, event_set)
    while True:  # drain what earlier rounds left
        try:
            nvml.nvmlEventSetWait_v2(event_set, 0)
        except pynvml.NVMLError_Timeout:
            break
    latencies: list[float] = []
    written: list[float] = []

    def writer() -> None:
        for _ in range(events):
            time.sleep(0.06 + 0.01 * (len(written) % 3))
            update_config(path, lambda raw: faults.inject_xid(raw, 5, 79, time.time()))
            written.append(time.monotonic())

    thread = threading.Thread(target=writer)
    thread.start()
    for i in range(events):
        nvml.nvmlEventSetWait_v2(event_set, 10_000)
        woke = time.monotonic()
        while len(written) <= i:  # the writer records its time just after os.replace
            time.sleep(0.0001)
        latencies.append(max(0.0, woke - written[i]) * 1000)
    thread.join()
    return latencies


def cli_latency(path: Path, rounds: int) -> tuple[list[float], list[float]]:
    nvml = NvmlMock(LiveConfig(path))
    nvml.nvmlInit()
    event_set = nvml.nvmlEventSetCreate()
    nvml.nvmlDeviceRegisterEvents(nvml.nvmlDeviceGetHandleByIndex(2), pynvml.nvmlEventTypeXidCriticalError, event_set)
    to_event, cli_wall = [], []
    for _ in range(rounds):
        start = time.monotonic()
        proc = subprocess.Popen([*brix_argv(), "nvml-mock", "inject", "--config", str(path), "--gpu", "2",
                                 "--xid", "79"], stdout=subprocess.DEVNULL)
        nvml.nvmlEventSetWait_v2(event_set, 30_000)
        to_event.append((time.monotonic() - start) * 1000)
        proc.wait()
        cli_wall.append((time.monotonic() - start) * 1000)
    return to_event, cli_wall


class _Frozen(LiveConfig):
    def current(self) -> Any:
        return self._config


def calls_per_second(nvml: NvmlMock, calls: int) -> float:
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    start = time.perf_counter()
    for _ in range(calls):
        nvml.nvmlDeviceGetUUID(handle)
    return calls / (time.perf_counter() - start)


def sweeps_per_second(nvml: NvmlMock, seconds: float = 1.0) -> float:
    ue, vol = pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC
    dram = pynvml.NVML_MEMORY_LOCATION_DRAM
    dbe = pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR
    nvml.nvmlInit()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for i in range(nvml.nvmlDeviceGetCount()):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            nvml.nvmlDeviceGetUUID(h)
            nvml.nvmlDeviceGetMemoryErrorCounter(h, ue, vol, dram)
            nvml.nvmlDeviceGetTotalEccErrors(h, ue, vol)
            nvml.nvmlDeviceGetRemappedRows(h)
            nvml.nvmlDeviceGetRetiredPages(h, dbe)
            nvml.nvmlDeviceGetRetiredPagesPendingStatus(h)
            nvml.nvmlDeviceGetCurrPcieLinkWidth(h)
            nvml.nvmlDeviceGetMaxPcieLinkWidth(h)
        done += 1
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=40, help="XID events per poll interval")
    parser.add_argument("--cli-rounds", type=int, default=5, help="brix nvml-mock inject subprocess rounds")
    parser.add_argument("--calls", type=int, default=200_000, help="NVML calls for the calls/s figure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "node.toml"
        builders.write_config(path, builders.node_config(gpus=8, model="A100"))
        print(f"python {sys.version.split()[0]}, 8 x A100 mock config\n")
        print("1. fault -> nvmlEventSetWait_v2 wake (ms), update_config in another thread")
        print(f"{'poll':>8} {'n':>4} {'p50':>7} {'p95':>7} {'max':>7}   vs NVIDIA DP 5000 ms wait")
        for poll in (0.02, 0.05):
            lat = event_latency(path, poll, args.events)
            print(f"{poll * 1000:>6.0f}ms {len(lat):>4} {statistics.median(lat):>7.1f} {_pct(lat, 0.95):>7.1f} "
                  f"{max(lat):>7.1f}   {NVIDIA_DP_WAIT_MS / max(lat):>6.0f}x shorter (worst case)")
        to_event, cli_wall = cli_latency(path, args.cli_rounds)
        print("\n2. `brix nvml-mock inject --xid` subprocess (ms, includes Python start-up)")
        print(f"   start -> event delivered: median {statistics.median(to_event):.0f}, max {max(to_event):.0f}; "
              f"CLI wall time median {statistics.median(cli_wall):.0f}")
        live = calls_per_second(NvmlMock(LiveConfig(path)), args.calls)
        frozen = calls_per_second(NvmlMock(_Frozen(path)), args.calls)
        print("\n3. per-call cost (nvmlDeviceGetUUID)")
        print(f"   live re-read: {live:,.0f} calls/s   frozen config: {frozen:,.0f} calls/s   "
              f"live/frozen = {live / frozen:.2f}")
        sweep = sweeps_per_second(NvmlMock(LiveConfig(path)))
        print(f"   full health sweep of 8 GPUs (8 calls each): {sweep:,.0f} sweeps/s "
              f"({1000 / sweep:.2f} ms per sweep)")


if __name__ == "__main__":
    main()
