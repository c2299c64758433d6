"""Runs the node agent until SIGTERM: settings from flags, a health server, clean stop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from aiohttp import web

from brix import logs
from brix.commands import UsageError
from brix.node_agent.agent import AgentSettings, NodeAgent, NodeSpec
from brix.node_agent.pods import IpPool


def settings_from_args(args: argparse.Namespace) -> AgentSettings:
    if args.nodes < 1:
        raise UsageError("--nodes must be at least 1")
    kubeconfig = Path(args.kubeconfig)
    if not kubeconfig.is_file():
        raise UsageError(f"--kubeconfig {kubeconfig}: no such file")
    types = [t.strip() for t in args.gpu_types.split(",") if t.strip()]
    if not types:
        raise UsageError("--gpu-types needs at least one GPU type, e.g. A100,H100")
    try:
        IpPool(args.pod_cidr)
    except ValueError as exc:
        raise UsageError(f"--pod-cidr: {exc}") from exc
    root = Path(args.nodes_root).resolve()
    nodes = []
    for i in range(args.first_index, args.first_index + args.nodes):
        name = f"{args.name_prefix}{i}"
        nodes.append(NodeSpec(name, types[i % len(types)], args.gpus_per_node, root / name, args.device_plugins))
    ready_delay = None
    if args.ready_delay:
        try:
            low, high = (float(x) for x in args.ready_delay.split(":"))
        except ValueError:
            raise UsageError(f"--ready-delay must be LOW:HIGH in seconds, e.g. 2:10, got {args.ready_delay!r}") from None
        if not 0 <= low <= high:
            raise UsageError(f"--ready-delay needs 0 <= LOW <= HIGH, got {args.ready_delay!r}")
        ready_delay = (low, high)
    return AgentSettings(kubeconfig=kubeconfig, nodes=tuple(nodes), workdir=Path(args.workdir).resolve(),
                         pod_cidr=args.pod_cidr, renew_interval=args.renew_interval,
                         run_processes=not args.no_processes, watch_pods=not args.no_pods,
                         ready_delay=ready_delay, ready_seed=args.ready_seed)


async def serve(settings: AgentSettings, health_port: int) -> None:
    agent = NodeAgent(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = None
    if health_port:
        app = web.Application()
        async def healthz(_r: web.Request) -> web.Response:
            return web.Response(text="ok")

        async def readyz(_r: web.Request) -> web.Response:
            return web.Response(text="ok") if agent.ready.is_set() else web.Response(status=503, text="listing pods")

        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", health_port).start()
    try:
        await agent.start()
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await agent.stop()
        if runner is not None:
            await runner.cleanup()


def run(args: argparse.Namespace) -> int:
    logs.setup("info", args.log_format)
    settings = settings_from_args(args)
    asyncio.run(serve(settings, args.health_port))
    return 0
