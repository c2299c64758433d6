"""The gateway's HTTP/1.1 server: an asyncio Protocol around llhttp (httptools).

Why not aiohttp's server: for a proxy that answers in about a millisecond, aiohttp's per-request
machinery (BaseRequest, router, middlewares, StreamResponse, payload writers) was the largest
part of the gateway's own latency (gateway/README.md, Performance). This server does only what
the gateway needs, in one pass per request:

- requests are parsed by llhttp (the parser of Node.js; via httptools, as uvicorn uses it),
  header names lower-cased into a plain dict (repeated headers joined with ", ");
- a route is (method, path) -> `async handler(request, responder)`; anything else goes to
  `fallback`;
- keep-alive, HTTP/1.0, pipelined requests (answered in order), `Expect: 100-continue`;
- limits: header block (431), body (`Request.too_large` is set and the handler answers 413;
  the connection then closes without reading the rest), a malformed request gets 400 and a
  close; idle keep-alive connections close after `keepalive_s`; a request whose head and body
  take longer than `request_timeout_s` to arrive gets 408 and a close (slow-loris clients);
- a client that disconnects cancels its handler's task (the handler sees CancelledError);
- responses are written with one `transport.write` each (`send`) or chunked (`start`,
  `write` with flow control, `end`; to an HTTP/1.0 client unframed, ended by the close); a
  handler that fails mid-stream gets no last chunk, so the client sees the cut.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time

import httptools

from brix.logs import kv
from gateway.http_messages import ClientGone, ErrorBody, Handler, Request, Responder, head

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
MAX_PIPELINED = 16  # queued requests per connection before reading pauses
LINGER_S = 2.0


class _Connection(asyncio.Protocol):
    def __init__(self, edge: HttpEdge) -> None:
        self.edge = edge
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: collections.deque[Request] = collections.deque()
        self.task: asyncio.Task[None] | None = None
        self.paused: asyncio.Future[None] | None = None
        self.closing_after_response = False
        self.reading_paused = False
        self.last_active = time.monotonic()
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._request: Request | None = None
        self._discarding = False  # after a 413 or 400: ignore the rest of what the client sends
        self._in_head = False  # between on_message_begin and on_headers_complete
        self._head_began = False  # a head began in the data being fed
        self._head_raw = 0  # bytes of the head in progress, counted as they arrive (after its first read)
        self._continue_owed = False  # a 100 Continue waits for the response being written to end
        self.receiving_since: float | None = None  # first byte of a request still arriving
        self.current: Request | None = None  # the request being answered
        self._pending_reject: bytes | None = None  # an error answer owed after the queued requests

    # ---- transport events ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.edge.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.edge.connections.discard(self)
        self.queue.clear()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.paused is not None and not self.paused.done():
            self.paused.set_result(None)  # the writer wakes and drain() raises ClientGone

    def pause_writing(self) -> None:
        if self.paused is None:
            self.paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        paused, self.paused = self.paused, None
        if paused is not None and not paused.done():
            paused.set_result(None)

    async def drain(self) -> None:
        if self.paused is not None:
            await asyncio.shield(self.paused)
        if self.transport is None or self.transport.is_closing():
            raise ClientGone("the client closed the connection")

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ClientGone("the client closed the connection")
        transport.write(data)

    def connection_header(self, closing: bool) -> bytes:
        if closing:
            return b"connection: close\r\n"
        req = self.current
        return b"connection: keep-alive\r\n" if req is not None and req.http_version == "1.0" else b""

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        self.last_active = time.monotonic()
        self._head_began = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self.task is None:
                self._reject(400, "protocol upgrades are not supported", "upgrade_not_supported")
            else:
                # llhttp pauses here after the request itself is complete and queued: it is answered
                # as a plain request (a server may ignore Upgrade), and what follows is not read
                self._discarding = self.closing_after_response = True
        except httptools.HttpParserError as exc:
            if not self._discarding:
                self._reject(400, f"malformed HTTP request: {exc}", "bad_request")
            return
        if self._in_head and not self._head_began and not self._discarding:
            # all of `data` was part of a head still incomplete: httptools buffers a header until
            # it ends, so on_header alone would let a header that never ends grow without limit
            self._head_raw += len(data)
            if self._head_raw > MAX_HEADER_BYTES:
                self._reject(431, f"request header block larger than {MAX_HEADER_BYTES} bytes", "headers_too_large")

    # ---- parser callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._header_bytes = 0
        self._body = []
        self._body_size = 0
        self._head_raw = 0
        self._in_head = self._head_began = True
        self.receiving_since = time.monotonic()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._grow_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._grow_head(len(name) + len(value))
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self._headers.get(key)
        self._headers[key] = text if old is None else f"{old}, {text}"

    def _grow_head(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_HEADER_BYTES:
            self._reject(431, f"request header block larger than {MAX_HEADER_BYTES} bytes", "headers_too_large")
            raise httptools.HttpParserError("header block too large")

    def on_headers_complete(self) -> None:
        self._in_head = False
        try:
            url = httptools.parse_url(self._url)
        except httptools.HttpParserInvalidURLError:
            self._reject(400, f"malformed request target {self._url[:200]!r}", "bad_request")
            raise httptools.HttpParserError("bad url") from None
        req = Request(self.parser.get_method().decode("latin-1"), url.path.decode("latin-1"),
                      (url.query or b"").decode("latin-1"), self._headers, self.parser.get_http_version())
        self._request = req
        length = req.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.edge.max_body:
            self._too_large(req)
            return
        if req.headers.get("expect", "").lower() == "100-continue":
            if self.task is None:
                self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            else:  # an earlier pipelined request is being answered: after its response, not inside it
                self._continue_owed = True

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.edge.max_body:
            if self._request is not None:
                self._too_large(self._request)
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.receiving_since = None
        req = self._request
        if req is None:
            return
        self._request = None
        req.body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body = []
        if not self.parser.should_keep_alive():
            self.closing_after_response = True
            self._discarding = True
        self._enqueue(req)

    # ---- dispatch ------------------------------------------------------------------------
    def _too_large(self, req: Request) -> None:
        """Answer through the handler (so it is counted and logged), then close: the rest of
        the body is never read."""
        req.too_large = True
        self.receiving_since = None
        self._request = None
        self._discarding = True
        self.closing_after_response = True
        self._enqueue(req)

    def time_out_request(self) -> None:
        """The request still arriving took longer than request_timeout_s: 408 and a close."""
        self.receiving_since = None
        self._reject(408, f"the request did not arrive within {self.edge.request_timeout_s:g}s", "request_timeout")

    def _reject(self, status: int, message: str, code: str) -> None:
        """A request that cannot be parsed: an error response and a close (nothing queued is lost:
        requests already parsed are answered first)."""
        self._discarding = True
        self.closing_after_response = True
        body = self.edge.error_body(status, message, code)
        data = head(status, {"content-type": "application/json"},
                     b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)) + body
        if self.task is None and not self.queue:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(data)
                self._lingering_close()
        else:
            self._pending_reject = data

    def _lingering_close(self) -> None:
        """Close after an error answered before the client finished sending: end our side and read
        (and drop) what still comes for a moment, as nginx's lingering_close does, so the
        client's late bytes do not make the kernel reset the connection and lose the answer."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_S, transport.close)

    def _enqueue(self, req: Request) -> None:
        self.queue.append(req)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._serve())
        elif len(self.queue) >= MAX_PIPELINED and self.transport is not None and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    async def _serve(self) -> None:
        edge = self.edge
        try:
            while self.queue:
                req = self.queue.popleft()
                self.current = req
                responder = Responder(self, req.method == "HEAD")
                handler = edge.routes.get((req.method if req.method != "HEAD" else "GET", req.path), edge.fallback)
                try:
                    await handler(req, responder)
                except (ConnectionResetError, asyncio.CancelledError):
                    raise
                except Exception:  # noqa: BLE001 - one bad request must not take the connection's others down
                    log.exception("unhandled error in %s %s", req.method, req.path)
                    if not responder.started:
                        self._internal_error(responder)
                    else:
                        self.closing_after_response = True
                        if not responder.finished:
                            # no last chunk, and nothing more on this connection: the client must see
                            # the stream as cut short, not as a complete (shorter) response
                            responder.finished = True
                            self.queue.clear()
                if not responder.started:  # the handler returned without answering: a bare "0" would be garbage
                    log.error("%s %s: the handler returned without a response", req.method, req.path)
                    self._internal_error(responder)
                elif not responder.finished:
                    responder.end()
                self.current = None
                if self._continue_owed:
                    self._continue_owed = False
                    if not self.closing_after_response:
                        self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.last_active = time.monotonic()
                if self.closing_after_response and not self.queue:
                    break
                if self.reading_paused and len(self.queue) < MAX_PIPELINED // 2 and self.transport is not None:
                    self.reading_paused = False
                    self.transport.resume_reading()
        except (ConnectionResetError, asyncio.CancelledError):
            self.queue.clear()
            if self.transport is not None:
                self.transport.abort()
            return
        finally:
            self.task = None
        if self._pending_reject is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.write(self._pending_reject)
            self._lingering_close()
            return
        if self.closing_after_response and self.transport is not None:
            self.transport.close()

    def _internal_error(self, responder: Responder) -> None:
        responder.send(500, {"content-type": "application/json"},
                       self.edge.error_body(500, "internal error in the gateway; see its log", "internal_error"))

    @property
    def idle(self) -> bool:
        return self.task is None and not self.queue


class HttpEdge:
    """Serves `routes` on host:port. `error_body(status, message, code)` builds the JSON of the
    errors the server answers itself (400 malformed, 431, 500)."""

    def __init__(self, routes: dict[tuple[str, str], Handler], fallback: Handler, max_body: int,
                 error_body: ErrorBody, keepalive_s: float = 75.0, request_timeout_s: float = 60.0) -> None:
        self.routes = routes
        self.fallback = fallback
        self.max_body = max_body
        self.error_body = error_body
        self.keepalive_s = keepalive_s
        self.request_timeout_s = request_timeout_s
        self.connections: set[_Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int, backlog: int = 2048) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, backlog=backlog,
                                                reuse_address=True)
        self._sweeper = loop.create_task(self._sweep_idle())

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def _sweep_idle(self) -> None:
        """Every few seconds: close idle keep-alive connections, time out requests that dribble in."""
        interval = min(10.0, self.keepalive_s / 2, self.request_timeout_s / 2)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for conn in list(self.connections):
                if not conn.idle or conn.transport is None:
                    continue
                if conn.receiving_since is not None:
                    if now - conn.receiving_since > self.request_timeout_s:
                        conn.time_out_request()
                elif now - conn.last_active > self.keepalive_s:
                    conn.transport.close()

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop accepting, close idle connections, give in-flight requests `grace_s` to finish."""
        if self._server is None:
            return
        self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        deadline = time.monotonic() + grace_s
        while True:
            for conn in [c for c in self.connections if c.idle]:
                if conn.transport is not None:
                    conn.transport.close()
            busy = [c for c in self.connections if not c.idle]
            if not busy or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            if conn.transport is not None:
                kv(log, "closing a connection still busy at shutdown", logging.WARNING)
                conn.transport.abort()
        self._server = None
