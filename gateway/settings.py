"""Typed settings for `brix gateway`, built from flags in cli.py (nothing deeper sees argparse)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TimeoutSettings:
    connect_s: float = 3.0
    """TCP connect to an engine; a failure retries another endpoint."""
    first_byte_s: float = 300.0
    """From sending the request to the first response byte (covers queueing and prefill of long
    prompts); for a response that is not streamed, to its last byte."""
    idle_s: float = 120.0
    """Longest silence between two chunks of a streamed response."""
    request_s: float = 60.0
    """Longest time a client may take to send one request (head and body); then 408."""
    keepalive_s: float = 75.0
    """Idle client keep-alive connections close after this long."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8888
    endpoints: tuple[str, ...] = ()
    """Static mode: engine base URLs. Empty with `kubernetes` set means Kubernetes mode."""
    kubernetes: bool = False
    namespace: str | None = None
    """Kubernetes mode: namespace to watch; None watches all namespaces."""
    kubeconfig: str | None = None
    redis_url: str | None = None
    config_path: str | None = None
    api_keys_path: str | None = None
    scrape_interval_s: float = 0.1
    """How often each endpoint's /metrics is read (the issue asks for 50-100 ms; 50 ms costs each engine ~20 metric pages a second)."""
    scrape_timeout_s: float = 1.0
    models_refresh_s: float = 5.0
    """How often each endpoint's /v1/models is re-read (LoRA adapters come and go)."""
    max_body_bytes: int = 16 * 1024 * 1024
    timeouts: TimeoutSettings = TimeoutSettings()
    hold_timeout_s: float = 0.0
    """Scale from zero: how long a request for a model with no Ready endpoint waits for one (the
    model must be in the config's models or have been served since start); the held requests are
    the gauge brix_gateway_held_requests{model} that `brix controllers --gateway-url` reads.
    0 = answer 503 at once."""
    workload_window_s: float = 60.0
    """GET /v1/workload: request rates per model and token bucket over this many seconds (the
    GPU-mix optimizer's input, `brix scheduler-ext --gateway-url`)."""
    retries: int = 2
    """Other endpoints tried after a connect failure (never once bytes reached the client)."""
    max_connections: int = 2048
    """aiohttp client: size of the shared upstream connection pool (all endpoints together); fast client: idle connections kept per endpoint."""
    access_log: bool = True
    seed: int | None = None
    """Seed for tie-breaking and random strategies; None = from the OS."""
    event_loop: str = "auto"
    """"uvloop", "asyncio", or "auto" (uvloop when importable): uvloop roughly halves the
    per-request event-loop cost (gateway/README.md, Performance)."""
    upstream_client: str = "fast"
    """"fast" (gateway/upstream.py: keep-alive pools per endpoint, one write per request, aiohttp's
    C response parser) or "aiohttp" (ClientSession) for the proxied requests; scrapes and
    /v1/models always use aiohttp. With "fast", max_connections caps idle connections per endpoint."""
