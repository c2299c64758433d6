"""Forwarding one request to an engine: retries on connect failure, streaming pass-through,
timeouts, usage extraction. The body bytes go upstream unchanged."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from gateway.http_messages import Request, Responder
from gateway.settings import TimeoutSettings
from gateway.upstream import FastResponse, UpstreamClient
from gateway.wire import error_body, find_usage

log = logging.getLogger(__name__)

# hop-by-hop and framing headers that must not be copied between connections
_DROP_REQUEST = frozenset({"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te",
                           "upgrade", "proxy-authorization", "proxy-connection", "expect", "accept-encoding"})
_KEEP_RESPONSE = ("content-type", "cache-control", "x-session-id")
# errors raised before any response byte: the request can go to another endpoint
RETRYABLE = (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


@dataclass
class Outcome:
    status: int = 0
    ttft_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_known: bool = False
    stream_events: int = 0
    error: str = ""
    tail: bytes = b""          # last bytes of a stream: where the usage chunk and [DONE] are
    streamed: bool = False
    on_first_byte: Callable[[], None] | None = None   # called once, when the first body bytes arrive

    @property
    def stream_complete(self) -> bool:
        return self.streamed and b"data: [DONE]" in self.tail

    def settle_usage(self) -> None:
        """Read usage from the stream tail (call once, also when the client left after [DONE])."""
        if self.streamed and not self.usage_known:
            usage = find_usage(self.tail)
            if usage:
                self.prompt_tokens, self.completion_tokens = usage
                self.usage_known = True


def upstream_headers(request: Request, request_id: str, strategy: str, drop_auth: bool) -> dict[str, str]:
    """The client's headers minus hop-by-hop ones (and minus the gateway's own API key).
    Names arrive lower-cased from the HTTP server."""
    headers = {k: v for k, v in request.headers.items()
               if k not in _DROP_REQUEST and not (drop_auth and k == "authorization")}
    headers["x-request-id"] = request_id
    headers["routing-strategy"] = strategy
    return headers


async def open_upstream(session: aiohttp.ClientSession, fast: UpstreamClient | None, endpoint: str, path: str,
                        body: bytes, headers: dict[str, str]) -> aiohttp.ClientResponse | FastResponse:
    """Send the request and wait for the response headers, through the fast client when there
    is one (plain http endpoints), else aiohttp's session. The connect timeout is the client's
    own; the first-byte timeout is the caller's."""
    if fast is not None and endpoint.startswith("http://"):
        return await fast.post(endpoint, path, body, headers)
    return await session.post(endpoint + path, data=body, headers=headers)


async def relay(client: Responder, resp: aiohttp.ClientResponse | FastResponse, request_id: str, started: float,
                timeouts: TimeoutSettings, extra_headers: dict[str, str], out: Outcome,
                deadline: asyncio.Timeout) -> None:
    """Copy the upstream response to the client as it arrives, filling `out` as it goes (so the
    caller still knows what happened when the client disconnects mid-way). `deadline` is the
    caller's first-byte timeout; every streamed chunk moves it to idle_s from now."""
    out.status = resp.status
    headers = {"x-request-id": request_id, **extra_headers}
    for name in _KEEP_RESPONSE:
        value = resp.headers.get(name)
        if value is not None:
            headers[name] = value
    ctype = resp.headers.get("content-type", "")
    if not ctype.startswith("text/event-stream"):
        data = await resp.read()
        out.ttft_s = time.monotonic() - started
        usage = find_usage(data) if resp.status == 200 else None
        if usage:
            out.prompt_tokens, out.completion_tokens = usage
            out.usage_known = True
        client.send(resp.status, headers, data)
        return

    out.streamed = True
    client.start(resp.status, headers)
    content = resp.content
    loop = asyncio.get_running_loop()
    idle_s = timeouts.idle_s
    try:
        while True:
            chunk = await content.readany()
            if not chunk:
                break
            if out.ttft_s is None:
                out.ttft_s = time.monotonic() - started
                if out.on_first_byte is not None:
                    out.on_first_byte()
            out.stream_events += chunk.count(b"data:")
            out.tail = (out.tail + chunk)[-8192:]
            deadline.reschedule(loop.time() + idle_s)
            await client.write(chunk)
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
        out.error = f"upstream stream broke: {type(exc).__name__}"
        try:
            await client.write(b"data: " + error_body("the engine closed the stream early", "upstream_error", 502)
                               + b"\n\n")
        except ConnectionError:
            pass
    client.end()


async def end_stream_on_timeout(client: Responder, out: Outcome, timeouts: TimeoutSettings) -> None:
    """A started stream whose engine went quiet for idle_s (or sent no first chunk within
    first_byte_s): an error event, then the end of the stream."""
    out.error = "idle stream timeout"
    quiet = timeouts.first_byte_s if out.ttft_s is None else timeouts.idle_s
    await client.write(b"data: " + error_body(f"the engine sent nothing for {quiet:g}s; stream closed by "
                                              "the gateway", "timeout", 504) + b"\n\n")
    client.end()
