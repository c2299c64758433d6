"""Reading frames straight into their own buffers (asyncio.BufferedProtocol), for server and client.

A StreamReader copies every received byte into a growing buffer, then again into the bytes
`readexactly` returns, and a 32 MiB batched frame also pays the buffer's reallocations. Here the
12-byte header is read into a fixed buffer and the body straight into a bytearray of its exact
size, so the kernel's copy is the only one; values are then memoryview slices of that body.
"""

from __future__ import annotations

import asyncio

from kvcache import protocol as p


class FrameProtocol(asyncio.BufferedProtocol):
    """Calls `frame(code, count, request_id, body)` once per complete frame; `body` is a bytearray."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._head = bytearray(p.HEADER_SIZE)
        self._head_view = memoryview(self._head)
        self._body: bytearray | None = None
        self._body_view: memoryview | None = None
        self._pos = 0
        self._hdr: tuple[int, int, int, int] = (0, 0, 0, 0)
        self._paused = False
        self._drained: asyncio.Future[None] | None = None

    # --- subclass hooks ------------------------------------------------------------------
    def frame(self, code: int, count: int, request_id: int, body: bytearray) -> None:
        raise NotImplementedError

    def bad_frame(self, error: p.ProtocolError, request_id: int) -> None:
        assert self.transport is not None
        self.transport.close()

    # --- asyncio -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream protocol gets a stream transport

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._body_view is None:
            return self._head_view[self._pos:]
        return self._body_view[self._pos:]

    def buffer_updated(self, nbytes: int) -> None:
        self._pos += nbytes
        if self._body_view is None:
            if self._pos < p.HEADER_SIZE:
                return
            try:
                self._hdr = p.parse_header(bytes(self._head))
            except p.ProtocolError as exc:
                self._pos = 0
                self.bad_frame(exc, int.from_bytes(self._head[8:12], "little"))
                return
            self._pos = 0
            body_len = self._hdr[0]
            if body_len == 0:
                self._deliver(bytearray())
                return
            self._body = bytearray(body_len)
            self._body_view = memoryview(self._body)
            return
        if self._pos < len(self._body_view):
            return
        body = self._body
        self._body_view.release()
        self._body = self._body_view = None
        self._pos = 0
        self._deliver(body)  # type: ignore[arg-type]  # the whole body has arrived: not None here

    def _deliver(self, body: bytearray) -> None:
        _, code, count, rid = self._hdr
        self.frame(code, count, rid, body)

    # write-side flow control: the transport calls these around its high / low water marks
    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    async def drain(self) -> None:
        if self._paused:
            if self._drained is None:
                self._drained = asyncio.get_running_loop().create_future()
            await self._drained
