"""Reading metrics: pods on their pod IP, external URLs, the optimizer, the gateway's held demand.

`sample_value` (brix.vllm_metrics, the reader the gateway's scraper shares) is pure: a Prometheus
text page -> one number. The fetches are thin aiohttp calls that answer None on any failure, so
the caller records a missing sample, never a zero.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from brix.vllm_metrics import sample_value
from controllers.autoscaler.model import MetricSource

HELD_METRIC = "brix_gateway_held_requests"


async def fetch_text(session: aiohttp.ClientSession, url: str, timeout_s: float) -> str | None:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status != 200:
                return None
            return await resp.text()
    except (TimeoutError, aiohttp.ClientError, OSError, UnicodeDecodeError):
        return None


async def scrape_pods(session: aiohttp.ClientSession, pod_ips: Mapping[str, str], src: MetricSource,
                      timeout_s: float) -> dict[str, float | None]:
    """Each pod's value of src.metric from http://<podIP>:<port><path> (None: scrape failed or no such metric)."""
    async def one(ip: str) -> float | None:
        host = f"[{ip}]" if ":" in ip else ip
        text = await fetch_text(session, f"http://{host}:{src.port}{src.path}", timeout_s)
        return None if text is None else sample_value(text, src.metric)
    names = list(pod_ips)
    values = await asyncio.gather(*(one(pod_ips[n]) for n in names))
    return dict(zip(names, values, strict=True))


async def scrape_external(session: aiohttp.ClientSession, src: MetricSource, timeout_s: float) -> float | None:
    text = await fetch_text(session, src.url, timeout_s)
    return None if text is None else sample_value(text, src.metric)


async def scrape_optimizer(session: aiohttp.ClientSession, src: MetricSource, namespace: str, model: str,
                           timeout_s: float) -> float | None:
    """The GPU-mix target of `brix scheduler-ext` for this model (and src.gpu_type when given)."""
    text = await fetch_text(session, f"{src.url}/v1/optimizer/targets/{namespace}/{model}", timeout_s)
    if text is None:
        return None
    labels = {"gpu_type": src.gpu_type} if src.gpu_type else None
    return sample_value(text, src.metric or "brix_optimizer_target_replicas", labels)


async def held_requests(session: aiohttp.ClientSession, gateway_urls: list[str], model: str,
                        timeout_s: float) -> float:
    """Requests the gateways hold for `model` because it has no Ready endpoint (0 when none can tell)."""
    async def one(url: str) -> float:
        text = await fetch_text(session, url.rstrip("/") + "/metrics", timeout_s)
        return (sample_value(text, HELD_METRIC, {"model": model}) or 0.0) if text else 0.0
    return sum(await asyncio.gather(*(one(u) for u in gateway_urls))) if gateway_urls else 0.0
