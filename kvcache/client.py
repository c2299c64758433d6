"""The pool client: batched, pipelined requests over a few pooled connections per server, keys
spread over the live servers by rendezvous hashing.

A pool URL names the servers:
- `kvcache://host:port[,host:port...]`: a fixed list;
- `redis://[:password@]host:port[/db]?pool=NAME` (or `rediss://`): the live members of pool NAME
  (kvcache/membership.py), re-read every `refresh_s`.

The client never raises for a server's trouble: a server that refuses, resets, times out or
sends a value whose crc32 does not match counts as a miss (get), as not stored (put), and is not
asked again for `backoff_s`; its keys are not moved to other servers until the membership drops
it, so all clients keep agreeing on where a key lives. Counters in `ClientStats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from brix.logs import kv
from kvcache import protocol as p
from kvcache.framing import DIRECT, FrameProtocol, Reader, alloc
from kvcache.rendezvous import group_by_owner, server_seed

log = logging.getLogger(__name__)
MAX_KEYS_PER_FRAME = 4096
MAX_BYTES_PER_FRAME = 64 << 20


class PoolURLError(ValueError):
    pass


@dataclass
class ClientStats:
    requests: int = 0
    failures: int = 0  # frames lost to a server's trouble (refused, reset, timeout, error reply)
    corrupt: int = 0  # values whose crc32 did not match: dropped as misses
    hits: int = 0
    misses: int = 0


Reply = tuple[int, int, Any]  # status, count, body (a bytearray; for an OK GET reply, its items)
Value = bytearray | memoryview  # a value as read: its own buffer, or a view of the reply's (one read per reply)
GetItems = list[tuple[Value, int] | None]  # (value, crc32 sent) or None (missing), per key


class _Connection(FrameProtocol):
    """One TCP connection with frames in flight; replies arrive in request order.

    An OK reply to a GET is read item by item, each value into a buffer of its own (returned to
    the caller as is, no copy); other replies whole."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        # (op, reply future, deadline) in request order
        self.pending: deque[tuple[int, asyncio.Future[Reply], float]] = deque()
        self.closed = False
        self.timeout = timeout
        self._watchdog: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop
        self._last_get = 0   # bytes of the last reply when it was a one-value GET reply of a large value

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._loop = asyncio.get_running_loop()
        self._watch()

    def _watch(self) -> None:
        """Every timeout/4: the oldest request past its deadline closes the connection. One timer per
        connection, not one per request (a timer per call costs ~10 % of a 64 KiB get's client CPU);
        a request so times out between `timeout` and 1.25 x `timeout` after it was sent."""
        if self.closed:
            return
        loop = self._loop
        if self.pending and self.pending[0][2] <= loop.time():
            # the reply may still come and would be taken for the next request's: drop the connection
            self.close(TimeoutError(f"no reply within {self.timeout} s"))
            return
        self._watchdog = loop.call_later(self.timeout / 4, self._watch)

    def _next_pending(self) -> asyncio.Future[Reply] | None:
        if not self.pending:
            self.close(p.ProtocolError("a reply arrived with no request in flight"))
            return None
        return self.pending.popleft()[1]

    def frame(self, code: int, count: int, request_id: int, body: bytearray) -> None:
        fut = self._next_pending()
        if fut is not None and not fut.done():
            fut.set_result((code, count, body))

    def frame_guess(self) -> int:
        """The size of the last one-value GET reply, when a GET is next in line (framing.py)."""
        return self._last_get if self.pending and self.pending[0][0] == p.GET else 0

    def whole_frame(self, code: int, count: int, request_id: int, body: memoryview) -> bool:
        """A one-key GET reply read whole: its value is a view of the reply's buffer (no copy)."""
        if count != 1 or self.reads_whole(code, count):
            return False
        try:
            items = p.parse_get_reply(body, 1)
        except p.ProtocolError:
            return False   # read the usual way, which closes the connection
        fut = self._next_pending()
        if fut is not None and not fut.done():
            fut.set_result((code, count, items))
        return True

    def reads_whole(self, code: int, count: int) -> bool:
        return code != p.OK or not self.pending or self.pending[0][0] != p.GET

    def read_body(self, body_len: int, code: int, count: int, request_id: int) -> Reader:
        if self.reads_whole(code, count):
            yield from super().read_body(body_len, code, count, request_id)
            return
        # a one-value reply large enough is likely followed by another: read the next one whole
        self._last_get = p.HEADER_SIZE + body_len if count == 1 and body_len >= DIRECT else 0
        left = body_len
        head = bytearray(p.GET_ITEM.size)
        found_view = memoryview(head)[:1]
        rest_view = memoryview(head)[1:]
        items: GetItems = []
        for _ in range(count):
            left -= 1
            if left < 0:
                raise p.ProtocolError("GET reply ends before its last item")
            yield found_view
            if head[0] == p.MISSING:
                items.append(None)
                continue
            left -= p.GET_ITEM.size - 1
            if left < 0:
                raise p.ProtocolError("GET reply ends inside an item header")
            yield rest_view
            _, crc, size = p.GET_ITEM.unpack(head)
            left -= size
            if left < 0:
                raise p.ProtocolError("GET reply item runs past the end of the body")
            value = alloc(size)
            if size:
                yield memoryview(value)
            items.append((value, crc))
        if left:
            raise p.ProtocolError(f"GET reply has {left} bytes after its {count} items")
        fut = self._next_pending()
        if fut is not None and not fut.done():
            fut.set_result((code, count, items))

    def bad_frame(self, error: p.ProtocolError, request_id: int) -> None:
        self.close(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close(exc or ConnectionResetError("the server closed the connection"))
        self.resume_writing()

    def close(self, error: BaseException | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self.transport is not None:
            self.transport.close()
        err = error or ConnectionResetError("the connection was closed")
        while self.pending:
            _, fut, _ = self.pending.popleft()
            if not fut.done():
                fut.set_exception(err)

    async def call(self, op: int, buffers: Sequence[bytes | memoryview]) -> Reply:
        if self.closed or self.transport is None:
            raise ConnectionResetError("the connection is closed")
        loop = self._loop   # not asyncio.get_running_loop(): that is a getpid() system call per request
        fut: asyncio.Future[Reply] = loop.create_future()
        self.pending.append((op, fut, loop.time() + self.timeout))
        self.transport.writelines(buffers)  # type: ignore[arg-type]
        if self._paused:
            await self.drain()
        return await fut


class _Server:
    """Pooled connections to one server (opened on demand, used round-robin)."""

    def __init__(self, addr: str, size: int, timeout: float) -> None:
        self.addr = addr
        host, _, port = addr.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.size = size
        self.timeout = timeout  # to connect, and for each reply
        self.conns: list[_Connection] = []
        self.next = 0
        self.down_until = 0.0
        self._connecting: asyncio.Lock = asyncio.Lock()

    def open_connection(self) -> _Connection | None:
        """The next connection when all are open (the common case, no await), else None."""
        conns = self.conns
        if len(conns) >= self.size:
            self.next = nxt = (self.next + 1) % len(conns)
            if not conns[nxt].closed:
                return conns[nxt]
        return None

    async def connection(self) -> _Connection:
        """An open connection, opened if fewer than `size` are (or a closed one was dropped)."""
        conn = self.open_connection()
        if conn is not None:
            return conn
        self.conns = [c for c in self.conns if not c.closed]
        if len(self.conns) >= self.size or (self.conns and self._connecting.locked()):
            self.next = (self.next + 1) % len(self.conns)
            return self.conns[self.next]
        async with self._connecting:
            self.conns = [c for c in self.conns if not c.closed]
            if len(self.conns) >= self.size:
                return self.conns[0]
            _, conn = await asyncio.wait_for(
                asyncio.get_running_loop().create_connection(lambda: _Connection(self.timeout), self.host, self.port),
                self.timeout)
            self.conns.append(conn)
            return conn

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.conns.clear()


class PoolClient:
    def __init__(self, url: str, connections: int = 2, timeout_s: float = 2.0, backoff_s: float = 1.0,
                 refresh_s: float = 1.0) -> None:
        self.url = url
        self.kind, self.static, self.redis_url, self.pool = parse_pool_url(url)
        self.connections = connections
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.refresh_s = refresh_s
        self.stats = ClientStats()
        self.servers: dict[str, _Server] = {}
        self.seeds: list[tuple[int, str]] = []
        self._rid = 0
        self._refresher: asyncio.Task[None] | None = None
        self._redis = None
        if self.kind == "static":
            self.set_members(self.static)

    # --- membership ----------------------------------------------------------------------
    def set_members(self, members: Sequence[str]) -> None:
        members = sorted(set(members))
        if members == [s for _, s in self.seeds]:
            return
        old = set(self.servers)
        for gone in old - set(members):
            self.servers.pop(gone).close()
        for addr in members:
            if addr not in self.servers:
                self.servers[addr] = _Server(addr, self.connections, self.timeout_s)
        self.seeds = [(server_seed(a), a) for a in members]
        kv(log, "pool members", url=_safe(self.url), members=",".join(members) or "-",
           joined=",".join(sorted(set(members) - old)) or None, left=",".join(sorted(old - set(members))) or None)

    @property
    def members(self) -> list[str]:
        return [s for _, s in self.seeds]

    async def start(self) -> PoolClient:
        if self.kind == "redis" and self._refresher is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self.redis_url, socket_timeout=self.timeout_s,
                                            socket_connect_timeout=self.timeout_s)
            await self.refresh()
            self._refresher = asyncio.create_task(self._refresh_loop())
        return self

    async def refresh(self) -> None:
        from kvcache.membership import alive

        try:
            self.set_members(await alive(self._redis, self.pool))
        except Exception as exc:  # noqa: BLE001 - keep the last known members
            kv(log, "membership read failed; keeping the last members", logging.WARNING,
               error=f"{type(exc).__name__}: {exc}")

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            await self.refresh()

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        for s in self.servers.values():
            s.close()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def __aenter__(self) -> PoolClient:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- requests ------------------------------------------------------------------------
    def _next_rid(self) -> int:
        self._rid = (self._rid + 1) & 0xFFFFFFFF
        return self._rid

    async def _call(self, addr: str, buffers: Sequence[bytes | memoryview], op: int) -> tuple[int, Any] | None:
        """(count, body) of an OK reply (for GET: its items), or None when the server could not answer."""
        server = self.servers.get(addr)
        self.stats.requests += 1
        if server is None or (server.down_until and server.down_until > time.monotonic()):
            self.stats.failures += 1
            return None
        try:
            conn = server.open_connection() or await server.connection()
            status, count, body = await conn.call(op, buffers)
        except (OSError, TimeoutError, ConnectionError, EOFError, p.ProtocolError) as exc:
            self.stats.failures += 1
            server.down_until = time.monotonic() + self.backoff_s
            kv(log, "pool server unavailable; its keys count as misses", logging.DEBUG, server=addr,
               op=p.OPS[op], error=f"{type(exc).__name__}: {exc}")
            return None
        if status != p.OK:
            self.stats.failures += 1
            kv(log, "pool server refused a request", logging.WARNING, server=addr, op=p.OPS[op],
               status=status, error=body.decode(errors="replace"))
            return None
        return count, body

    def _groups(self, ns: p.Namespace, hashes: Sequence[int]) -> dict[str, list[int]]:
        if len(self.seeds) == 1:
            return {self.seeds[0][1]: list(hashes)}
        salt = server_seed(f"{ns.model}/{ns.block_size}")
        groups = group_by_owner((h ^ salt for h in hashes), self.seeds)
        return {a: [k ^ salt for k in ks] for a, ks in groups.items()}

    @staticmethod
    async def _all(calls: list[Coroutine[Any, Any, tuple[int, Any] | None]]) -> list[tuple[int, Any] | None]:
        """Await the calls concurrently (one call, the common case, is awaited without a task)."""
        if len(calls) == 1:
            return [await calls[0]]
        return list(await asyncio.gather(*calls))

    def _owner(self, ns: p.Namespace, h: int) -> str:
        """The server that holds key h."""
        return next(iter(self._groups(ns, (h,))))

    def _key_calls(self, op: int, ns: p.Namespace, hashes: Sequence[int]) -> tuple[list[list[int]], list[Any]]:
        nsb = ns.encode()
        if len(hashes) == 1:  # one key: one frame to its owner
            h = hashes[0]
            return [[h]], [self._call(self._owner(ns, h), [p.keys_request(op, nsb, (h,), self._next_rid())], op)]
        chunks, calls = [], []
        for addr, keys in self._groups(ns, hashes).items():
            for i in range(0, len(keys), MAX_KEYS_PER_FRAME):
                chunk = keys[i:i + MAX_KEYS_PER_FRAME]
                chunks.append(chunk)
                calls.append(self._call(addr, [p.keys_request(op, nsb, chunk, self._next_rid())], op))
        return chunks, calls

    async def get(self, ns: p.Namespace, hashes: Sequence[int]) -> dict[int, Value]:
        """The values found, by hash (checksums verified end to end); anything else is a miss.

        Each value is the buffer the socket read it into, or a view of it (no copy)."""
        if not hashes or not self.seeds:
            self.stats.misses += len(hashes)
            return {}
        chunks, calls = self._key_calls(p.GET, ns, hashes)
        found: dict[int, Value] = {}
        crc32 = p.crc32
        for chunk, reply in zip(chunks, await self._all(calls), strict=True):
            if reply is None:
                continue
            items: GetItems = reply[1]
            for h, item in zip(chunk, items, strict=False):
                if item is None:
                    continue
                value, crc = item
                if crc32(value) != crc:
                    self.stats.corrupt += 1
                    continue
                found[h] = value
        self.stats.hits += len(found)
        self.stats.misses += len(hashes) - len(found)
        return found

    async def get_prefix(self, ns: p.Namespace, hashes: Sequence[int]) -> list[Value]:
        """The values of the leading run of `hashes` found in the pool (stops at the first miss)."""
        found = await self.get(ns, hashes)
        out = []
        for h in hashes:
            v = found.get(h)
            if v is None:
                break
            out.append(v)
        return out

    async def put(self, ns: p.Namespace, items: Sequence[tuple[int, bytes | bytearray | memoryview]]) -> int:
        """Store the values; returns how many were stored (others were lost to a server's trouble).

        The values are written to the socket as they are (no copy), each with its crc32."""
        if not items or not self.seeds:
            return 0
        nsb = ns.encode()
        crc32 = p.crc32
        if len(items) == 1:  # one value: one frame to its owner, awaited without building groups
            h, v = items[0]
            reply = await self._call(self._owner(ns, h), p.put_request(nsb, [(h, v, crc32(v))], self._next_rid()), p.PUT)
            return 0 if reply is None else reply[1].count(p.STORED)
        values = dict(items)
        calls = []
        for addr, keys in self._groups(ns, list(values)).items():
            frame: list[tuple[int, bytes | memoryview, int]] = []
            size = 0
            for h in keys:
                v = values[h]
                frame.append((h, v, crc32(v)))  # type: ignore[arg-type]  # any bytes-like value
                size += len(v)
                if len(frame) >= MAX_KEYS_PER_FRAME or size >= MAX_BYTES_PER_FRAME:
                    calls.append(self._call(addr, p.put_request(nsb, frame, self._next_rid()), p.PUT))
                    frame, size = [], 0
            if frame:
                calls.append(self._call(addr, p.put_request(nsb, frame, self._next_rid()), p.PUT))
        stored = 0
        for reply in await self._all(calls):
            if reply is not None:
                stored += reply[1].count(p.STORED)
        return stored

    async def exists(self, ns: p.Namespace, hashes: Sequence[int]) -> set[int]:
        return await self._flags(p.EXISTS, ns, hashes)

    async def delete(self, ns: p.Namespace, hashes: Sequence[int]) -> set[int]:
        """The hashes that were deleted (those held by an unreachable server are not)."""
        return await self._flags(p.DELETE, ns, hashes)

    async def _flags(self, op: int, ns: p.Namespace, hashes: Sequence[int]) -> set[int]:
        if not hashes or not self.seeds:
            return set()
        chunks, calls = self._key_calls(op, ns, hashes)
        out: set[int] = set()
        for chunk, reply in zip(chunks, await self._all(calls), strict=True):
            if reply is not None:
                out.update(h for h, flag in zip(chunk, reply[1], strict=False) if flag == 1)
        return out

    async def ping(self) -> dict[str, bool]:
        replies = await asyncio.gather(*(self._call(a, [p.ping_request(self._next_rid())], p.PING)
                                         for a in self.members))
        return {a: r is not None for a, r in zip(self.members, replies, strict=True)}


def parse_pool_url(url: str) -> tuple[str, list[str], str, str]:
    """(kind, static members, redis URL, pool name) of a pool URL; PoolURLError says what is wrong."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "kvcache":
        members = [m.strip() for m in parsed.netloc.split(",") if m.strip()]
        if not members:
            raise PoolURLError(f"pool URL {url!r} lists no server; write kvcache://host:port[,host:port...]")
        for m in members:
            host, _, port = m.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise PoolURLError(f"pool URL {url!r}: {m!r} is not host:port")
        return "static", members, "", ""
    if parsed.scheme in ("redis", "rediss"):
        query = urllib.parse.parse_qs(parsed.query)
        pool = (query.pop("pool", ["default"]) or ["default"])[0]
        rest = urllib.parse.urlencode({k: v[0] for k, v in query.items()})
        redis_url = urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path, rest, ""))
        if not parsed.hostname:
            raise PoolURLError(f"pool URL {url!r} has no Redis host; write redis://host:port/0?pool=NAME")
        return "redis", [], redis_url, pool
    raise PoolURLError(f"pool URL {url!r}: use kvcache://host:port[,host:port...] (fixed servers) or "
                       "redis://host:port/0?pool=NAME (the pool's members in Redis)")


def _safe(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url
