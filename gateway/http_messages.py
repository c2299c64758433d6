"""What the gateway's HTTP server hands to handlers: the parsed Request and a Responder that
writes one response (whole or chunked) on the connection (gateway/http_edge.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Protocol


class Connection(Protocol):
    """What a Responder needs of its connection (http_edge._Connection)."""

    current: Request | None

    @property
    def paused(self) -> object | None: ...

    @property
    def closing_after_response(self) -> bool: ...

    def close_after_response(self) -> None: ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def connection_header(self, closing: bool) -> bytes: ...


class ClientGone(ConnectionResetError):
    """The client closed its connection; nothing more can be written to it."""


class Request:
    __slots__ = ("method", "path", "query", "headers", "body", "too_large", "http_version")

    def __init__(self, method: str, path: str, query: str, headers: dict[str, str], http_version: str) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = b""
        self.too_large = False
        self.http_version = http_version


Handler = Callable[[Request, "Responder"], Awaitable[None]]
ErrorBody = Callable[[int, str, str], bytes]

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_date_second = 0.0
_date_line = b""


def date_header() -> bytes:
    """The Date header line, formatted once per second."""
    global _date_second, _date_line
    now = time.time()
    if now - _date_second >= 1.0:
        _date_second = float(int(now))
        _date_line = f"date: {formatdate(now, usegmt=True)}\r\n".encode()
    return _date_line


def head(status: int, headers: Mapping[str, str], framing: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n".encode(), date_header()]
    for name, value in headers.items():
        lines.append(f"{name}: {value}\r\n".encode("latin-1", "replace"))
    lines.append(framing)
    return b"".join(lines)


class Responder:
    """Writes one response. `send` for a whole body; `start` + `write`... + `end` for a chunked stream."""

    __slots__ = ("_conn", "_head_only", "_unframed", "started", "finished", "status")

    def __init__(self, conn: Connection, head_only: bool) -> None:
        self._conn = conn
        self._head_only = head_only
        self._unframed = False  # a stream to an HTTP/1.0 client: no chunks, the body ends at the close
        self.started = False
        self.finished = False
        self.status = 0

    def send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        if self.started:
            raise RuntimeError("response already started")
        self.started = self.finished = True
        self.status = status
        closing = self._conn.closing_after_response
        framing = b"content-length: %d\r\n%s\r\n" % (len(body), self._conn.connection_header(closing))
        self._conn.write(head(status, headers, framing) + (b"" if self._head_only else body))

    def start(self, status: int, headers: Mapping[str, str]) -> None:
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        conn = self._conn
        if conn.current is not None and conn.current.http_version == "1.0":
            # HTTP/1.0 has no chunked encoding (RFC 9112 6.1): send the body as is and end it by closing
            self._unframed = True
            conn.close_after_response()
            framing = b"connection: close\r\n\r\n"
        else:
            framing = b"transfer-encoding: chunked\r\n%s\r\n" % conn.connection_header(conn.closing_after_response)
        self._conn.write(head(status, headers, framing))

    async def write(self, chunk: bytes) -> None:
        """One chunk of a started stream; waits while the client's socket buffer is full.
        Raises ClientGone once the client is gone."""
        if not chunk or self._head_only:
            return
        conn = self._conn
        conn.write(chunk if self._unframed else b"%x\r\n%s\r\n" % (len(chunk), chunk))
        if conn.paused is not None:
            await conn.drain()

    def end(self) -> None:
        if self.finished:
            return
        self.finished = True
        if not self._head_only and not self._unframed:
            self._conn.write(b"0\r\n\r\n")
