"""Benchmark of `brix device-plugin` on an 8-GPU mock node, through the test kubelet.

    .venv/bin/python hack/bench/bench_deviceplugin_health.py [--trials 30] [--allocate-seconds 5]

Measures, in one run:
- fault-to-Unhealthy latency on ListAndWatch: from the moment a fault is written into the live
  mock (an XID event, or an uncorrectable ECC count found by the 0.5 s poll) until the stream
  delivers the device as Unhealthy; p50/p99 over many trials, next to NVIDIA's figures
  (XID: blocking event wait with a 5 s timeout; ECC counters, row remapping and PCIe width:
  not checked at all, so "never");
- kubelet restart to re-registration time;
- Allocate calls per second (1 and 8 concurrent callers);
- resident memory (VmRSS) of the plugin process with 8 GPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from brix import procs  # noqa: E402
from nvml_mock import builders, faults  # noqa: E402
from nvml_mock.live import update_config  # noqa: E402
from tests.deviceplugin.kubelet import TestKubelet, Watch  # noqa: E402

NVIDIA_XID_WAIT_S = 5.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def until(watch: Watch, device_id: str, health: str, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        update = await watch.next(max(0.01, deadline - time.monotonic()))
        if any(d.ID == device_id and d.health == health for d in update.devices):
            return time.monotonic()


async def fault_latency(watch: Watch, config: Path, ids: list[str], trials: int, kind: str) -> list[float]:
    out = []
    for trial in range(trials):
        gpu = trial % len(ids)
        if kind == "xid":
            change = lambda raw, g=gpu: faults.inject_xid(raw, g, 79, time.time())  # noqa: E731
        else:
            change = lambda raw, g=gpu: faults.add_dram_ue(raw, g, 1)  # noqa: E731
        await asyncio.to_thread(update_config, config, change)
        t0 = time.monotonic()
        out.append(await until(watch, ids[gpu], "Unhealthy") - t0)
        await asyncio.to_thread(update_config, config, lambda raw, g=gpu: faults.heal_gpu(raw, g))
        await until(watch, ids[gpu], "Healthy")
    return out


async def allocate_rate(client, ids: list[str], seconds: float, concurrency: int) -> float:
    count = 0
    stop_at = time.monotonic() + seconds

    async def caller(i: int) -> None:
        nonlocal count
        while time.monotonic() < stop_at:
            await client.allocate([ids[(count + i) % len(ids)]])
            count += 1

    started = time.monotonic()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    return count / (time.monotonic() - started)


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bdpb-", dir="/tmp"))
    config = workdir / "node.toml"
    builders.write_config(config, builders.node_config(gpus=8, nvlink="pairs", node_name="bench"))
    kubelet_dir = workdir / "kubelet"
    kubelet_dir.mkdir()
    kubelet = TestKubelet(kubelet_dir)
    await kubelet.start()
    proc = procs.start("device-plugin", procs.brix_argv(
        "device-plugin", "--kubelet-dir", str(kubelet_dir), "--mock-config", str(config), "--metrics-port", "0",
        "--health-quiet-period", "0.05", "--log-level", "warning"), workdir / "plugin.log",
        ready_socket=str(kubelet_dir / "brix-gpu.sock"))
    try:
        await asyncio.to_thread(proc.wait_ready, 30)
        request = await kubelet.wait_registrations(1)
        client = kubelet.dial(request.endpoint)
        watch = client.watch()
        ids = [d.ID for d in (await watch.next()).devices]
        rss_idle = rss_mib(proc.pid)

        xid = await fault_latency(watch, config, ids, args.trials, "xid")
        ecc = await fault_latency(watch, config, ids, max(5, args.trials // 2), "ecc")

        restarts = []
        for n in range(args.restarts):
            await client.close()
            started = await kubelet.restart()
            await kubelet.wait_registrations(n + 2)
            restarts.append(kubelet.registrations[-1][0] - started)
            client = kubelet.dial(request.endpoint)
            watch = client.watch()
            await watch.next()

        rate1 = await allocate_rate(client, ids, args.allocate_seconds, 1)
        rate8 = await allocate_rate(client, ids, args.allocate_seconds, 8)
        rss_after = rss_mib(proc.pid)
        await client.close()
    finally:
        proc.stop()
        await kubelet.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"brix device-plugin benchmark: 8 mock GPUs (A100, NVLink pairs), cpu count {os.cpu_count()}")
    print(f"{'measure':46} {'brix':>12} {'baseline':>22} {'ratio':>8}")

    def row(name: str, ours: str, base: str, ratio: str = "") -> None:
        print(f"{name:46} {ours:>12} {base:>22} {ratio:>8}")

    row(f"XID -> Unhealthy p50 ({len(xid)} trials)", f"{statistics.median(xid) * 1000:.0f} ms",
        f"{NVIDIA_XID_WAIT_S * 1000:.0f} ms (issue figure)*")
    row("XID -> Unhealthy p99", f"{pct(xid, 0.99) * 1000:.0f} ms", "(goal < 1000 ms)")
    row(f"ECC uncorrectable -> Unhealthy p50 ({len(ecc)})", f"{statistics.median(ecc) * 1000:.0f} ms",
        "NVIDIA: never (unpolled)")
    row("ECC uncorrectable -> Unhealthy p99", f"{pct(ecc, 0.99) * 1000:.0f} ms", "(goal < 1000 ms)")
    if restarts:
        row(f"kubelet restart -> registered p50 ({len(restarts)})", f"{statistics.median(restarts) * 1000:.0f} ms",
            "(goal < 5000 ms)")
        row("kubelet restart -> registered max", f"{max(restarts) * 1000:.0f} ms", "")
    row("Allocate calls/s (1 caller)", f"{rate1:.0f}", "")
    row("Allocate calls/s (8 callers)", f"{rate8:.0f}", "")
    row("plugin RSS, 8 GPUs, idle", f"{rss_idle:.0f} MiB", "")
    row("plugin RSS after the Allocate load", f"{rss_after:.0f} MiB", "")
    print("* NVIDIA's health loop calls nvmlEventSetWait with a 5000 ms timeout; the wait returns as soon as an\n"
          "  XID arrives, so 5 s is its worst case only when events are missed, not its typical XID latency.\n"
          "  The clear difference is for polled faults: NVIDIA never marks a GPU Unhealthy for ECC counters,\n"
          "  row remapping or PCIe width, and never brings a GPU back to Healthy.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=40, help="XID fault trials (ECC trials: half)")
    parser.add_argument("--restarts", type=int, default=5, help="kubelet restarts to time")
    parser.add_argument("--allocate-seconds", type=float, default=4.0, help="seconds per Allocate rate run")
    asyncio.run(main(parser.parse_args()))
