"""A lean HTTP/1.1 client for the proxied requests (`--upstream-client fast`).

aiohttp's ClientSession builds a ClientRequest, computes auto headers, a timer context and a
ClientResponse for every request; for a proxy that forwards already-checked bytes that is most
of its upstream CPU. This client keeps one keep-alive pool of connections per (host, port),
writes each request as a single buffer and reads the response with the C HTTP parser aiohttp
ships (through aiohttp's own ResponseHandler protocol), so errors keep aiohttp's classes:
proxy.RETRYABLE and the relay's mid-stream handling work unchanged.

The response object offers what proxy.relay uses of aiohttp's ClientResponse: `status`,
`headers`, `content.readany()`, `read()` and `close()`. A connection goes back to the pool only
when its response was read to the end and both sides allow keep-alive; `close()` on an unread
response closes the connection, so the engine sees a client that left.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDictProxy

# idle pooled connections older than this are not reused: engines behind uvicorn close idle
# keep-alive connections after 5 s, and a request written into a closing socket is lost
IDLE_REUSE_S = 4.0


class ConnectFailed(aiohttp.ClientOSError):
    """TCP connect to an engine failed or timed out (nothing was sent: another endpoint may be tried)."""


class BadResponse(aiohttp.ClientPayloadError):
    """The engine's response head was not valid HTTP/1.1 (answered 502, never retried)."""


class FastResponse:
    __slots__ = ("status", "headers", "content", "_proto", "_pool", "_keep")

    def __init__(self, status: int, headers: CIMultiDictProxy[str], content: aiohttp.StreamReader,
                 proto: ResponseHandler, pool: list[tuple[ResponseHandler, float]] | None, keep: bool) -> None:
        self.status = status
        self.headers = headers
        self.content = content
        self._proto: ResponseHandler | None = proto
        self._pool = pool
        self._keep = keep

    async def read(self) -> bytes:
        return await self.content.read()

    def close(self) -> None:
        """Give the connection back when the response was read whole, else close it."""
        proto, self._proto = self._proto, None
        if proto is None:
            return
        if (self._keep and self._pool is not None and self.content.is_eof() and not proto.should_close
                and proto.is_connected()):
            self._pool.append((proto, time.monotonic()))
        else:
            proto.close()


class UpstreamClient:
    """Keep-alive connection pools per (host, port); `max_idle` caps idle connections per endpoint."""

    def __init__(self, connect_s: float, max_idle: int = 256) -> None:
        self.connect_s = connect_s
        self.max_idle = max_idle
        self._pools: dict[tuple[str, int], list[tuple[ResponseHandler, float]]] = {}
        self._targets: dict[str, tuple[str, int, str, bytes]] = {}
        self._closed = False

    def _target(self, base: str) -> tuple[str, int, str, bytes]:
        t = self._targets.get(base)
        if t is None:
            parts = urlsplit(base)
            if parts.scheme != "http" or not parts.hostname:
                raise ValueError(f"the fast upstream client speaks plain http only, not {base!r}")
            port = parts.port or 80
            t = (parts.hostname, port, parts.path.rstrip("/"), f"Host: {parts.netloc}\r\n".encode("latin-1"))
            self._targets[base] = t
        return t

    async def _connect(self, host: str, port: int) -> ResponseHandler:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_s):
                _, proto = await loop.create_connection(lambda: ResponseHandler(loop), host, port)
        except TimeoutError:
            raise ConnectFailed(f"connect to {host}:{port} timed out after {self.connect_s:g}s") from None
        except OSError as exc:
            raise ConnectFailed(exc.errno, f"connect to {host}:{port} failed: {exc.strerror or exc}") from exc
        # once per connection, not per request: this builds the C response parser, which then
        # parses every response of the kept-alive connection in turn (as aiohttp's server does
        # with its request parser); the parameters never change for the proxy
        proto.set_response_params(read_until_eof=True, auto_decompress=False, read_bufsize=2 ** 16)
        return proto

    def _idle(self, pool: list[tuple[ResponseHandler, float]]) -> ResponseHandler | None:
        now = time.monotonic()
        while pool:
            proto, since = pool.pop()
            if proto.is_connected() and now - since < IDLE_REUSE_S:
                return proto
            proto.close()
        return None

    async def post(self, base: str, path: str, body: bytes, headers: dict[str, str]) -> FastResponse:
        """Send POST base+path and wait for the response headers. Raises aiohttp's connection
        errors (ClientOSError, ServerDisconnectedError) when no response byte came back."""
        host, port, prefix, host_line = self._target(base)
        key = (host, port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = []
        head = [f"POST {prefix}{path} HTTP/1.1\r\n".encode("latin-1"), host_line]
        for k, v in headers.items():
            head.append(f"{k}: {v}\r\n".encode("latin-1", "replace"))
        head.append(f"Content-Length: {len(body)}\r\n\r\n".encode("latin-1"))
        head.append(body)
        data = b"".join(head)
        proto = self._idle(pool)
        if proto is not None:
            try:
                return await self._exchange(proto, data, pool)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                pass   # the engine closed the idle connection as we reused it: once more on a new one
        return await self._exchange(await self._connect(host, port), data, pool)

    async def _exchange(self, proto: ResponseHandler, data: bytes, pool: list[tuple[ResponseHandler, float]]
                        ) -> FastResponse:
        try:
            proto.transport.write(data)  # type: ignore[union-attr]  # a connected ResponseHandler has its transport
            message, payload = await proto.read()
        except HttpProcessingError as exc:
            proto.close()
            raise BadResponse(f"malformed response from the engine: {exc.message}") from exc
        except BaseException:
            proto.close()
            raise
        keep = not message.should_close and len(pool) < self.max_idle and not self._closed
        return FastResponse(message.code, message.headers, payload, proto, pool, keep)

    async def close(self) -> None:
        self._closed = True
        for pool in self._pools.values():
            while pool:
                pool.pop()[0].close()
