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
import enum
import logging
import time
from collections.abc import Mapping
from typing import cast

import httptools

from brix.logs import kv
from gateway.http_messages import ClientGone, ErrorBody, Handler, Request, Responder, head

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
MAX_PIPELINED = 16  # queued requests per connection before reading pauses
LINGER_S = 2.0


class Phase(enum.Enum):
    """Where a connection's reading side is. Serving runs beside it: `_Connection.task` answers the
    queued requests in order while the next ones (pipelined) are still being read.

    ```
             first byte               head complete            message complete
      IDLE ────────────────▶ HEAD ────────────────▶ BODY ────────────────────────▶ IDLE
        │                     │                      │     (keep-alive; else CLOSING)
        └─────────────────────┴──────────────────────┴──▶ CLOSING
           400 malformed, 431 head too large, 408 too slow, 413 body too large,
           an Upgrade, the last request (no keep-alive), an HTTP/1.0 stream or a
           stream cut by a failure
    ```

    CLOSING is final: what arrives is dropped, the requests already queued are answered (a
    failure mid-stream clears the queue), an owed error answer is written, then the connection
    closes (after an error, with a lingering close). Every change goes through `_Connection._to`.
    """

    IDLE = "idle"        # between requests: nothing of the next one has arrived (keep-alive wait)
    HEAD = "head"        # a request line and headers are arriving
    BODY = "body"        # its body is arriving
    CLOSING = "closing"  # no more requests: answer what is queued, then close


IDLE, HEAD, BODY, CLOSING = Phase.IDLE, Phase.HEAD, Phase.BODY, Phase.CLOSING


class _Assembler:
    """Request assembly: llhttp's callbacks build one Request at a time from a connection's bytes
    and enforce the head and body limits. It knows nothing of queues, tasks or responses: it tells
    its connection that a request began, wants 100 Continue, is complete, is too large, or is
    malformed (and then stops the parser by raising)."""

    __slots__ = ("conn", "max_body", "parser", "url", "headers", "head_bytes", "head_raw", "began_in_feed",
                 "body", "body_size", "request")

    def __init__(self, conn: _Connection, max_body: int) -> None:
        self.conn = conn
        self.max_body = max_body
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: dict[str, str] = {}
        self.head_bytes = 0       # bytes of url and headers seen by the callbacks
        self.head_raw = 0         # bytes of a head still incomplete, counted per read (after its first)
        self.began_in_feed = False  # a head began in the data being fed
        self.body: list[bytes] = []
        self.body_size = 0
        self.request: Request | None = None   # the request whose head is complete and body is arriving

    def feed(self, data: bytes) -> None:
        """Parse `data`; raises httptools' HttpParserError / HttpParserUpgrade as llhttp does."""
        self.began_in_feed = False
        self.parser.feed_data(data)

    def count_raw_head(self, n: int) -> None:
        """All of a read was part of a head still incomplete: httptools buffers a header until it
        ends, so on_header alone would let a header that never ends grow without limit."""
        if self.began_in_feed:
            return
        self.head_raw += n
        if self.head_raw > MAX_HEADER_BYTES:
            self.conn.reject(431, f"request header block larger than {MAX_HEADER_BYTES} bytes", "headers_too_large")

    # ---- llhttp callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = {}
        self.head_bytes = 0
        self.body = []
        self.body_size = 0
        self.head_raw = 0
        self.began_in_feed = True
        self.conn.request_began()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._grow_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._grow_head(len(name) + len(value))
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self.headers.get(key)
        self.headers[key] = text if old is None else f"{old}, {text}"

    def _grow_head(self, n: int) -> None:
        self.head_bytes += n
        if self.head_bytes > MAX_HEADER_BYTES:
            self.conn.reject(431, f"request header block larger than {MAX_HEADER_BYTES} bytes", "headers_too_large")
            raise httptools.HttpParserError("header block too large")

    def on_headers_complete(self) -> None:
        try:
            url = httptools.parse_url(self.url)
        except httptools.HttpParserInvalidURLError:
            self.conn.reject(400, f"malformed request target {self.url[:200]!r}", "bad_request")
            raise httptools.HttpParserError("bad url") from None
        req = Request(self.parser.get_method().decode("latin-1"), url.path.decode("latin-1"),
                      (url.query or b"").decode("latin-1"), self.headers, self.parser.get_http_version())
        self.request = req
        self.conn.head_complete()
        length = req.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            self._too_large(req)
            return
        if req.headers.get("expect", "").lower() == "100-continue":
            self.conn.continue_wanted()

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.max_body:
            if self.request is not None:
                self._too_large(self.request)
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        req = self.request
        if req is None:   # answered already as too large
            return
        self.request = None
        req.body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body = []
        self.conn.request_complete(req, self.parser.should_keep_alive())

    def _too_large(self, req: Request) -> None:
        """The handler answers it (so it is counted and logged); the rest of the body is never read."""
        req.too_large = True
        self.request = None
        self.conn.request_too_large(req)


class _Connection(asyncio.Protocol):
    """One client connection: its reading phase (`phase`, changed only by `_to`), request assembly
    (`_Assembler`), and dispatch: the queue of complete requests, answered in order by one task."""

    def __init__(self, edge: HttpEdge) -> None:
        self.edge = edge
        self.transport: asyncio.Transport | None = None
        self.phase = IDLE
        self.closing_after_response = False   # phase is CLOSING, kept by _to for the Responder
        self.receiving_since = 0.0   # when the request arriving now began (phases HEAD and BODY)
        self.last_active = time.monotonic()
        self.assembler = _Assembler(self, edge.max_body)
        # dispatch
        self.queue: collections.deque[Request] = collections.deque()
        self.task: asyncio.Task[None] | None = None
        self.current: Request | None = None  # the request being answered
        self.continue_owed = False  # a 100 Continue waits for the response being written to end
        self.owed_error: bytes | None = None  # an error answer owed after the queued requests
        # flow control
        self.paused: asyncio.Future[None] | None = None   # writing: the transport's buffer is full
        self.reading_paused = False                       # reading: too many pipelined requests queued

    # ---- the phase ----------------------------------------------------------------------
    def _to(self, phase: Phase) -> None:
        """Every phase change (see Phase): CLOSING is final; entering HEAD starts the request timer."""
        if self.phase is CLOSING:
            return
        if phase is HEAD:
            self.receiving_since = time.monotonic()
        self.phase = phase
        self.closing_after_response = phase is CLOSING

    def close_after_response(self) -> None:
        """The response being written is the connection's last (an HTTP/1.0 stream ends at the close)."""
        self._to(CLOSING)

    # ---- transport events ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)   # create_server hands stream transports
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
        if self.phase is CLOSING:
            return
        self.last_active = time.monotonic()
        try:
            self.assembler.feed(data)
        except httptools.HttpParserUpgrade:
            if self.task is None:
                self.reject(400, "protocol upgrades are not supported", "upgrade_not_supported")
            else:
                # llhttp pauses here after the request itself is complete and queued: it is answered
                # as a plain request (a server may ignore Upgrade), and what follows is not read
                self._to(CLOSING)
        except httptools.HttpParserError as exc:
            if self.phase is not CLOSING:
                self.reject(400, f"malformed HTTP request: {exc}", "bad_request")
            return
        if self.phase is HEAD:
            self.assembler.count_raw_head(len(data))

    # ---- what the assembler reports --------------------------------------------------------
    def request_began(self) -> None:
        self._to(HEAD)

    def head_complete(self) -> None:
        self._to(BODY)

    def continue_wanted(self) -> None:
        if self.task is None:
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        else:  # an earlier pipelined request is being answered: after its response, not inside it
            self.continue_owed = True

    def request_complete(self, req: Request, keep_alive: bool) -> None:
        self._to(IDLE if keep_alive else CLOSING)
        self._enqueue(req)

    def request_too_large(self, req: Request) -> None:
        """Answer through the handler (so it is counted and logged), then close: the rest of
        the body is never read."""
        self._to(CLOSING)
        self._enqueue(req)

    def time_out_request(self) -> None:
        """The request still arriving took longer than request_timeout_s: 408 and a close."""
        self.reject(408, f"the request did not arrive within {self.edge.request_timeout_s:g}s", "request_timeout")

    def reject(self, status: int, message: str, code: str) -> None:
        """A request that cannot be parsed: an error response and a close (nothing queued is lost:
        requests already parsed are answered first)."""
        self._to(CLOSING)
        body = self.edge.error_body(status, message, code)
        data = head(status, {"content-type": "application/json"},
                    b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)) + body
        if self.task is None and not self.queue:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(data)
                self._lingering_close()
        else:
            self.owed_error = data

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

    # ---- dispatch ------------------------------------------------------------------------
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
                        self._to(CLOSING)
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
                if self.continue_owed:
                    self.continue_owed = False
                    if self.phase is not CLOSING:
                        self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.last_active = time.monotonic()
                if self.phase is CLOSING and not self.queue:
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
        if self.owed_error is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.owed_error)
            self._lingering_close()
            return
        if self.phase is CLOSING and self.transport is not None:
            self.transport.close()

    def _internal_error(self, responder: Responder) -> None:
        responder.send(500, {"content-type": "application/json"},
                       self.edge.error_body(500, "internal error in the gateway; see its log", "internal_error"))

    @property
    def idle(self) -> bool:
        return self.task is None and not self.queue

    @property
    def receiving(self) -> bool:
        return self.phase is HEAD or self.phase is BODY


class HttpEdge:
    """Serves `routes` on host:port. `error_body(status, message, code)` builds the JSON of the
    errors the server answers itself (400 malformed, 431, 500)."""

    def __init__(self, routes: Mapping[tuple[str, str], Handler], fallback: Handler, max_body: int,
                 error_body: ErrorBody, keepalive_s: float = 75.0, request_timeout_s: float = 60.0) -> None:
        self.routes = routes
        self.fallback = fallback
        self.max_body = max_body
        self.error_body = error_body
        self.keepalive_s = keepalive_s
        self.request_timeout_s = request_timeout_s
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
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
                if conn.receiving:
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
