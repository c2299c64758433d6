"""The pool's wire protocol: length-prefixed binary frames over TCP (pure encoding and decoding).

Why not JSON or gRPC: a value is an opaque KV block of 64 KiB to several MiB that must cross the
wire as raw bytes, and the per-op cost on a Python server is what limits ops/s. A fixed 12-byte
header read with one `readexactly`, a body read with one more, values sliced out of it without
parsing, and replies written as a list of buffers (header, value, header, value...) keep the
server's work per block to a few struct calls and a dict lookup. Many keys ride in one frame
(batched get and put), and a connection carries many frames in flight (pipelining): replies come
back in request order. kvcache/README.md documents every byte.

All integers are little-endian.

    request   = header(op) body
    response  = header(status) body
    header    = u32 body_len | u8 version (=1) | u8 op-or-status | u16 count | u32 request_id
    namespace = u16 model_len | model (UTF-8) | u32 block_size
    GET, EXISTS, DELETE body = namespace | count x u64 hash
    PUT body  = namespace | count x (u64 hash | u32 crc32 | u32 len | len bytes)
    PING body = empty (count 0)
    GET reply body    = count x (u8 found | if found: u32 crc32 | u32 len | len bytes)
    other reply bodies = count x u8 result
    error reply       = status != 0, body = UTF-8 message, count 0
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

VERSION = 1
HEADER = struct.Struct("<IBBHI")
HEADER_SIZE = HEADER.size  # 12
NS_HEAD = struct.Struct("<H")
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
PUT_ITEM = struct.Struct("<QII")  # hash, crc32, length
GET_ITEM = struct.Struct("<BII")  # found, crc32, length
MAX_BODY = 1 << 30  # 1 GiB per frame
MAX_COUNT = 0xFFFF

# ops
PING = 0
GET = 1
PUT = 2
EXISTS = 3
DELETE = 4
OPS = {PING: "ping", GET: "get", PUT: "put", EXISTS: "exists", DELETE: "delete"}

# response statuses
OK = 0
BAD_REQUEST = 1
SERVER_ERROR = 2

# per-item results
FOUND = 1
MISSING = 0
STORED = 0
BAD_CHECKSUM = 1
TOO_LARGE = 2


class ProtocolError(Exception):
    """A frame that does not follow the protocol (the connection is closed after replying)."""


try:  # ISA-L's crc32: the same IEEE polynomial as zlib's, with carry-less multiply (~20 GB/s vs ~0.6)
    from isal.isal_zlib import crc32 as _crc32
    CRC32_IMPL = "isal"
except ImportError:  # pragma: no cover - the kvcache extra installs isal
    _crc32 = zlib.crc32
    CRC32_IMPL = "zlib"


# zlib.crc32 of a bytes-like value (computed by ISA-L when installed: same result, ~30x faster);
# the function itself, not a wrapper: it runs twice per value per op
crc32: Callable[[bytes | bytearray | memoryview], int] = _crc32


@dataclass(frozen=True, slots=True)
class Namespace:
    """Blocks of one model at one block size; the unit keys are scoped by."""

    model: str
    block_size: int

    def encode(self) -> bytes:
        return _encode_namespace(self.model, self.block_size)


@functools.lru_cache(maxsize=1024)  # a client sends the same few namespaces with every request
def _encode_namespace(model: str, block_size: int) -> bytes:
    raw = model.encode()
    if len(raw) > 0xFFFF:
        raise ValueError(f"model name is {len(raw)} bytes; at most 65535")
    return NS_HEAD.pack(len(raw)) + raw + U32.pack(block_size)


def header(body_len: int, code: int, count: int, request_id: int) -> bytes:
    return HEADER.pack(body_len, VERSION, code, count, request_id & 0xFFFFFFFF)


def body_length(header_bytes: bytes) -> int:
    """The body_len field of an encoded header."""
    return U32.unpack_from(header_bytes)[0]


def parse_header(raw: bytes | bytearray) -> tuple[int, int, int, int]:
    """(body_len, op-or-status, count, request_id) of a 12-byte header."""
    body_len, version, code, count, rid = HEADER.unpack(raw)
    if version != VERSION:
        raise ProtocolError(f"protocol version {version} is not supported (this side speaks {VERSION})")
    if body_len > MAX_BODY:
        raise ProtocolError(f"frame body of {body_len} bytes is over the {MAX_BODY}-byte limit")
    return body_len, code, count, rid


# --- requests (client side) --------------------------------------------------------------
def keys_request(op: int, ns: bytes, hashes: Sequence[int], request_id: int) -> bytes:
    if len(hashes) > MAX_COUNT:
        raise ValueError(f"at most {MAX_COUNT} keys per frame, got {len(hashes)}")
    body = ns + (U64.pack(hashes[0]) if len(hashes) == 1 else struct.pack(f"<{len(hashes)}Q", *hashes))
    return header(len(body), op, len(hashes), request_id) + body


def put_request(ns: bytes, items: Sequence[tuple[int, bytes | memoryview, int]], request_id: int) -> list[bytes]:
    """Buffers of a PUT frame (write them with writelines: values are not copied)."""
    if len(items) > MAX_COUNT:
        raise ValueError(f"at most {MAX_COUNT} values per frame, got {len(items)}")
    parts: list[bytes] = [b"", ns]
    size = len(ns)
    pack = PUT_ITEM.pack
    for h, value, crc in items:
        parts.append(pack(h, crc, len(value)))
        parts.append(value)  # type: ignore[arg-type]  # bytes-like values join like bytes
        size += PUT_ITEM.size + len(value)
    parts[0] = header(size, PUT, len(items), request_id)
    return parts


def ping_request(request_id: int) -> bytes:
    return header(0, PING, 0, request_id)


# --- request bodies (server side) --------------------------------------------------------
def parse_namespace(body: bytes | memoryview) -> tuple[bytes, int]:
    """The namespace's raw bytes (model and block size, used as the key prefix) and where keys start."""
    if len(body) < 6:
        raise ProtocolError("the body is too short to hold a namespace (u16 length, model, u32 block size)")
    (n,) = NS_HEAD.unpack_from(body, 0)
    end = 2 + n + 4
    if len(body) < end:
        raise ProtocolError(f"the namespace says its model name is {n} bytes but the body is {len(body)} bytes")
    return bytes(body[:end]), end


def parse_hashes(body: bytes | memoryview, offset: int, count: int) -> tuple[int, ...]:
    if len(body) - offset != count * 8:
        raise ProtocolError(f"expected {count} u64 hashes ({count * 8} bytes) after the namespace, "
                            f"got {len(body) - offset} bytes")
    return struct.unpack_from(f"<{count}Q", body, offset)


def iter_put_items(body: memoryview, offset: int, count: int) -> Iterable[tuple[int, int, memoryview]]:
    """(hash, crc32, value view) of each PUT item; raises ProtocolError on a short or long body."""
    unpack = PUT_ITEM.unpack_from
    end = len(body)
    for _ in range(count):
        if offset + PUT_ITEM.size > end:
            raise ProtocolError("PUT body ends inside an item header")
        h, crc, n = unpack(body, offset)
        offset += PUT_ITEM.size
        if offset + n > end:
            raise ProtocolError(f"PUT item says {n} value bytes but the body ends first")
        yield h, crc, body[offset:offset + n]
        offset += n
    if offset != end:
        raise ProtocolError(f"PUT body has {end - offset} bytes after its {count} items")


# --- replies -----------------------------------------------------------------------------
def results_reply(results: bytes, request_id: int) -> bytes:
    return header(len(results), OK, len(results), request_id) + results


def error_reply(status: int, message: str, request_id: int) -> bytes:
    raw = message.encode()[:65536]
    return header(len(raw), status, 0, request_id) + raw


GET_MISS = GET_ITEM.pack(MISSING, 0, 0)[:1]


def get_reply(entries: Sequence[tuple[bytes, int] | None], request_id: int) -> list[bytes]:
    """Buffers of a GET reply (values are written as they are stored, not copied)."""
    parts: list[bytes] = [b""]
    size = 0
    pack = GET_ITEM.pack
    for entry in entries:
        if entry is None:
            parts.append(GET_MISS)
            size += 1
        else:
            value, crc = entry
            parts.append(pack(FOUND, crc, len(value)))
            parts.append(value)
            size += GET_ITEM.size + len(value)
    parts[0] = header(size, OK, len(entries), request_id)
    return parts


def parse_get_reply(body: bytes | memoryview, count: int) -> list[tuple[memoryview, int] | None]:
    """(value, crc32 sent) or None for each key of a GET reply (values are views of `body`)."""
    view = memoryview(body)
    out: list[tuple[memoryview, int] | None] = []
    offset = 0
    unpack = GET_ITEM.unpack_from
    end = len(body)
    for _ in range(count):
        if offset >= end:
            raise ProtocolError("GET reply ends before its last item")
        if body[offset] == MISSING:
            out.append(None)
            offset += 1
            continue
        _, crc, n = unpack(body, offset)
        offset += GET_ITEM.size
        if offset + n > end:
            raise ProtocolError("GET reply item runs past the end of the body")
        out.append((view[offset:offset + n], crc))
        offset += n
    if offset != end:
        raise ProtocolError(f"GET reply has {end - offset} bytes after its {count} items")
    return out
