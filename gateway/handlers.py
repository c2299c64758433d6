"""The gateway's request handlers (OpenAI routes, /healthz, /readyz, /metrics) and its lifecycle.

Not the HTTP server: that is gateway/http_edge.py, which parses requests and calls these
handlers. One Gateway object owns the store, router, admission, stats and the upstream clients;
its handlers take (http_messages.Request, http_messages.Responder). `running` starts and stops
the background loops (discovery, /metrics scrapes, /v1/models refresh) around the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from brix.logs import kv
from gateway import proxy
from gateway.apikeys import ApiKey, KeyBook
from gateway.errors import RequestRejected
from gateway.http_edge import HttpEdge
from gateway.http_messages import ClientGone, Request, Responder
from gateway.limits import Admission, RateLimited
from gateway.router import Router
from gateway.routing import prefix_cache
from gateway.routing.model import RoutingContext, RoutingRequest
from gateway.routing.profile import Profile
from gateway.settings import Settings
from gateway.stats import GatewayStats
from gateway.store import EndpointStore
from gateway.tokens import estimate_stream_usage
from gateway.upstream import UpstreamClient
from gateway.wire import error_body, parse_body, prompt_text
from gateway.workload import WorkloadCollector, WorkloadWindow

log = logging.getLogger(__name__)
access_log = logging.getLogger("gateway.access")

PROXIED_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
JSON_TYPE = {"content-type": "application/json"}


def send_error(out: Responder, status: int, message: str, err_type: str, code: str | int | None, request_id: str,
               headers: dict[str, str] | None = None) -> None:
    out.send(status, {**JSON_TYPE, "x-request-id": request_id, **(headers or {})},
             error_body(message, err_type, code))


def send_json(out: Responder, status: int, doc: Any) -> None:
    out.send(status, JSON_TYPE, json.dumps(doc).encode())


def edge_error_body(status: int, message: str, code: str) -> bytes:
    """OpenAI error JSON for what the HTTP server answers itself (malformed requests, 431, 500)."""
    return error_body(message, "invalid_request_error" if status < 500 else "internal_error", code)


@dataclass
class Exchange:
    """What one proxied request has come to so far (the error paths and the access log read it)."""

    request_id: str
    started: float
    model: str = "-"
    strategy: str = "-"
    endpoint: str = "-"
    status: int = 500
    key: ApiKey | None = None
    rreq: RoutingRequest | None = None
    outcome: proxy.Outcome | None = None


class Gateway:
    def __init__(self, settings: Settings, store: EndpointStore, router: Router, admission: Admission,
                 rng: random.Random) -> None:
        self.settings = settings
        self.store = store
        self.router = router
        self.admission = admission
        self.rng = rng
        self.stats = GatewayStats()
        self.session: aiohttp.ClientSession | None = None
        self.fast: UpstreamClient | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.held: dict[str, int] = {}   # model -> requests waiting for a Ready endpoint (scale from zero)
        # live workload per model and token bucket, for the GPU-mix optimizer (GET /v1/workload)
        self.workload = WorkloadWindow(time.monotonic(), settings.workload_window_s)
        self.stats.registry.register(WorkloadCollector(self.workload, time.monotonic))
        # request ids: unique per process without a getrandom() call per request
        self._id_prefix = f"{os.getpid():x}{random.getrandbits(40):010x}"
        self._ids = itertools.count()

    def request_id(self, req: Request) -> str:
        return req.headers.get("x-request-id") or f"{self._id_prefix}{next(self._ids):08x}"

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- /v1/* ----------------------------------------------------------------------------
    async def handle_generate(self, request: Request, out: Responder) -> None:
        """Admit, route, forward and relay one OpenAI request; every outcome is an OpenAI answer,
        counted in the metrics and the access log."""
        ex = Exchange(request_id=self.request_id(request), started=time.monotonic())
        try:
            await self._admit_and_forward(request, out, ex)
        except TimeoutError:
            if ex.outcome is not None and out.started:   # a stream went quiet: say so in the stream, then end it
                ex.status = 502
                await proxy.end_stream_on_timeout(out, ex.outcome, self.settings.timeouts)
            else:
                ex.status = 504
                t = self.settings.timeouts.first_byte_s
                what = "did not finish" if ex.outcome is not None else "did not start"
                send_error(out, 504, f"the engine's response {what} within {t:g}s (first-byte timeout)", "timeout",
                           "upstream_timeout", ex.request_id)
        except RateLimited as exc:
            ex.status = exc.status
            self.stats.rate_limited.labels(exc.limit).inc()
            send_error(out, exc.status, str(exc), exc.err_type, exc.code, ex.request_id,
                       {"retry-after": str(exc.retry_after)})
        except RequestRejected as exc:
            ex.status = exc.status
            send_error(out, exc.status, str(exc), exc.err_type, exc.code, ex.request_id)
        except (ClientGone, asyncio.CancelledError):
            # the client went away; the upstream request was closed with it. A client that read
            # the whole stream and hung up before our end-of-stream still counts as served.
            ex.status = 200 if ex.outcome is not None and ex.outcome.stream_complete else 499
            if ex.outcome is not None:
                ex.outcome.status = ex.status
            raise
        except (aiohttp.ClientError, OSError) as exc:
            ex.status = 502
            if out.started:  # mid-stream: the server cuts the connection, the client sees the stream end early
                raise
            send_error(out, 502, f"the engine failed: {type(exc).__name__}: {exc}", "upstream_error",
                       "upstream_error", ex.request_id)
        finally:
            self._finish(request, ex)

    async def _admit_and_forward(self, request: Request, out: Responder, ex: Exchange) -> None:
        ex.key = key = self.admission.authenticate(request.headers.get("authorization"))
        if request.too_large:
            raise RequestRejected(413, f"request body larger than the limit of {self.settings.max_body_bytes} bytes",
                               "request_too_large")
        body = parse_body(request.body)
        ex.model = model = body["model"]
        ex.strategy = self.router.strategy_for(model, request.headers.get("routing-strategy"))
        profile = self.router.profile(ex.strategy)
        hold = self.settings.hold_timeout_s > 0 and (self.store.served_before(model) or model in self.router.config.models)
        if not self.store.knows_model(model) and not hold:
            raise RequestRejected(404, f"the model {model!r} does not exist on any endpoint; GET /v1/models lists "
                               "the served models", "model_not_found")
        await self.admission.admit(key, model)
        if hold and not self.store.candidates(model):
            await self._hold(model)
        needs_prompt = profile.needs_prompt or (key is not None and key.tpm > 0)
        ex.rreq = RoutingRequest(model=model, headers={"x-session-id": request.headers.get("x-session-id", "")},
                                 prompt=prompt_text(body, request.path) if needs_prompt else None,
                                 request_id=ex.request_id)
        headers = proxy.upstream_headers(request, ex.request_id, ex.strategy, self.admission.keys is not None)
        # one timer per request: first byte (and a non-streamed body) within first_byte_s,
        # then relay() moves it forward by idle_s after every streamed chunk
        async with asyncio.timeout(self.settings.timeouts.first_byte_s) as deadline:
            await self._forward(request, out, ex, profile, headers, deadline)

    async def _hold(self, model: str) -> None:
        """Wait (up to hold_timeout_s) until the model has a Ready endpoint: it is scaling from zero."""
        self.held[model] = self.held.get(model, 0) + 1
        self.stats.held.labels(model).set(self.held[model])
        try:
            deadline = time.monotonic() + self.settings.hold_timeout_s
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                if self.store.candidates(model):
                    return
            raise RequestRejected(503, f"no ready endpoint serves model {model!r}: held the request "
                               f"{self.settings.hold_timeout_s:g}s (--hold-timeout) while it scales from zero; "
                               "retry later", "no_ready_endpoint", "service_unavailable")
        finally:
            self.held[model] -= 1
            self.stats.held.labels(model).set(self.held[model])

    async def _forward(self, request: Request, out: Responder, ex: Exchange, profile: Profile,
                       headers: dict[str, str], deadline: asyncio.Timeout) -> None:
        """Pick an endpoint and relay its answer; a connect failure tries another one."""
        rreq = ex.rreq
        assert rreq is not None
        tried: set[str] = set()
        for attempt in range(self.settings.retries + 1):
            candidates = self.store.candidates(ex.model, frozenset(tried))
            if not candidates:
                what = "no ready endpoint serves" if not tried else "every endpoint tried failed for"
                raise RequestRejected(503, f"{what} model {ex.model!r}; retry later", "no_ready_endpoint",
                                   "service_unavailable")
            t0 = time.perf_counter()
            ctx = RoutingContext(now=time.monotonic(), rng=self.rng)
            chosen = profile.pick(ctx, rreq, candidates)
            self.stats.routing_latency.observe(time.perf_counter() - t0)
            if chosen is None:
                raise RequestRejected(503, f"no endpoint passed the filters of {ex.strategy!r} for model {ex.model!r}",
                                   "no_ready_endpoint", "service_unavailable")
            self._note_prefix(ex.model, ctx)
            ex.endpoint = endpoint = chosen.id
            self.store.acquire(endpoint)
            try:
                try:
                    resp = await proxy.open_upstream(self.session, self.fast, endpoint,  # type: ignore[arg-type]  # session is set by running() before any request
                                                     request.path, request.body, headers)
                except proxy.RETRYABLE as exc:
                    tried.add(endpoint)
                    self.store.set_ready(endpoint, False)
                    self.stats.retries.labels(endpoint).inc()
                    kv(log, "endpoint connect failed; trying another", logging.WARNING, request_id=ex.request_id,
                       endpoint=endpoint, error=type(exc).__name__, attempt=attempt + 1)
                    continue
                try:
                    extra = {"x-brix-endpoint": endpoint}
                    if rreq.headers["x-session-id"]:
                        extra["x-session-id"] = rreq.headers["x-session-id"]
                    ex.outcome = outcome = proxy.Outcome()
                    if profile.post_response:
                        outcome.on_first_byte = functools.partial(profile.released, rreq, endpoint)
                    await proxy.relay(out, resp, ex.request_id, ex.started, self.settings.timeouts, extra, outcome,
                                      deadline)
                    ex.status = outcome.status if not outcome.error else 502
                finally:
                    resp.close()
            finally:
                self.store.release(endpoint)
                profile.released(rreq, endpoint)
            return
        raise RequestRejected(502, f"could not connect to any endpoint for model {ex.model!r} after "
                           f"{len(tried)} attempt(s)", "upstream_connect_failed", "service_unavailable")

    def _finish(self, request: Request, ex: Exchange) -> None:
        """Usage accounting, metrics and the access log line of one answered request."""
        outcome = ex.outcome
        if ex.rreq is not None and outcome is not None:
            self._account(ex.key, ex.model, ex.rreq, outcome)
        elapsed = time.monotonic() - ex.started
        # labels only from bounded sets: client-made model names / strategy specs are folded
        m_label = ex.model if self.store.knows_model(ex.model) else "-"
        s_label = self.router.metric_label(ex.strategy) if ex.strategy != "-" else "-"
        self.stats.requests.inc(m_label, s_label, ex.endpoint, str(ex.status))
        if ex.status == 200:
            self.stats.e2e.observe(elapsed, m_label)
            if outcome is not None and outcome.ttft_s is not None:
                self.stats.ttft.observe(outcome.ttft_s, m_label)
        if self.settings.access_log:
            access_log.info("request", extra={"fields": {
                "request_id": ex.request_id, "method": request.method, "path": request.path, "model": ex.model,
                "strategy": ex.strategy, "endpoint": ex.endpoint, "status": ex.status,
                "duration_ms": round(elapsed * 1000, 2),
                "ttft_ms": round(outcome.ttft_s * 1000, 2) if outcome and outcome.ttft_s is not None else "-",
                "key": ex.key.name if ex.key else "-",
                "prompt_tokens": outcome.prompt_tokens if outcome else 0,
                "completion_tokens": outcome.completion_tokens if outcome else 0}})

    def _note_prefix(self, model: str, ctx: RoutingContext) -> None:
        """What the prefix strategy left in the decision's scratch, into the metrics."""
        if not ctx.scratch:
            return
        match = ctx.get(prefix_cache.MATCH)
        if match is not None:
            self.stats.prefix_blocks.inc(model, "total", amount=match.total_blocks)
            self.stats.prefix_blocks.inc(model, "matched", amount=match.matched_blocks)
        if ctx.get(prefix_cache.IMBALANCED):
            self.stats.prefix_imbalanced.inc()

    def _account(self, key: ApiKey | None, model: str, rreq: RoutingRequest, outcome: proxy.Outcome) -> None:
        outcome.settle_usage()
        if outcome.status != 200:
            return
        if not outcome.usage_known and outcome.stream_events:
            outcome.prompt_tokens, outcome.completion_tokens = estimate_stream_usage(rreq.prompt, outcome.stream_events)
        self.stats.tokens.inc(model, "prompt", amount=outcome.prompt_tokens)
        self.stats.tokens.inc(model, "completion", amount=outcome.completion_tokens)
        self.workload.record(model, outcome.prompt_tokens, outcome.completion_tokens, time.monotonic())
        if key is not None and key.tpm:
            self.spawn(self.admission.count_tokens(key, outcome.prompt_tokens + outcome.completion_tokens))

    async def handle_models(self, request: Request, out: Responder) -> None:
        request_id = self.request_id(request)
        try:
            self.admission.authenticate(request.headers.get("authorization"))
        except RequestRejected as exc:
            send_error(out, exc.status, str(exc), exc.err_type, exc.code, request_id)
            return
        doc = {"object": "list", "data": self.store.model_cards()}
        out.send(200, {**JSON_TYPE, "x-request-id": request_id}, json.dumps(doc).encode())

    # ---- operations -----------------------------------------------------------------------
    async def handle_healthz(self, request: Request, out: Responder) -> None:
        send_json(out, 200, {"status": "ok"})

    async def handle_readyz(self, request: Request, out: Responder) -> None:
        # ready once it can route: an endpoint is ready, or Kubernetes discovery has listed (a gateway
        # whose models have no engine yet must still get traffic, to answer or hold it)
        ready = self.store.ready_count()
        send_json(out, 200 if ready or self.store.discovered else 503,
                  {"ready_endpoints": ready, "discovered": self.store.discovered, "endpoints": self.store.describe()})

    async def handle_metrics(self, request: Request, out: Responder) -> None:
        self.stats.ready_endpoints.set(self.store.ready_count())
        for eid in self.store.endpoint_ids():
            self.stats.in_flight.labels(eid).set(self.store.in_flight(eid))
        out.send(200, {"content-type": CONTENT_TYPE_LATEST}, generate_latest(self.stats.registry))

    async def handle_workload(self, request: Request, out: Responder) -> None:
        send_json(out, 200, self.workload.document(time.monotonic()))

    async def handle_unknown(self, request: Request, out: Responder) -> None:
        send_error(out, 404, f"no route for {request.method} {request.path}; the gateway serves "
                   f"{', '.join(PROXIED_PATHS)} and GET /v1/models", "invalid_request_error",
                   "unknown_url", self.request_id(request))


def build_edge(gw: Gateway) -> HttpEdge:
    routes = {("POST", path): gw.handle_generate for path in PROXIED_PATHS}
    routes.update({("GET", "/v1/models"): gw.handle_models, ("GET", "/healthz"): gw.handle_healthz,
                   ("GET", "/readyz"): gw.handle_readyz, ("GET", "/metrics"): gw.handle_metrics,
                   ("GET", "/v1/workload"): gw.handle_workload})
    t = gw.settings.timeouts
    return HttpEdge(routes, gw.handle_unknown, gw.settings.max_body_bytes, edge_error_body,
                    keepalive_s=t.keepalive_s, request_timeout_s=t.request_s)


class Discovery(Protocol):
    """Where endpoints come from: a static list (discovery.StaticDiscovery) or Kubernetes
    EndpointSlices (k8s_discovery.KubernetesDiscovery); both write into the store."""

    async def start(self, store: EndpointStore) -> None: ...

    async def stop(self) -> None: ...


@contextlib.asynccontextmanager
async def running(gw: Gateway, discovery: Discovery) -> AsyncIterator[None]:
    """The upstream clients, discovery and the background loops, for as long as the server runs."""
    from gateway.discovery import models_loop
    from gateway.metrics_scraper import scrape_loop

    s = gw.settings
    connector = aiohttp.TCPConnector(limit=s.max_connections, limit_per_host=0, ttl_dns_cache=300,
                                     keepalive_timeout=30)
    # no cookie jar (a proxy must not keep engines' cookies) and one timeout object for every
    # request: both are per-request work aiohttp would otherwise do on the hot path. No
    # Accept-Encoding either: with auto_decompress off, a gzip answer (prometheus_client
    # compresses /metrics when asked, as vLLM's does) would reach the scraper or client compressed.
    gw.session = aiohttp.ClientSession(
        connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent", "Content-Type", "Accept-Encoding"),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=s.timeouts.connect_s, connect=s.timeouts.connect_s))
    if s.upstream_client == "fast":
        gw.fast = UpstreamClient(s.timeouts.connect_s, max_idle=s.max_connections)
    await discovery.start(gw.store)
    tasks = [asyncio.create_task(forget_loop(gw.store, gw.router, s.models_refresh_s)),
             asyncio.create_task(models_loop(gw.session, gw.store, s.models_refresh_s, s.scrape_timeout_s)),
             asyncio.create_task(scrape_loop(gw.session, gw.store, s.scrape_interval_s, s.scrape_timeout_s))]
    try:
        yield
    finally:
        await discovery.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await gw.admission.store.close()
        await gw.session.close()
        if gw.fast is not None:
            await gw.fast.close()


async def forget_loop(store: EndpointStore, router: Router, interval: float) -> None:
    """When discovery changes the endpoint set, stateful strategies forget the endpoints that left."""
    seen = store.version
    while True:
        await asyncio.sleep(interval)
        if store.version != seen:
            seen = store.version
            router.forget_endpoints(store.endpoint_ids())


def make_gateway(settings: Settings, keys: KeyBook | None, store_backend: Any, router: Router,
                 model_rps: dict[str, float]) -> Gateway:
    rng = random.Random(settings.seed)
    return Gateway(settings, EndpointStore(), router, Admission(keys, store_backend, model_rps), rng)
