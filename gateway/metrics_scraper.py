"""The loop that scrapes every endpoint's /metrics into the store (the parser is
brix.vllm_metrics.parse_vllm_metrics, shared with the autoscaler)."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from brix.logs import kv
from brix.vllm_metrics import parse_vllm_metrics
from gateway.store import EndpointStore

log = logging.getLogger(__name__)


async def scrape_loop(session: aiohttp.ClientSession, store: EndpointStore, interval_s: float, timeout_s: float,
                      fail_after: int = 3) -> None:
    """Scrape every endpoint in `store` concurrently every `interval_s`; mark it unready after
    `fail_after` consecutive connection failures and ready again on the next success."""
    failures: dict[str, int] = {}
    timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def one(eid: str) -> None:
        try:
            async with session.get(eid + "/metrics", timeout=timeout) as resp:
                if resp.status != 200:
                    store.set_metrics_missing(eid)
                    return
                text = await resp.text()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            failures[eid] = failures.get(eid, 0) + 1
            if failures[eid] == fail_after:
                kv(log, "endpoint metrics unreachable; marking unready", logging.WARNING,
                   endpoint=eid, error=type(exc).__name__)
            if failures[eid] >= fail_after:
                store.set_ready(eid, False)
            return
        failures[eid] = 0
        now = time.monotonic()
        store.set_metrics(eid, parse_vllm_metrics(text, store.metrics_of(eid), now))

    while True:
        started = time.monotonic()
        ids = store.endpoint_ids()
        if ids:
            await asyncio.gather(*(one(eid) for eid in ids))
        for gone in [k for k in failures if k not in ids]:
            del failures[gone]
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))
