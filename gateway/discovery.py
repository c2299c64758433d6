"""Static discovery: a fixed list of endpoint URLs, whose model lists (base models and LoRA
adapters) are learnt from each endpoint's GET /v1/models and refreshed every `refresh_s`;
an endpoint whose GET /health answers 5xx is not ready until it recovers."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlparse

import aiohttp

from brix.logs import kv
from gateway.store import EndpointStore

log = logging.getLogger(__name__)


def parse_endpoints(text: str) -> list[str]:
    """`http://127.0.0.1:8001,127.0.0.1:8002` -> normalised base URLs; ValueError names the bad entry."""
    out: list[str] = []
    for raw in text.split(","):
        item = raw.strip().rstrip("/")
        if not item:
            continue
        if "://" not in item:
            item = "http://" + item
        parsed = urlparse(item)
        if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/"):
            raise ValueError(f"endpoint {raw.strip()!r} is not a base URL like http://127.0.0.1:8000")
        try:
            parsed.port  # noqa: B018 - validates the port
        except ValueError:
            raise ValueError(f"endpoint {raw.strip()!r} has a bad port") from None
        out.append(f"{parsed.scheme}://{parsed.netloc}")
    if not out:
        raise ValueError("no endpoints given; pass --endpoints http://HOST:PORT[,http://HOST:PORT...]")
    return out


async def fetch_models(session: aiohttp.ClientSession, eid: str, timeout_s: float) -> list[dict[str, object]] | None:
    try:
        # an engine that says it is unhealthy (vLLM /health 5xx) gets no traffic; 404 = no health route
        async with session.get(eid + "/health", timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status >= 500:
                return None
        async with session.get(eid + "/v1/models", timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status != 200:
                return None
            doc = await resp.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
        return None
    data = doc.get("data") if isinstance(doc, dict) else None
    return [c for c in data if isinstance(c, dict)] if isinstance(data, list) else None


async def models_loop(session: aiohttp.ClientSession, store: EndpointStore, refresh_s: float, timeout_s: float) -> None:
    """Refresh every endpoint's model list; endpoints that do not answer stay but are not ready."""
    reported: dict[str, bool] = {}

    async def one(eid: str) -> None:
        asked_at = store.next_seq()
        cards = await fetch_models(session, eid, timeout_s)
        ok = cards is not None
        if reported.get(eid) != ok:
            kv(log, "endpoint models" if ok else "endpoint not answering /v1/models",
               logging.INFO if ok else logging.WARNING, endpoint=eid,
               models=",".join(sorted(str(c.get("id")) for c in cards or [])))
            reported[eid] = ok
        if ok:
            store.set_models(eid, cards or [], asked_at)
        else:
            store.set_unhealthy(eid)

    while True:
        ids = store.endpoint_ids()
        await asyncio.gather(*(one(eid) for eid in ids))
        # fast retries while some endpoint has no model list yet, then the normal period
        pending = any(not reported.get(eid) for eid in ids)
        await asyncio.sleep(min(refresh_s, 0.25) if pending else refresh_s)


class StaticDiscovery:
    def __init__(self, endpoints: list[str]) -> None:
        self.endpoints = endpoints

    async def start(self, store: EndpointStore) -> None:
        store.set_endpoints(self.endpoints)

    async def stop(self) -> None:
        return None
