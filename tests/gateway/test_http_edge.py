"""The gateway's lean HTTP/1.1 server (gateway/http_edge.py), in process, against real peers:
raw sockets for exact wire checks and aiohttp's client for ordinary keep-alive and streaming use."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from gateway.http_edge import MAX_HEADER_BYTES, HttpEdge
from gateway.http_messages import Handler, Request, Responder

T = 2.0  # seconds any single wait may take before the test fails instead of hanging


def error_body(status: int, message: str, code: str) -> bytes:
    return json.dumps({"error": {"status": status, "message": message, "code": code}}).encode()


def as_json(req: Request) -> bytes:
    return json.dumps({"method": req.method, "path": req.path, "query": req.query, "headers": req.headers,
                       "body": req.body.decode("latin-1"), "too_large": req.too_large,
                       "version": req.http_version}).encode()


async def echo(req: Request, responder: Responder) -> None:
    if req.too_large:
        responder.send(413, {"content-type": "application/json"}, b'{"error": "too large"}')
        return
    responder.send(200, {"content-type": "application/json"}, as_json(req))


def recording_echo() -> tuple[list[Request], Handler]:
    """An echo handler that also keeps every request it got."""
    seen: list[Request] = []

    async def record(req: Request, responder: Responder) -> None:
        seen.append(req)
        await echo(req, responder)

    return seen, record


async def fixed(req: Request, responder: Responder) -> None:
    responder.send(200, {"content-type": "text/plain", "x-route": "fixed"}, b"the same body every time")


async def not_found(req: Request, responder: Responder) -> None:
    responder.send(404, {"content-type": "application/json"}, json.dumps({"fallback": req.path}).encode())


@asynccontextmanager
async def serving(routes: dict | None = None, fallback=not_found, max_body: int = 1 << 20,
                  keepalive_s: float = 75.0, request_timeout_s: float = 60.0) -> AsyncIterator[HttpEdge]:
    edge = HttpEdge(routes if routes is not None else {("GET", "/echo"): echo, ("POST", "/echo"): echo,
                                                       ("GET", "/fixed"): fixed},
                    fallback, max_body, error_body, keepalive_s=keepalive_s, request_timeout_s=request_timeout_s)
    await edge.start("127.0.0.1", 0)
    try:
        yield edge
    finally:
        await edge.stop(grace_s=1)


async def connect(edge: HttpEdge) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", edge.port)


async def read_response(reader: asyncio.StreamReader, head_only: bool = False
                        ) -> tuple[int, dict[str, str], bytes, bytes]:
    """One response off the wire: (status, headers, body, the raw bytes). Chunked bodies are de-chunked."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if head_only or 100 <= status < 200:
        return status, headers, b"", head
    if headers.get("transfer-encoding") == "chunked":
        raw, parts = [head], []
        while True:
            size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), T)
            size = int(size_line.strip(), 16)
            data = await asyncio.wait_for(reader.readexactly(size + 2), T)
            assert data.endswith(b"\r\n")
            raw += (size_line, data)
            if size == 0:
                break
            parts.append(data[:-2])
        return status, headers, b"".join(parts), b"".join(raw)
    if "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), T)
    else:  # HTTP/1.0 style: the body runs to the close
        body = await asyncio.wait_for(reader.read(), T)
    return status, headers, body, head + body


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True when the server closes the connection (EOF) without sending anything more."""
    try:
        rest = await asyncio.wait_for(reader.read(), T)
    except ConnectionResetError:
        return True
    return rest == b""


async def still_open(reader: asyncio.StreamReader, wait: float = 0.2) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(1), wait)
    except TimeoutError:
        return True
    return data != b""


# ---- 1. routing ----------------------------------------------------------------------------------
async def test_routes_by_method_and_path_with_fallback_and_head() -> None:
    async with serving() as edge, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{edge.port}"
        async with session.get(f"{base}/echo?x=1") as resp:
            assert resp.status == 200
            got = await resp.json()
            assert (got["method"], got["path"], got["query"]) == ("GET", "/echo", "x=1")
        async with session.post(f"{base}/echo", data=b"hello") as resp:
            got = await resp.json()
            assert (resp.status, got["method"], got["body"]) == (200, "POST", "hello")
        async with session.get(f"{base}/nowhere") as resp:
            assert resp.status == 404
            assert await resp.json() == {"fallback": "/nowhere"}
        async with session.put(f"{base}/echo") as resp:  # a method with no route is the fallback's too
            assert resp.status == 404

        # HEAD: GET's headers (with its content-length) and no body; the next response on the same
        # connection parses cleanly, so no body bytes leaked onto the wire
        reader, writer = await connect(edge)
        writer.write(b"GET /fixed HTTP/1.1\r\nhost: x\r\n\r\n")
        _, get_headers, get_body, _ = await read_response(reader)
        writer.write(b"HEAD /fixed HTTP/1.1\r\nhost: x\r\n\r\n")
        status, headers, _, _ = await read_response(reader, head_only=True)
        assert status == 200
        assert headers["content-length"] == get_headers["content-length"] == str(len(get_body))
        assert (headers["content-type"], headers["x-route"]) == ("text/plain", "fixed")
        writer.write(b"GET /other HTTP/1.1\r\nhost: x\r\n\r\n")
        status, _, body, _ = await read_response(reader)
        assert (status, json.loads(body)) == (404, {"fallback": "/other"})
        writer.close()


# ---- 2. bodies and headers -----------------------------------------------------------------------
async def test_bodies_reach_the_handler_whole_and_headers_are_normalised() -> None:
    async with serving() as edge:
        reader, writer = await connect(edge)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nX-Mixed-Case: A\r\n"
                     b"X-Rep: one\r\nx-rep: two\r\n\r\nhello")
        await writer.drain()
        await asyncio.sleep(0.02)  # the body arrives in two pieces
        writer.write(b" world")
        status, _, body, _ = await read_response(reader)
        got = json.loads(body)
        assert (status, got["body"]) == (200, "hello world")
        assert got["headers"]["x-mixed-case"] == "A"
        assert got["headers"]["x-rep"] == "one, two"
        assert all(name == name.lower() for name in got["headers"])

        # chunked, written chunk by chunk
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b"5\r\nfirst\r\n", b"7\r\n-second\r\n", b"6\r\n-third\r\n", b"0\r\n\r\n"):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
        status, _, body, _ = await read_response(reader)
        assert (status, json.loads(body)["body"]) == (200, "first-second-third")
        writer.close()


# ---- 3. keep-alive and HTTP/1.0 ------------------------------------------------------------------
async def test_keep_alive_serves_many_requests_on_one_connection() -> None:
    async with serving() as edge:
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            for i in range(5):
                async with session.post(f"http://127.0.0.1:{edge.port}/echo", data=str(i).encode()) as resp:
                    assert (await resp.json())["body"] == str(i)
                    assert "connection" not in resp.headers  # HTTP/1.1 keep-alive is the default
            assert len(edge.connections) == 1


async def test_http10_closes_unless_keep_alive_is_asked_for() -> None:
    async with serving() as edge:
        reader, writer = await connect(edge)
        writer.write(b"GET /echo HTTP/1.0\r\n\r\n")
        status, headers, body, _ = await read_response(reader)
        assert (status, headers["connection"], json.loads(body)["version"]) == (200, "close", "1.0")
        assert await closed_by_server(reader)
        writer.close()

        reader, writer = await connect(edge)
        writer.write(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, _, _ = await read_response(reader)
        assert (status, headers["connection"]) == (200, "keep-alive")
        assert await still_open(reader)
        writer.write(b"GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, body, _ = await read_response(reader)
        assert (status, json.loads(body)) == (404, {"fallback": "/again"})
        writer.close()


# ---- 4. pipelining -------------------------------------------------------------------------------
async def test_pipelined_requests_are_answered_in_order() -> None:
    async def slow(req: Request, responder: Responder) -> None:
        await asyncio.sleep(0.05)  # the first is the slowest: order must not follow completion time
        await echo(req, responder)

    async with serving({("GET", "/slow"): slow, ("POST", "/echo"): echo, ("GET", "/echo"): echo}) as edge:
        reader, writer = await connect(edge)
        writer.write(b"GET /slow?n=1 HTTP/1.1\r\nhost: x\r\n\r\n"
                     b"POST /echo?n=2 HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc"
                     b"GET /echo?n=3 HTTP/1.1\r\nhost: x\r\n\r\n")
        answers = [json.loads((await read_response(reader))[2]) for _ in range(3)]
        assert [(a["path"], a["query"], a["body"]) for a in answers] == [
            ("/slow", "n=1", ""), ("/echo", "n=2", "abc"), ("/echo", "n=3", "")]
        writer.close()


async def test_many_pipelined_requests_pause_reading_and_are_all_answered() -> None:
    async with serving() as edge:  # more than MAX_PIPELINED queued at once: reading pauses, then resumes
        reader, writer = await connect(edge)
        writer.write(b"".join(b"GET /echo?n=%d HTTP/1.1\r\nhost: x\r\n\r\n" % i for i in range(40)))
        queries = [json.loads((await read_response(reader))[2])["query"] for _ in range(40)]
        assert queries == [f"n={i}" for i in range(40)]
        writer.write(b"GET /echo?n=last HTTP/1.1\r\nhost: x\r\n\r\n")
        assert json.loads((await read_response(reader))[2])["query"] == "n=last"
        writer.close()


# ---- 5. Expect: 100-continue ---------------------------------------------------------------------
async def test_100_continue_for_a_pipelined_request_does_not_land_inside_a_stream() -> None:
    go_on = asyncio.Event()

    async def stream(req: Request, responder: Responder) -> None:
        responder.start(200, {})
        await responder.write(b"first")
        await asyncio.wait_for(go_on.wait(), T)
        await responder.write(b"second")
        responder.end()

    async with serving({("GET", "/stream"): stream, ("POST", "/echo"): echo}) as edge:
        reader, writer = await connect(edge)
        writer.write(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"first\r\n"), T)  # the stream is under way
        writer.write(b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n")
        await asyncio.sleep(0.05)
        go_on.set()
        rest = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), T)
        assert rest == b"6\r\nsecond\r\n0\r\n\r\n"  # the stream, whole and unmixed
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"ok")
        status, _, body, _ = await read_response(reader)
        assert (status, json.loads(body)["body"]) == (200, "ok")
        writer.close()


async def test_expect_100_continue_is_answered_before_the_body_is_sent() -> None:
    async with serving() as edge:
        reader, writer = await connect(edge)
        writer.write(b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 4\r\n\r\n")
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"data")  # only now
        status, _, body, _ = await read_response(reader)
        assert (status, json.loads(body)["body"]) == (200, "data")
        writer.close()

    async with serving() as edge, aiohttp.ClientSession() as session:  # a real client that waits for it
        async with session.post(f"http://127.0.0.1:{edge.port}/echo", data=b"xyz", expect100=True) as resp:
            assert (resp.status, (await resp.json())["body"]) == (200, "xyz")


# ---- 6. body limit -------------------------------------------------------------------------------
async def test_declared_body_above_max_body_gets_413_and_a_close() -> None:
    seen, record = recording_echo()
    async with serving({("POST", "/echo"): record}, max_body=100) as edge:
        reader, writer = await connect(edge)
        writer.write(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n" + b"a" * 50)
        status, headers, _, _ = await read_response(reader)
        assert (status, headers["connection"]) == (413, "close")
        assert [r.too_large for r in seen] == [True]
        assert await closed_by_server(reader)
        writer.close()

        # no 100 Continue for a body that will not be read
        reader, writer = await connect(edge)
        writer.write(b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 1000\r\n\r\n")
        status, headers, _, _ = await read_response(reader)
        assert (status, headers["connection"]) == (413, "close")
        writer.close()

        # exactly max_body is fine
        reader, writer = await connect(edge)
        writer.write(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n" + b"b" * 100)
        status, headers, body, _ = await read_response(reader)
        assert (status, len(json.loads(body)["body"]), headers.get("connection")) == (200, 100, None)
        writer.close()


async def test_chunked_body_growing_past_max_body_gets_413_and_a_close() -> None:
    seen, record = recording_echo()
    async with serving({("POST", "/echo"): record}, max_body=100) as edge:
        reader, writer = await connect(edge)
        writer.write(b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"3c\r\n" + b"a" * 60 + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.02)
        assert seen == []  # 60 bytes: still within the limit
        writer.write(b"3c\r\n" + b"a" * 60 + b"\r\n")  # 120: over it, and the body is not finished
        status, headers, _, _ = await read_response(reader)
        assert (status, headers["connection"]) == (413, "close")
        assert [r.too_large for r in seen] == [True]
        assert await closed_by_server(reader)
        writer.close()


# ---- 7. malformed requests -----------------------------------------------------------------------
async def test_header_block_too_large_gets_431_json() -> None:
    called: list[str] = []

    async def never(req: Request, responder: Responder) -> None:
        called.append(req.path)
        responder.send(204, {}, b"")

    async with serving({}, fallback=never) as edge:
        reader, writer = await connect(edge)
        big = b"v" * (MAX_HEADER_BYTES // 2)
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\nx-a: " + big + b"\r\nx-b: " + big + b"\r\nx-c: 1\r\n\r\n")
        status, headers, body, _ = await read_response(reader)
        assert (status, headers["connection"], headers["content-type"]) == (431, "close", "application/json")
        assert json.loads(body)["error"]["code"] == "headers_too_large"
        assert await closed_by_server(reader)
        assert called == []
        writer.close()

        # just under the limit is served
        reader, writer = await connect(edge)
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\nx-a: " + b"v" * (MAX_HEADER_BYTES - 100) + b"\r\n\r\n")
        await asyncio.sleep(0.05)
        assert called == ["/"]
        writer.close()


async def test_a_header_that_never_ends_gets_431_instead_of_growing_forever() -> None:
    async with serving() as edge:
        reader, writer = await connect(edge)
        writer.write(b"GET /echo HTTP/1.1\r\nhost: x\r\nx-endless: ")
        for _ in range(6):  # 96 KiB of one header value, never terminated, in separate reads
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(b"v" * 16384)
        status, _, body, _ = await read_response(reader)
        assert (status, json.loads(body)["error"]["code"]) == (431, "headers_too_large")
        assert await closed_by_server(reader)
        writer.close()


async def test_a_head_within_the_limit_arriving_in_many_pieces_is_served() -> None:
    async with serving() as edge:
        reader, writer = await connect(edge)
        head = b"GET /echo HTTP/1.1\r\nhost: x\r\nx-a: " + b"v" * 40000 + b"\r\nx-b: " + b"w" * 20000 + b"\r\n\r\n"
        for i in range(0, len(head), 4096):
            writer.write(head[i:i + 4096])
            await writer.drain()
            await asyncio.sleep(0.002)
        status, _, body, _ = await read_response(reader)
        assert (status, len(json.loads(body)["headers"]["x-a"])) == (200, 40000)
        writer.close()


@pytest.mark.parametrize("wire", [
    b"THIS IS NOT HTTP\r\n\r\n",
    b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET / HTTP/9.9\r\nhost: x\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
])
async def test_malformed_request_gets_400_json_and_a_close(wire: bytes) -> None:
    async with serving() as edge:
        reader, writer = await connect(edge)
        writer.write(wire)
        status, headers, body, _ = await read_response(reader)
        assert (status, headers["connection"]) == (400, "close")
        assert json.loads(body)["error"]["code"] == "bad_request"
        assert await closed_by_server(reader)
        writer.close()


async def test_malformed_request_after_a_good_one_does_not_lose_the_good_answer() -> None:
    async with serving() as edge:
        reader, writer = await connect(edge)
        writer.write(b"GET /echo?n=1 HTTP/1.1\r\nhost: x\r\n\r\nNONSENSE\r\n\r\n")
        status, _, body, _ = await read_response(reader)
        assert (status, json.loads(body)["query"]) == (200, "n=1")
        status, _, body, _ = await read_response(reader)
        assert status == 400
        assert await closed_by_server(reader)
        writer.close()


async def test_an_upgrade_request_gets_one_plain_answer_and_a_close() -> None:
    async with serving() as edge:
        reader, writer = await connect(edge)
        writer.write(b"GET /echo HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n")
        status, headers, body, _ = await read_response(reader)
        assert (status, headers["connection"], json.loads(body)["path"]) == (200, "close", "/echo")
        assert await closed_by_server(reader)  # and no second response after it
        writer.close()


# ---- 8. streaming --------------------------------------------------------------------------------
async def test_streamed_chunks_reach_the_client_as_they_are_written() -> None:
    client_got_first = asyncio.Event()

    async def stream(req: Request, responder: Responder) -> None:
        responder.start(200, {"content-type": "text/event-stream"})
        await responder.write(b"data: one\n\n")
        await asyncio.wait_for(client_got_first.wait(), T)  # the client must see it before we go on
        await responder.write(b"data: two\n\n")
        await responder.write(b"data: three\n\n")
        responder.end()

    async with serving({("GET", "/stream"): stream, ("GET", "/echo"): echo}) as edge:
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(f"http://127.0.0.1:{edge.port}/stream") as resp:
                assert resp.headers["transfer-encoding"] == "chunked"
                first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), T)
                assert first == b"data: one\n\n"
                client_got_first.set()
                rest = await asyncio.wait_for(resp.content.read(), T)
                assert rest == b"data: two\n\ndata: three\n\n"
            # the stream ended cleanly, so the connection is reused for the next request
            async with session.get(f"http://127.0.0.1:{edge.port}/echo") as resp:
                assert resp.status == 200
            assert len(edge.connections) == 1

        client_got_first.set()
        reader, writer = await connect(edge)  # and on the wire: proper chunk framing with a last chunk
        writer.write(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
        _, _, body, raw = await read_response(reader)
        assert body == b"data: one\n\ndata: two\n\ndata: three\n\n"
        assert raw.endswith(b"\r\nd\r\ndata: three\n\n\r\n0\r\n\r\n")
        writer.close()


async def test_a_stream_waits_while_the_client_does_not_read() -> None:
    piece, pieces = b"z" * (256 * 1024), 64  # 16 MiB: more than the socket buffers on both sides hold
    written: list[int] = []

    async def flood(req: Request, responder: Responder) -> None:
        responder.start(200, {"content-type": "application/octet-stream"})
        for i in range(pieces):
            await responder.write(piece)
            written.append(i)
        responder.end()

    async with serving({("GET", "/flood"): flood}) as edge:
        reader, writer = await connect(edge)
        writer.write(b"GET /flood HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.sleep(0.3)  # not reading: write() must hold the handler back
        assert 0 < len(written) < pieces
        _, _, body, _ = await read_response(reader)
        assert len(body) == len(piece) * pieces and len(written) == pieces
        writer.close()


async def test_a_stream_to_an_http10_client_is_not_chunked() -> None:
    async def stream(req: Request, responder: Responder) -> None:
        responder.start(200, {"content-type": "text/plain"})
        for part in (b"one ", b"two ", b"three"):
            await responder.write(part)
        responder.end()

    async with serving({("GET", "/stream"): stream}) as edge:
        for keep_alive in (b"", b"Connection: keep-alive\r\n"):
            reader, writer = await connect(edge)
            writer.write(b"GET /stream HTTP/1.0\r\n" + keep_alive + b"\r\n")
            status, headers, body, _ = await read_response(reader)  # no length, no chunks: to the close
            assert "transfer-encoding" not in headers
            assert (status, headers["connection"], body) == (200, "close", b"one two three")
            writer.close()


async def test_head_on_a_streaming_route_sends_no_chunks() -> None:
    async def stream(req: Request, responder: Responder) -> None:
        responder.start(200, {"content-type": "text/plain"})
        await responder.write(b"body")
        responder.end()

    async with serving({("GET", "/stream"): stream}) as edge:
        reader, writer = await connect(edge)
        writer.write(b"HEAD /stream HTTP/1.1\r\nhost: x\r\n\r\nGET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
        status, headers, _, _ = await read_response(reader, head_only=True)
        assert status == 200
        status, _, body, _ = await read_response(reader)  # parses only if HEAD wrote no chunks
        assert (status, body) == (200, b"body")
        writer.close()


# ---- 9. client disconnect ------------------------------------------------------------------------
async def test_client_disconnect_cancels_the_handler() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()
    outcome: list[str] = []

    async def wait_forever(req: Request, responder: Responder) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            cancelled.set()
            raise

    async with serving({("GET", "/wait"): wait_forever}) as edge:
        reader, writer = await connect(edge)
        writer.write(b"GET /wait HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.wait_for(started.wait(), T)
        writer.close()
        await asyncio.wait_for(cancelled.wait(), T)
        assert outcome == ["cancelled"]
        for _ in range(20):
            if not edge.connections:
                break
            await asyncio.sleep(0.01)
        assert not edge.connections


async def test_client_disconnect_mid_stream_cancels_the_streaming_handler() -> None:
    cancelled = asyncio.Event()

    async def stream(req: Request, responder: Responder) -> None:
        responder.start(200, {})
        try:
            while True:
                await responder.write(b"x" * 1024)
                await asyncio.sleep(0.005)
        except (asyncio.CancelledError, ConnectionResetError):
            cancelled.set()
            raise

    async with serving({("GET", "/stream"): stream}) as edge:
        reader, writer = await connect(edge)
        writer.write(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.wait_for(reader.readexactly(2000), T)
        writer.close()
        await asyncio.wait_for(cancelled.wait(), T)


# ---- 10. handler errors --------------------------------------------------------------------------
async def test_a_handler_that_raises_gets_500_and_the_connection_serves_on() -> None:
    async def boom(req: Request, responder: Responder) -> None:
        raise ValueError("bug in a handler")

    async with serving({("GET", "/boom"): boom, ("GET", "/echo"): echo}) as edge:
        reader, writer = await connect(edge)
        writer.write(b"GET /boom HTTP/1.1\r\nhost: x\r\n\r\n")
        status, headers, body, _ = await read_response(reader)
        assert (status, headers["content-type"]) == (500, "application/json")
        assert json.loads(body)["error"]["code"] == "internal_error"
        writer.write(b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n")
        status, _, body, _ = await read_response(reader)
        assert (status, json.loads(body)["path"]) == (200, "/echo")
        writer.close()


async def test_a_handler_that_returns_without_answering_gets_500() -> None:
    async def silent(req: Request, responder: Responder) -> None:
        return None

    async with serving({("GET", "/silent"): silent, ("GET", "/echo"): echo}) as edge:
        reader, writer = await connect(edge)
        writer.write(b"GET /silent HTTP/1.1\r\nhost: x\r\n\r\nGET /echo HTTP/1.1\r\nhost: x\r\n\r\n")
        status, _, body, _ = await read_response(reader)
        assert (status, json.loads(body)["error"]["code"]) == (500, "internal_error")
        status, _, body, _ = await read_response(reader)
        assert (status, json.loads(body)["path"]) == (200, "/echo")
        writer.close()


async def test_a_stream_cut_short_by_an_error_is_not_passed_off_as_complete() -> None:
    async def breaks(req: Request, responder: Responder) -> None:
        responder.start(200, {"content-type": "text/plain"})
        await responder.write(b"partial")
        raise ValueError("the upstream went away")

    async with serving({("GET", "/breaks"): breaks, ("GET", "/echo"): echo}) as edge:
        reader, writer = await connect(edge)
        writer.write(b"GET /breaks HTTP/1.1\r\nhost: x\r\n\r\nGET /echo HTTP/1.1\r\nhost: x\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), T)  # the server closes the connection
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
        assert raw.endswith(b"7\r\npartial\r\n")  # no last chunk, and nothing after it
        writer.close()

        async with aiohttp.ClientSession() as session:  # a client sees the truncation as an error
            async with session.get(f"http://127.0.0.1:{edge.port}/breaks") as resp:
                with pytest.raises(aiohttp.ClientPayloadError):
                    await asyncio.wait_for(resp.read(), T)


# ---- 11. stop ------------------------------------------------------------------------------------
async def test_stop_closes_idle_connections_and_lets_in_flight_requests_finish() -> None:
    started = asyncio.Event()

    async def slow(req: Request, responder: Responder) -> None:
        started.set()
        await asyncio.sleep(0.3)
        responder.send(200, {}, b"finished")

    edge = HttpEdge({("GET", "/slow"): slow, ("GET", "/echo"): echo}, not_found, 1 << 20, error_body)
    await edge.start("127.0.0.1", 0)
    port = edge.port
    idle_reader, idle_writer = await connect(edge)
    idle_writer.write(b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n")
    assert (await read_response(idle_reader))[0] == 200
    busy_reader, busy_writer = await connect(edge)
    busy_writer.write(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
    await asyncio.wait_for(started.wait(), T)

    t0 = time.monotonic()
    stopping = asyncio.create_task(edge.stop(grace_s=2))
    assert await closed_by_server(idle_reader)
    status, _, body, _ = await read_response(busy_reader)
    assert (status, body) == (200, b"finished")
    await asyncio.wait_for(stopping, T)
    assert time.monotonic() - t0 < 1.5  # it returned once the request was done, not at the deadline
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    idle_writer.close()
    busy_writer.close()


async def test_stop_aborts_a_request_still_running_after_the_grace_period() -> None:
    started = asyncio.Event()

    async def stuck(req: Request, responder: Responder) -> None:
        started.set()
        await asyncio.sleep(30)

    edge = HttpEdge({}, stuck, 1 << 20, error_body)
    await edge.start("127.0.0.1", 0)
    reader, writer = await connect(edge)
    writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    await asyncio.wait_for(started.wait(), T)
    t0 = time.monotonic()
    await asyncio.wait_for(edge.stop(grace_s=0.2), T)
    assert 0.15 < time.monotonic() - t0 < 1.0
    assert await closed_by_server(reader)
    writer.close()


# ---- 12. idle timeout ----------------------------------------------------------------------------
async def test_idle_keep_alive_connections_close_after_keepalive_s() -> None:
    async with serving(keepalive_s=0.2) as edge:
        reader, writer = await connect(edge)
        writer.write(b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        t0 = time.monotonic()
        assert await still_open(reader, 0.1)  # not at once
        assert await closed_by_server(reader)
        assert 0.15 < time.monotonic() - t0 < 1.0
        writer.close()


# ---- 13. slow clients ----------------------------------------------------------------------------
@pytest.mark.parametrize("partial", [
    b"GET /echo HTTP/1.1\r\nhost: x\r\nx-slow: ",                          # a head that never ends
    b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nonly part",  # a body that never ends
], ids=["head", "body"])
async def test_a_request_that_dribbles_in_gets_408_after_request_timeout_s(partial: bytes) -> None:
    async with serving(request_timeout_s=0.4) as edge:
        reader, writer = await connect(edge)
        writer.write(partial)
        t0 = time.monotonic()
        for _ in range(4):  # keeps sending a byte now and then: activity alone does not keep it alive
            await asyncio.sleep(0.1)
            writer.write(b"x")
        status, headers, body, _ = await read_response(reader)
        assert status == 408 and headers["connection"] == "close"
        assert json.loads(body)["error"]["code"] == "request_timeout"
        assert 0.35 < time.monotonic() - t0 < 1.5
        assert await closed_by_server(reader)
        writer.close()


async def test_a_whole_request_after_a_quiet_keep_alive_gap_is_not_timed_out() -> None:
    async with serving(request_timeout_s=0.3) as edge:
        reader, writer = await connect(edge)
        await asyncio.sleep(0.5)  # an idle keep-alive connection is not a slow request
        writer.write(b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        writer.close()
