"""`brix kvcache serve`: one pool server. TCP for blocks (kvcache/protocol.py), HTTP for /metrics
and health, an optional Redis heartbeat for membership.

A connection is a FrameProtocol (kvcache/framing.py): each PUT value lands in a buffer of its own
that becomes the stored value, or after a one-value PUT of a large value, the buffer the next
such PUT is read into whole (framing.py; ~110 bytes of header and slack more per value, two reads
fewer per PUT). The checksum the PUT carried, verified once on arrival, is stored with the value
and sent back with every GET. Other frames' bodies land in one buffer each; every frame is
answered from the in-memory store at once, and the reply is written as a list of buffers (the
stored values themselves, not copies), so a pipelining client keeps many frames in flight. When
the socket's send buffer fills, the connection stops reading until it drains. The store is one
dict-backed S3-FIFO or LRU (kvcache/eviction.py) shared by every connection; the event loop runs
one callback at a time, so no lock is needed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
import time
from dataclasses import dataclass

from aiohttp import web

from brix.commands import UsageError
from brix.logs import kv
from kvcache import protocol as p
from kvcache.eviction import make_store
from kvcache.framing import DIRECT, FrameProtocol, Reader, alloc
from kvcache.membership import Registrar

log = logging.getLogger(__name__)
WRITE_HIGH = 8 << 20


class ServerConnection(FrameProtocol):
    def __init__(self, server: KVServer) -> None:
        super().__init__()
        self.server = server
        self._last_put = 0   # bytes of the last frame when it was a one-value PUT of a large value

    def frame_guess(self) -> int:
        return self._last_put

    def whole_frame(self, code: int, count: int, request_id: int, body: memoryview) -> bool:
        """A one-value PUT read whole: its value is stored as a view of the frame's buffer (no copy)."""
        if code != p.PUT or count != 1:
            return False
        try:
            ns, offset = p.parse_namespace(body)
            items = list(p.iter_put_items(body, offset, 1))
        except p.ProtocolError:
            return False   # read the usual way, which says what is wrong
        assert self.transport is not None
        self.transport.write(self.server.put(ns, items, request_id, len(body)))
        return True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        transport.set_write_buffer_limits(high=WRITE_HIGH)  # type: ignore[attr-defined]
        self.server.stats.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.stats.connections -= 1

    def frame(self, code: int, count: int, request_id: int, body: bytearray) -> None:
        try:
            reply = self.server.dispatch(code, count, request_id, body)
        except p.ProtocolError as exc:
            self.bad_frame(exc, request_id)
            return
        assert self.transport is not None
        if isinstance(reply, list):
            self.transport.writelines(reply)
        else:
            self.transport.write(reply)

    def reads_whole(self, code: int, count: int) -> bool:
        """Every frame but a PUT with values (read item by item: read_body)."""
        if code == p.PUT and count:
            return False
        self._last_put = 0
        return True

    def read_body(self, body_len: int, code: int, count: int, request_id: int) -> Reader:
        """PUT: the namespace, then each item's 16-byte head and its value into a buffer of its own."""
        if self.reads_whole(code, count):
            yield from super().read_body(body_len, code, count, request_id)
            return
        left = body_len - 6
        if left < 0:
            raise p.ProtocolError("the body is too short to hold a namespace (u16 length, model, u32 block size)")
        ns_head = bytearray(2)
        yield memoryview(ns_head)
        n = int.from_bytes(ns_head, "little")
        left -= n
        if left < 0:
            raise p.ProtocolError(f"the namespace says its model name is {n} bytes but the body is {body_len} bytes")
        ns_rest = bytearray(n + 4)
        yield memoryview(ns_rest)
        item = bytearray(p.PUT_ITEM.size)
        item_view = memoryview(item)
        unpack = p.PUT_ITEM.unpack
        items: list[tuple[int, int, bytearray]] = []
        for _ in range(count):
            left -= p.PUT_ITEM.size
            if left < 0:
                raise p.ProtocolError("PUT body ends inside an item header")
            yield item_view
            h, crc, size = unpack(item)
            left -= size
            if left < 0:
                raise p.ProtocolError(f"PUT item says {size} value bytes but the body ends first")
            value = alloc(size)
            if size:
                yield memoryview(value)
            items.append((h, crc, value))
        if left:
            raise p.ProtocolError(f"PUT body has {left} bytes after its {count} items")
        # the next frame is likely another such PUT: read it whole (framing.py)
        self._last_put = p.HEADER_SIZE + body_len if count == 1 and body_len >= DIRECT else 0
        reply = self.server.put(bytes(ns_head + ns_rest), items, request_id, body_len)
        assert self.transport is not None
        self.transport.write(reply)

    def bad_frame(self, error: p.ProtocolError, request_id: int) -> None:
        self.server.stats.protocol_errors += 1
        assert self.transport is not None
        self.transport.write(p.error_reply(p.BAD_REQUEST, str(error), request_id))
        self.transport.close()  # after the buffered reply is sent

    def pause_writing(self) -> None:  # a client that does not read its replies: stop reading its requests
        super().pause_writing()
        assert self.transport is not None
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        assert self.transport is not None
        self.transport.resume_reading()


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 9600
    """TCP port of the block protocol."""
    http_port: int = 9601
    """Port of /metrics, /healthz and /readyz."""
    capacity: int = 4 << 30
    """Bytes of values the server holds at most."""
    eviction: str = "s3fifo"
    """s3fifo or lru."""
    small_ratio: float = 0.1
    """S3-FIFO's small-FIFO share of the capacity."""
    redis_url: str = ""
    """Membership store; empty = no membership (clients list this server explicitly)."""
    pool: str = "default"
    """Pool name in the membership store (the KVCache's name in Kubernetes)."""
    advertise: str = ""
    """host:port clients reach this server at; empty = host:port (or the machine's name for 0.0.0.0)."""
    heartbeat_s: float = 1.0
    ttl_s: float = 3.0
    """A server whose heartbeat is this old has left the pool."""


class Stats:
    def __init__(self) -> None:
        self.ops = dict.fromkeys(p.OPS.values(), 0)  # frames per op
        self.keys = dict.fromkeys(p.OPS.values(), 0)  # keys per op
        self.hits = 0
        self.misses = 0
        self.bad_checksums = 0
        self.rejected_too_large = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.connections = 0
        self.protocol_errors = 0
        self.window: collections.deque[tuple[float, int]] = collections.deque(maxlen=11)

    def keys_total(self) -> int:
        return sum(self.keys.values())

    def ops_per_second(self) -> float:
        """Keys handled per second over the last ~10 s (sampled once a second)."""
        if len(self.window) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.window[0], self.window[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class KVServer:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.store = make_store(settings.eviction, settings.capacity, settings.small_ratio)
        self.stats = Stats()
        self.registrar: Registrar | None = None

    # --- the block protocol (kvcache/framing.py reads frames; dispatch answers them) -------
    def dispatch(self, op: int, count: int, rid: int, body: bytearray) -> bytes | list[bytes]:
        stats = self.stats
        name = p.OPS.get(op)
        if name is None:
            raise p.ProtocolError(f"unknown op {op}; ops are 0 ping, 1 get, 2 put, 3 exists, 4 delete")
        stats.ops[name] += 1
        stats.keys[name] += count
        stats.bytes_in += p.HEADER_SIZE + len(body)
        if op == p.PING:
            return p.results_reply(b"", rid)
        ns, offset = p.parse_namespace(body)
        store = self.store
        if op == p.GET:
            entries = [store.get((ns, h)) for h in p.parse_hashes(body, offset, count)]
            found = sum(1 for e in entries if e is not None)
            stats.hits += found
            stats.misses += count - found
            reply = p.get_reply(entries, rid)
            stats.bytes_out += p.HEADER_SIZE + p.body_length(reply[0])
            return reply
        if op == p.PUT:  # only an empty PUT comes here: ServerConnection reads the others item by item
            items = [(h, crc, bytearray(v)) for h, crc, v in p.iter_put_items(memoryview(body), offset, count)]
            return self.put(ns, items, rid, None)
        hashes = p.parse_hashes(body, offset, count)
        if op == p.EXISTS:
            return p.results_reply(bytes(1 if (ns, h) in store else 0 for h in hashes), rid)
        return p.results_reply(bytes(1 if store.delete((ns, h)) else 0 for h in hashes), rid)

    def put(self, ns: bytes, items: list[tuple[int, int, bytearray | memoryview]], rid: int,
            body_len: int | None) -> bytes:
        """Store each (hash, crc32, value) whose crc32 matches; the reply's per-item results."""
        stats = self.stats
        if body_len is not None:  # read item by item, not through dispatch
            stats.ops["put"] += 1
            stats.keys["put"] += len(items)
            stats.bytes_in += p.HEADER_SIZE + body_len
        store = self.store
        crc32 = p.crc32
        results = bytearray(len(items))
        for i, (h, crc, value) in enumerate(items):
            if crc32(value) != crc:
                stats.bad_checksums += 1
                results[i] = p.BAD_CHECKSUM
            elif not store.put((ns, h), value, crc):  # type: ignore[arg-type]  # a bytearray is stored as is
                stats.rejected_too_large += 1
                results[i] = p.TOO_LARGE
        return p.results_reply(bytes(results), rid)

    # --- HTTP: health and metrics --------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, request: web.Request) -> web.Response:
        if self.registrar is not None and not self.registrar.registered:
            return web.Response(status=503, text="not yet registered in the membership store")
        return web.Response(text="ok")

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.render_metrics(), content_type="text/plain", charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    def render_metrics(self) -> str:
        s, store = self.stats, self.store
        pool = self.settings.pool
        lines = [
            "# HELP brix_kvcache_ops_total Frames handled, by op.", "# TYPE brix_kvcache_ops_total counter",
            *(f'brix_kvcache_ops_total{{pool="{pool}",op="{op}"}} {n}' for op, n in s.ops.items()),
            "# HELP brix_kvcache_keys_total Keys handled (a batched frame counts each key), by op.",
            "# TYPE brix_kvcache_keys_total counter",
            *(f'brix_kvcache_keys_total{{pool="{pool}",op="{op}"}} {n}' for op, n in s.keys.items()),
            "# HELP brix_kvcache_hits_total GET keys found.", "# TYPE brix_kvcache_hits_total counter",
            f'brix_kvcache_hits_total{{pool="{pool}"}} {s.hits}',
            "# HELP brix_kvcache_misses_total GET keys not found.", "# TYPE brix_kvcache_misses_total counter",
            f'brix_kvcache_misses_total{{pool="{pool}"}} {s.misses}',
            "# HELP brix_kvcache_evictions_total Values evicted to stay within the capacity.",
            "# TYPE brix_kvcache_evictions_total counter",
            f'brix_kvcache_evictions_total{{pool="{pool}"}} {store.evictions}',
            "# HELP brix_kvcache_checksum_rejects_total PUT values whose crc32 did not match (not stored).",
            "# TYPE brix_kvcache_checksum_rejects_total counter",
            f'brix_kvcache_checksum_rejects_total{{pool="{pool}"}} {s.bad_checksums}',
            "# HELP brix_kvcache_protocol_errors_total Connections closed for a malformed frame.",
            "# TYPE brix_kvcache_protocol_errors_total counter",
            f'brix_kvcache_protocol_errors_total{{pool="{pool}"}} {s.protocol_errors}',
            "# HELP brix_kvcache_received_bytes_total Frame bytes received.",
            "# TYPE brix_kvcache_received_bytes_total counter",
            f'brix_kvcache_received_bytes_total{{pool="{pool}"}} {s.bytes_in}',
            "# HELP brix_kvcache_sent_bytes_total GET reply bytes sent.",
            "# TYPE brix_kvcache_sent_bytes_total counter",
            f'brix_kvcache_sent_bytes_total{{pool="{pool}"}} {s.bytes_out}',
            "# HELP brix_kvcache_used_bytes Value bytes held.", "# TYPE brix_kvcache_used_bytes gauge",
            f'brix_kvcache_used_bytes{{pool="{pool}"}} {store.used_bytes}',
            "# HELP brix_kvcache_capacity_bytes Value bytes the server holds at most.",
            "# TYPE brix_kvcache_capacity_bytes gauge",
            f'brix_kvcache_capacity_bytes{{pool="{pool}",eviction="{self.settings.eviction}"}} {store.capacity}',
            "# HELP brix_kvcache_blocks Values held.", "# TYPE brix_kvcache_blocks gauge",
            f'brix_kvcache_blocks{{pool="{pool}"}} {len(store)}',
            "# HELP brix_kvcache_keys_per_second Keys handled per second over the last 10 s.",
            "# TYPE brix_kvcache_keys_per_second gauge",
            f'brix_kvcache_keys_per_second{{pool="{pool}"}} {s.ops_per_second():.1f}',
            "# HELP brix_kvcache_connections Open client connections.", "# TYPE brix_kvcache_connections gauge",
            f'brix_kvcache_connections{{pool="{pool}"}} {s.connections}',
        ]
        return "\n".join(lines) + "\n"

    def http_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        return app

    async def sample_rates(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.stats.window.append((time.monotonic(), self.stats.keys_total()))
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass


def advertised(settings: ServeSettings) -> str:
    if settings.advertise:
        return settings.advertise if ":" in settings.advertise else f"{settings.advertise}:{settings.port}"
    if settings.host in ("0.0.0.0", "::", ""):
        import socket
        return f"{socket.gethostname()}:{settings.port}"
    return f"{settings.host}:{settings.port}"


async def serve(settings: ServeSettings, stop: asyncio.Event | None = None) -> None:
    server = KVServer(settings)
    stop = stop or asyncio.Event()
    try:
        tcp = await asyncio.get_running_loop().create_server(lambda: ServerConnection(server), settings.host,
                                                             settings.port, backlog=1024)
    except OSError as exc:
        raise UsageError(f"cannot listen on {settings.host}:{settings.port} ({exc.strerror}); "
                         "pick a free --port or another --host") from None
    runner = web.AppRunner(server.http_app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.http_port).start()
    except OSError as exc:
        tcp.close()
        await runner.cleanup()
        raise UsageError(f"cannot listen on {settings.host}:{settings.http_port} ({exc.strerror}); "
                         "pick a free --http-port") from None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(server.sample_rates(stop), name="rates")]
    addr = advertised(settings)
    if settings.redis_url:
        server.registrar = Registrar(settings.redis_url, settings.pool, addr, settings.heartbeat_s, settings.ttl_s)
        tasks.append(asyncio.create_task(server.registrar.run(stop), name="heartbeat"))
    kv(log, "kvcache serving", host=settings.host, port=settings.port, http_port=settings.http_port,
       capacity=settings.capacity, eviction=settings.eviction, pool=settings.pool, advertise=addr,
       membership="redis" if settings.redis_url else "none")
    await stop.wait()
    kv(log, "kvcache stopping")
    await asyncio.gather(*tasks, return_exceptions=True)
    tcp.close()
    await runner.cleanup()


def tune_malloc() -> bool:
    """Keep freed value memory in the process for the next values (glibc only; False elsewhere).

    glibc maps each allocation over 128 KiB (the threshold creeps up to 32 MiB) with mmap and
    gives it back on free, so every new 2 MiB value costs 512 page faults and every evicted one
    an munmap; with the threshold at its 32 MiB maximum and a 1 GiB trim threshold, values come
    from the heap and an evicted value's pages hold the next one (as Redis's jemalloc keeps its
    pages). The server's memory stays within its --capacity plus what a burst of frames needs."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))


def run(settings: ServeSettings) -> int:
    tuned = tune_malloc()
    kv(log, "malloc tuned for large values" if tuned else "malloc not tuned (not glibc)", logging.DEBUG)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))
    return 0
