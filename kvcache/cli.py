"""`brix kvcache serve`: flags only; the server loads inside run."""

from __future__ import annotations

import argparse
import re

from brix.commands import Command, UsageError
from brix.logs import add_logging_flags

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30,
          "gib": 2**30, "ti": 2**40, "tib": 2**40}


def parse_size(text: str) -> int:
    """Bytes of `4GiB`, `512Mi`, `10G`, `1048576` (Kubernetes and IEC suffixes)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"{text!r} is not a size; write a number with an optional unit such as 4GiB, 512Mi or 10G")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("serve",), help="serve: run one pool server")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a pod)")
    parser.add_argument("--port", type=int, default=9600, help="TCP port of the block protocol (kvcache/README.md)")
    parser.add_argument("--http-port", type=int, default=9601, help="port of /metrics, /healthz and /readyz")
    parser.add_argument("--capacity", default="4GiB", help="value bytes held at most (4GiB, 512Mi, 10G, ...)")
    parser.add_argument("--eviction", choices=("s3fifo", "lru"), default="s3fifo", help="eviction policy")
    parser.add_argument("--small-ratio", type=float, default=0.1, help="S3-FIFO: the small FIFO's share of the capacity")
    parser.add_argument("--redis", default="", metavar="URL",
                        help="membership store (redis://host:port/0): announce this server with heartbeats;"
                             " empty: no membership, clients list the server in kvcache://host:port")
    parser.add_argument("--pool", default="default", help="pool name in the membership store")
    parser.add_argument("--advertise", default="",
                        help="host[:port] clients reach this server at (in a pod: the pod IP); default --host:--port")
    parser.add_argument("--heartbeat", type=float, default=1.0, help="seconds between membership heartbeats")
    parser.add_argument("--ttl", type=float, default=3.0,
                        help="seconds after the last heartbeat until clients drop this server")
    add_logging_flags(parser)


def build_settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from kvcache.server import ServeSettings

    try:
        capacity = parse_size(args.capacity)
    except ValueError as exc:
        raise UsageError(f"--capacity: {exc}") from None
    checks = [
        (1 <= args.port <= 65535, f"--port {args.port} is not a TCP port (1-65535)"),
        (1 <= args.http_port <= 65535, f"--http-port {args.http_port} is not a TCP port (1-65535)"),
        (args.port != args.http_port, f"--port and --http-port are both {args.port}; give them different ports"),
        (capacity > 0, f"--capacity must be more than 0 bytes, got {args.capacity!r}"),
        (0 < args.small_ratio < 1, f"--small-ratio must be within (0, 1), got {args.small_ratio}"),
        (not args.redis or args.redis.startswith(("redis://", "rediss://", "unix://")),
         f"--redis must be a redis:// or rediss:// URL, got {args.redis!r}"),
        (args.heartbeat > 0 and args.ttl > args.heartbeat,
         f"--ttl ({args.ttl}) must be longer than --heartbeat ({args.heartbeat}) > 0"),
        (re.fullmatch(r"[A-Za-z0-9._-]+", args.pool) is not None,
         f"--pool {args.pool!r}: use letters, digits, '.', '_' and '-'"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    return ServeSettings(host=args.host, port=args.port, http_port=args.http_port, capacity=capacity,
                         eviction=args.eviction, small_ratio=args.small_ratio, redis_url=args.redis, pool=args.pool,
                         advertise=args.advertise, heartbeat_s=args.heartbeat, ttl_s=args.ttl)


def run(args: argparse.Namespace) -> int:
    from brix import logs

    settings = build_settings(args)
    logs.setup(args.log_level, args.log_format)
    from kvcache import server

    return server.run(settings)


COMMANDS: list[Command] = [
    Command(
        name="kvcache",
        help="a KV cache pool server: shared KV blocks for engines (S3-FIFO or LRU, binary protocol)",
        add_arguments=add_arguments,
        run=run,
        description="`brix kvcache serve` holds KV blocks keyed by (model, block size, chained prefix hash) in memory,"
                    " up to --capacity bytes, and serves them over a compact binary TCP protocol; /metrics and"
                    " health on --http-port; membership in Redis with --redis. See kvcache/README.md.",
    ),
]
