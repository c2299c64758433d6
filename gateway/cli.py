"""`brix gateway` and `brix gateway-hash-key` (flags only; heavy imports happen inside run)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from brix.commands import Command, UsageError
from brix.logs import add_logging_flags, setup

if TYPE_CHECKING:
    from gateway.settings import Settings


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a pod)")
    p.add_argument("--port", type=int, default=8888, help="port for the OpenAI API, /healthz, /readyz and /metrics")
    p.add_argument("--endpoints", default="",
                   help="static mode: comma-separated engine base URLs, e.g. http://127.0.0.1:8001,http://127.0.0.1:8002")
    p.add_argument("--kubernetes", action="store_true",
                   help="Kubernetes mode: route to Ready pods labelled model.brix.dev/name (port from model.brix.dev/port)")
    p.add_argument("--namespace", default="", help="Kubernetes mode: namespace to watch (empty = all namespaces)")
    p.add_argument("--kubeconfig", default="", help="Kubernetes mode: kubeconfig file (empty = in-cluster, then ~/.kube/config)")
    p.add_argument("--redis", default="", help="Redis URL for shared rate-limit windows (empty = in-memory, per replica)")
    p.add_argument("--config", default="", help="YAML file: default_strategy, named plugins, per-model strategy and rps")
    p.add_argument("--api-keys-file", default="",
                   help="YAML file of hashed API keys with rpm/tpm limits (empty = no authentication)")
    p.add_argument("--scrape-interval", type=float, default=0.1, help="seconds between /metrics scrapes of each endpoint")
    p.add_argument("--scrape-timeout", type=float, default=1.0, help="timeout of one /metrics or /v1/models fetch, seconds")
    p.add_argument("--models-refresh", type=float, default=5.0, help="seconds between /v1/models refreshes of each endpoint")
    p.add_argument("--max-body-bytes", type=int, default=16 * 1024 * 1024, help="largest accepted request body")
    p.add_argument("--connect-timeout", type=float, default=3.0, help="seconds to connect to an engine")
    p.add_argument("--first-byte-timeout", type=float, default=300.0,
                   help="seconds from sending a request to the engine's first response byte (for a response that "
                        "is not streamed: to its last byte)")
    p.add_argument("--idle-timeout", type=float, default=120.0, help="longest silence between two chunks of a stream, seconds")
    p.add_argument("--request-timeout", type=float, default=60.0,
                   help="seconds a client may take to send one request's head and body (then 408: slow clients)")
    p.add_argument("--keepalive-timeout", type=float, default=75.0,
                   help="seconds an idle client keep-alive connection stays open")
    p.add_argument("--retries", type=int, default=2, help="other endpoints to try after a connect failure")
    p.add_argument("--hold-timeout", type=float, default=0.0,
                   help="scale from zero: seconds a request for a model with no Ready endpoint is held waiting for "
                        "one (then 503); 0 = 503 at once")
    p.add_argument("--workload-window", type=float, default=60.0,
                   help="seconds of finished requests GET /v1/workload averages (rates per model and token bucket "
                        "for brix scheduler-ext --gateway-url)")
    p.add_argument("--max-connections", type=int, default=2048, help="size of the upstream connection pool")
    p.add_argument("--no-access-log", action="store_true", help="do not log one line per request")
    p.add_argument("--seed", type=int, default=-1, help="seed for tie-breaking and random strategies (-1 = from the OS)")
    p.add_argument("--event-loop", default="auto", choices=["auto", "uvloop", "asyncio"],
                   help="event loop: uvloop (about half the per-request loop cost), asyncio, or auto = uvloop when "
                        "installed")
    p.add_argument("--upstream-client", default="fast", choices=["fast", "aiohttp"],
                   help="client for proxied requests: fast (lean keep-alive HTTP/1.1 client, plain http "
                        "endpoints only; https ones use aiohttp) or aiohttp (ClientSession)")
    add_logging_flags(p)


def settings_from_args(args: argparse.Namespace) -> Settings:
    from gateway.discovery import parse_endpoints
    from gateway.settings import Settings, TimeoutSettings

    if bool(args.endpoints) == bool(args.kubernetes):
        raise UsageError("give exactly one of --endpoints URL,URL,... (static) or --kubernetes")
    endpoints: tuple[str, ...] = ()
    if args.endpoints:
        try:
            endpoints = tuple(parse_endpoints(args.endpoints))
        except ValueError as exc:
            raise UsageError(f"--endpoints: {exc}") from None
    for flag in ("scrape_interval", "scrape_timeout", "models_refresh", "connect_timeout", "first_byte_timeout",
                 "idle_timeout", "request_timeout", "keepalive_timeout"):
        if getattr(args, flag) <= 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be > 0, got {getattr(args, flag)}")
    if args.max_body_bytes < 1024:
        raise UsageError(f"--max-body-bytes must be at least 1024, got {args.max_body_bytes}")
    if args.workload_window < 1:
        raise UsageError(f"--workload-window must be >= 1 second, got {args.workload_window}")
    if args.hold_timeout < 0:
        raise UsageError(f"--hold-timeout must be >= 0, got {args.hold_timeout}")
    if args.retries < 0 or args.max_connections < 1:
        raise UsageError("--retries must be >= 0 and --max-connections >= 1")
    return Settings(
        host=args.host, port=args.port, endpoints=endpoints, kubernetes=args.kubernetes,
        namespace=args.namespace or None, kubeconfig=args.kubeconfig or None, redis_url=args.redis or None,
        config_path=args.config or None, api_keys_path=args.api_keys_file or None,
        scrape_interval_s=args.scrape_interval, scrape_timeout_s=args.scrape_timeout,
        models_refresh_s=args.models_refresh, max_body_bytes=args.max_body_bytes,
        timeouts=TimeoutSettings(args.connect_timeout, args.first_byte_timeout, args.idle_timeout,
                                 args.request_timeout, args.keepalive_timeout),
        hold_timeout_s=args.hold_timeout, workload_window_s=args.workload_window, retries=args.retries, max_connections=args.max_connections, access_log=not args.no_access_log,
        seed=None if args.seed < 0 else args.seed, event_loop=args.event_loop,
        upstream_client=args.upstream_client)


def _run(args: argparse.Namespace) -> int:
    setup(args.log_level, args.log_format)
    settings = settings_from_args(args)
    from gateway.app import run

    return run(settings)


def _hash_key_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", default="", help="the key to hash (default: read one line from stdin, safer than argv)")


def _hash_key(args: argparse.Namespace) -> int:
    from gateway.apikeys import hash_key

    key = args.key or sys.stdin.readline().strip()
    if not key:
        raise UsageError("no key given: pipe it on stdin, e.g. `echo -n sk-... | brix gateway-hash-key`")
    print(hash_key(key))
    return 0


COMMANDS: list[Command] = [
    Command("gateway", "OpenAI-compatible routing gateway (prefix-cache-aware, LoRA-aware, rate limits)",
            _add_arguments, _run,
            description="Proxies /v1/chat/completions, /v1/completions, /v1/embeddings and /v1/models to vLLM-compatible "
                        "engines, choosing one per request with the strategy in the `routing-strategy` header, the "
                        "model's configured strategy, or least-request. See gateway/README.md."),
    Command("gateway-hash-key", "print the SHA-256 of an API key for the gateway's --api-keys-file",
            _hash_key_arguments, _hash_key),
]
