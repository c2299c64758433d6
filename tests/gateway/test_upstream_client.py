"""The fast upstream client (gateway/upstream.py) against a real engine_mock and tiny loopback
servers for the failures engine_mock cannot produce (silence, a cut stream, Connection: close)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from gateway import proxy
from gateway.upstream import ConnectFailed, UpstreamClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
COMPLETION = {"model": "mock-llm", "prompt": "hello there", "max_tokens": 5}


class Loopback:
    """An asyncio server on 127.0.0.1 that counts connections and notices when the client hangs up."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.client_closed = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        finally:
            writer.close()

    async def __aenter__(self) -> Loopback:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    return head + await reader.readexactly(length)


async def wait_for_eof(reader: asyncio.StreamReader, lb: Loopback) -> None:
    if await reader.read() == b"":
        lb.client_closed.set()


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    c = UpstreamClient(connect_s=2.0)
    yield c
    await c.close()


@pytest.fixture
def engine(brix_process, free_port):  # type: ignore[no-untyped-def]
    # --speed 2: ~4 ms between tokens, so a stream that is passed on as it comes arrives in pieces
    # even on a loaded machine
    port = free_port
    brix_process("engine-mock", "engine-mock", "--port", str(port), "--model", "mock-llm", "--speed", "2",
                 ready_url=f"http://127.0.0.1:{port}/health")
    return f"http://127.0.0.1:{port}"


async def test_non_streamed_completion_from_engine_mock(client, engine):  # type: ignore[no-untyped-def]
    for _ in range(3):   # the second and third go over the pooled connection
        resp = await client.post(engine, "/v1/completions", json.dumps(COMPLETION).encode(),
                                 {"Content-Type": "application/json", "x-request-id": "r1"})
        try:
            assert resp.status == 200
            doc = json.loads(await resp.read())
        finally:
            resp.close()
        assert doc["usage"]["completion_tokens"] == 5


async def test_stream_arrives_chunk_by_chunk_from_engine_mock(client, engine):  # type: ignore[no-untyped-def]
    body = json.dumps({**COMPLETION, "max_tokens": 20, "stream": True}).encode()
    resp = await client.post(engine, "/v1/completions", body, {"Content-Type": "application/json"})
    pieces = []
    try:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        while chunk := await resp.content.readany():
            pieces.append(chunk)
    finally:
        resp.close()
    data = b"".join(pieces)
    assert data.count(b"data: ") == 21 and data.rstrip().endswith(b"data: [DONE]")
    assert len(pieces) > 5, "the stream was buffered instead of passed on as it came"


async def test_keep_alive_reuses_one_connection_for_content_length_and_chunked():  # type: ignore[no-untyped-def]
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            n += 1
            if n % 2:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"6\r\ndata: \r\n0\r\n\r\n")
            await writer.drain()

    c = UpstreamClient(connect_s=2.0)
    async with Loopback(answer) as lb:
        for i in range(4):
            resp = await c.post(lb.url, "/v1/completions", b"{}", {})
            assert await resp.read() == (b"{}" if i % 2 == 0 else b"data: ")
            resp.close()
        assert lb.connections == 1
        await c.close()


async def test_connection_close_response_is_read_whole_and_not_reused():  # type: ignore[no-untyped-def]
    async def answer_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n{\"a\": 1}")
        await writer.drain()

    c = UpstreamClient(connect_s=2.0)
    async with Loopback(answer_and_close) as lb:
        for _ in range(2):
            resp = await c.post(lb.url, "/x", b"{}", {})
            assert json.loads(await resp.read()) == {"a": 1}
            resp.close()
        assert lb.connections == 2
        await c.close()


async def test_silent_server_hits_the_callers_timeout_and_the_connection_is_closed():  # type: ignore[no-untyped-def]
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await wait_for_eof(reader, lb)

    c = UpstreamClient(connect_s=2.0)
    async with Loopback(never_answer) as lb:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await c.post(lb.url, "/v1/completions", b"{}", {})
        await asyncio.wait_for(lb.client_closed.wait(), 5)
        await c.close()


async def test_abandoned_stream_closes_the_upstream_connection():  # type: ignore[no-untyped-def]
    async def endless_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        watcher = asyncio.create_task(wait_for_eof(reader, lb))
        while not watcher.done():
            writer.write(b"9\r\ndata: x\n\n\r\n")
            try:
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(0.01)
        await watcher

    c = UpstreamClient(connect_s=2.0)
    async with Loopback(endless_stream) as lb:
        resp = await c.post(lb.url, "/v1/completions", b"{}", {})
        assert (await resp.content.readany()).startswith(b"data: x")
        resp.close()
        await asyncio.wait_for(lb.client_closed.wait(), 5)
        await c.close()


async def test_stream_cut_mid_way_raises_the_error_relay_turns_into_a_502_event():  # type: ignore[no-untyped-def]
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"9\r\ndata: x\n\n\r\n")
        await writer.drain()

    c = UpstreamClient(connect_s=2.0)
    async with Loopback(cut) as lb:
        resp = await c.post(lb.url, "/v1/completions", b"{}", {})
        with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ClientConnectionError)):
            while await resp.content.readany():
                pass
        resp.close()
        await c.close()


async def test_refused_connect_is_retryable(client, free_port):  # type: ignore[no-untyped-def]
    with pytest.raises(ConnectFailed) as info:
        await client.post(f"http://127.0.0.1:{free_port}", "/v1/completions", b"{}", {})
    assert isinstance(info.value, proxy.RETRYABLE)


async def test_close_before_headers_is_retryable():  # type: ignore[no-untyped-def]
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    c = UpstreamClient(connect_s=2.0)
    async with Loopback(hang_up) as lb:
        with pytest.raises(proxy.RETRYABLE):
            await c.post(lb.url, "/v1/completions", b"{}", {})
        await c.close()


async def test_pooled_connection_closed_by_the_server_is_replaced():  # type: ignore[no-untyped-def]
    async def one_answer_then_idle_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()   # then the handler returns: the server closes the kept-alive connection

    c = UpstreamClient(connect_s=2.0)
    async with Loopback(one_answer_then_idle_close) as lb:
        for _ in range(3):
            resp = await c.post(lb.url, "/x", b"{}", {})
            assert await resp.read() == b"ok"
            resp.close()
            await asyncio.sleep(0.05)
        assert lb.connections == 3
        await c.close()



async def test_gateway_never_asks_engines_for_compressed_bodies(brix_process, free_port):
    """Bodies are relayed without decompressing, so an engine that compresses when asked
    (prometheus_client does for /metrics, as vLLM's /metrics does) must never be asked:
    the gateway's scrapes, model refreshes and proxied requests carry no Accept-Encoding."""
    import asyncio
    import json

    from aiohttp import web

    from brix import procs

    seen: dict[str, str] = {}

    async def record(request: web.Request) -> web.Response:
        seen[request.path] = request.headers.get("Accept-Encoding", "")
        if request.path == "/v1/models":
            return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})
        if request.path == "/metrics":
            return web.Response(text="vllm:num_requests_running{model_name=\"m\"} 0\n")
        return web.json_response({"id": "x", "object": "text_completion", "choices": [],
                                  "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", free_port).start()
    try:
        for client in ("fast", "aiohttp"):
            seen.clear()
            port = procs.free_port()
            gw = brix_process(f"gateway-{client}", "gateway", "--port", str(port), "--endpoints",
                              f"http://127.0.0.1:{free_port}", "--scrape-interval", "0.05",
                              "--upstream-client", client, ready_url=f"http://127.0.0.1:{port}/readyz", wait=False)
            await asyncio.get_running_loop().run_in_executor(None, gw.wait_ready, 30)
            body = json.dumps({"model": "m", "prompt": "hi"}).encode()

            def post(port: int = port, body: bytes = body) -> int:
                import urllib.request

                req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                                             headers={"Content-Type": "application/json",
                                                      "Accept-Encoding": "gzip"})
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status

            assert await asyncio.get_running_loop().run_in_executor(None, post) == 200
            for _ in range(100):
                if "/metrics" in seen:
                    break
                await asyncio.sleep(0.05)
            assert seen.get("/metrics") == "" and seen.get("/v1/models") == "", (client, seen)
            assert seen.get("/v1/completions") == "", (client, seen)
            gw.stop()
    finally:
        await runner.cleanup()
