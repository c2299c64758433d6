"""Serving a small aiohttp app on loopback for the length of a test block (fake engines, metrics)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from brix import procs


@contextlib.asynccontextmanager
async def serving(app: web.Application, host: str = "127.0.0.1", port: int = 0,
                  shutdown_timeout: float = 60.0) -> AsyncIterator[str]:
    """Run `app` on host:port (a free port when 0) until the block ends; yields its base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    port = port or procs.free_port()
    await web.TCPSite(runner, host, port).start()
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
