"""How fast the k8s_api fixture stays as requests pile up, beside plain kmock 0.8 on the same work.

Run: .venv/bin/python hack/bench/bench_k8s_api.py [--requests 800] [--batch 200]
Each server gets the same sequence (create a ConfigMap, then get it) over one aiohttp session; the
table shows the mean latency per request in each batch, so a log-driven slowdown shows as a slope.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp
import kmock

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.k8s_api import KubeEmulator  # noqa: E402  (needs the repository root on sys.path)


async def run(handler: kmock.RawHandler, requests: int, batch: int) -> list[float]:
    means: list[float] = []
    async with handler, kmock.Server(handler) as server, aiohttp.ClientSession(str(server.url)) as session:
        started = time.perf_counter()
        for i in range(requests // 2):
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm{i}", "namespace": "default"}}
            async with session.post("/api/v1/namespaces/default/configmaps", json=body) as resp:
                assert resp.status in (200, 201), await resp.text()
            async with session.get(f"/api/v1/namespaces/default/configmaps/cm{i}") as resp:
                assert resp.status == 200, await resp.text()
            if (2 * (i + 1)) % batch == 0:
                now = time.perf_counter()
                means.append((now - started) / batch * 1000)
                started = now
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=800, help="requests sent to each server")
    parser.add_argument("--batch", type=int, default=200, help="requests per reported batch")
    args = parser.parse_args()
    ours = asyncio.run(run(KubeEmulator(), args.requests, args.batch))
    plain = asyncio.run(run(kmock.KubernetesEmulator(), args.requests, args.batch))
    print(f"{'requests':>10} {'k8s_api ms/req':>15} {'kmock ms/req':>13} {'kmock/k8s_api':>14}")
    for i, (a, b) in enumerate(zip(ours, plain, strict=True)):
        print(f"{(i + 1) * args.batch:>10} {a:>15.3f} {b:>13.3f} {b / a:>14.1f}x")


if __name__ == "__main__":
    main()
