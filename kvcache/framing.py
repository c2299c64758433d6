"""Reading frames straight into their own buffers (asyncio.BufferedProtocol), for server and client.

A StreamReader copies every received byte into a growing buffer, then again into the bytes
`readexactly` returns. Here a frame is read by a generator (`read_body`) that yields the buffers
it wants filled, in order: the whole body for most frames, but for the frames that carry values
(a PUT request on the server, a GET reply on the client) each value gets a buffer of its own, of
its exact size, so the kernel's copy into it is the only one, a stored value pins nothing else,
and a 32 MiB batch is sixteen 2 MiB allocations instead of one that the allocator must map and
unmap each time. Buffers for values are allocated uninitialized (`alloc`): `bytearray(n)` would
write n zero bytes first that the socket read then overwrites.

Small reads (headers, short bodies, the few bytes before each value) go through a 4 KiB scratch
buffer, so one recv takes in many small frames; what a recv brings past the current field is fed
into the next buffers in order (at most 4 KiB is copied so). A field of at least DIRECT bytes is
read by the kernel straight into its own buffer.

Whole frames: a subclass that expects a large frame next (`frame_guess`, e.g. a server that just
got a one-value PUT of 64 KiB) gets it read in one recv into a buffer of that size plus SLACK, and
handles it there once it is complete (`whole_frame`: the value is a view into that buffer, no
copy). The usual path takes three reads per such frame (the scratch, the value, and one that finds
the socket empty, because the value's buffer was filled exactly). A frame the subclass does not
take, or one larger than the buffer, is fed through the usual path from that buffer.

Small frames (a put's reply, a get request) that arrive whole skip the frame reader: at a frame
boundary, a complete frame in the read buffer goes to `frame` as a copy of its body, unless the
subclass reads that kind item by item (`reads_whole`). The generator's steps for header and body
cost about 2 µs per frame, a fifth of the client's Python time per single-key put.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator

from kvcache import protocol as p

SCRATCH = 4096
DIRECT = 2048  # read fields this large straight into their buffer, not through the scratch
SLACK = 64     # a whole-frame read's room past the expected frame (a short read needs no second one)

try:  # an uninitialized bytearray (CPython's C API; every byte is written by recv before use)
    import ctypes

    _new_bytearray = ctypes.pythonapi.PyByteArray_FromStringAndSize
    _new_bytearray.restype = ctypes.py_object
    _new_bytearray.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)

    def alloc(n: int) -> bytearray:
        """A bytearray of n bytes whose content is undefined (to be filled by a read)."""
        return _new_bytearray(None, n) if n >= 65536 else bytearray(n)
except (ImportError, AttributeError):  # pragma: no cover - not CPython
    def alloc(n: int) -> bytearray:
        return bytearray(n)

# what a body reader yields: buffers to fill completely, one after the other
Reader = Generator[memoryview, None, None]


class FrameProtocol(asyncio.BufferedProtocol):
    """Calls `frame(code, count, request_id, body)` once per complete frame (`body` a bytearray),
    unless a subclass reads some frames differently by overriding `read_body`."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._scratch = bytearray(SCRATCH)
        self._scratch_view = memoryview(self._scratch)
        self._reader: Reader = self._frames()
        self._target: memoryview = next(self._reader)
        self._tpos = 0
        self._direct = False
        self._dead = False
        self._paused = False
        self._whole: bytearray | None = None   # the buffer of a whole-frame read in progress
        self._whole_len = 0                    # ...and how much of it is filled
        self._drained: asyncio.Future[None] | None = None

    # --- subclass hooks ------------------------------------------------------------------
    def frame(self, code: int, count: int, request_id: int, body: bytearray) -> None:
        raise NotImplementedError

    def bad_frame(self, error: p.ProtocolError, request_id: int) -> None:
        assert self.transport is not None
        self.transport.close()

    def frame_guess(self) -> int:
        """Bytes of the frame expected next when it is large enough to be read whole, else 0."""
        return 0

    def whole_frame(self, code: int, count: int, request_id: int, body: memoryview) -> bool:
        """Handle a frame read whole into a buffer of its own (`body` a view of it, which the subclass
        may keep: the buffer is not reused) and say True, or say False to have it read the usual way
        (which also reports a malformed frame)."""
        return False

    def reads_whole(self, code: int, count: int) -> bool:
        """Whether a frame with this header is read by the default `read_body` (its body whole, then
        `frame`). A subclass that reads some frames differently says False for those; the others,
        when they arrive complete in one read, are handed to `frame` straight from the read buffer."""
        return True

    def read_body(self, body_len: int, code: int, count: int, request_id: int) -> Reader:
        """Read one frame's body (yield buffers to fill), then deliver it; raise ProtocolError
        for a malformed one. The default reads the body whole and calls `frame`."""
        body = alloc(body_len)
        if body_len:
            yield memoryview(body)
        self.frame(code, count, request_id, body)

    # --- the frame loop ------------------------------------------------------------------
    def _frames(self) -> Reader:
        head = bytearray(p.HEADER_SIZE)
        head_view = self._head_view = memoryview(head)
        parse = p.parse_header
        while True:
            yield head_view
            rid = int.from_bytes(head[8:12], "little")
            try:
                body_len, code, count, rid = parse(head)
                yield from self.read_body(body_len, code, count, rid)
            except p.ProtocolError as exc:
                self._dead = True  # the rest of the stream cannot be framed: drop it
                self.bad_frame(exc, rid)
                while True:
                    yield self._scratch_view

    def _advance(self) -> None:
        self._target = next(self._reader)
        self._tpos = 0

    # --- asyncio -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream protocol gets a stream transport

    def get_buffer(self, sizehint: int) -> memoryview:
        target = self._target
        if self._dead:
            return self._scratch_view
        if self._tpos == 0 and target is self._head_view:   # between frames
            if self._whole is not None:                      # a whole frame that stopped short
                return memoryview(self._whole)[self._whole_len:]
            guess = self.frame_guess()
            if guess:
                self._whole, self._whole_len = alloc(guess + SLACK), 0
                return memoryview(self._whole)
        if len(target) - self._tpos >= DIRECT:
            self._direct = True
            return target[self._tpos:]
        self._direct = False
        return self._scratch_view

    def buffer_updated(self, nbytes: int) -> None:
        if self._dead:
            return
        whole = self._whole
        if whole is not None:
            nbytes += self._whole_len
            used = self._take_whole(whole, nbytes)
            if used < 0:   # not all here yet (a 64 KiB value can come in two segments): read on into it
                self._whole_len = nbytes
                return
            self._whole = None
            if used < nbytes:
                self._feed(memoryview(whole)[used:nbytes])
            return
        if self._direct:
            self._tpos += nbytes
            if self._tpos == len(self._target):
                self._advance()
            return
        self._feed(self._scratch_view[:nbytes])

    def _take_whole(self, buf: bytearray, nbytes: int) -> int:
        """The length of the frame at the start of a whole-frame buffer once `whole_frame` took it;
        -1 while a frame that fits the buffer has not all arrived; 0 to read the bytes the usual way."""
        if nbytes < p.HEADER_SIZE:
            return -1
        body_len, version, code, count, rid = p.HEADER.unpack_from(buf, 0)
        end = p.HEADER_SIZE + body_len
        if version != p.VERSION or end > len(buf):
            return 0
        if end > nbytes:
            return -1
        return end if self.whole_frame(code, count, rid, memoryview(buf)[p.HEADER_SIZE:end]) else 0

    def _feed(self, data: memoryview) -> None:
        """Copy received bytes into the buffers the frame reader wants, in order; a whole small frame
        at a frame boundary goes to `frame` directly (a reply to a put, a get request: most frames)."""
        off, nbytes = 0, len(data)
        head_view, unpack = self._head_view, p.HEADER.unpack_from
        while off < nbytes and not self._dead:
            target, tpos = self._target, self._tpos
            if tpos == 0 and target is head_view and nbytes - off >= p.HEADER_SIZE:
                body_len, version, code, count, rid = unpack(data, off)
                end = off + p.HEADER_SIZE + body_len
                if end <= nbytes and version == p.VERSION and self.reads_whole(code, count):
                    self.frame(code, count, rid, bytearray(data[off + p.HEADER_SIZE:end]))
                    off = end
                    continue
            k = min(len(target) - tpos, nbytes - off)
            target[tpos:tpos + k] = data[off:off + k]
            off += k
            self._tpos = tpos + k
            if self._tpos == len(target):
                self._advance()

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
