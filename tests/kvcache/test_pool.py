"""The pool through its protocol: `brix kvcache serve` processes and kvcache.client.PoolClient (or raw
sockets speaking kvcache/README.md's frames). Put, get, exists, delete, batches; many clients at
once; bad checksums and malformed frames; a server killed mid-run; servers joining and leaving
through the Redis membership (real redis-server)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import time
import urllib.request
import zlib

from brix import procs
from kvcache import protocol as p
from kvcache.client import PoolClient
from kvcache.protocol import Namespace

NS = Namespace("llama-2-7b", 16)


PROCS: dict[str, procs.ManagedProcess] = {}


def start_server(brix_process, *extra: str) -> str:  # type: ignore[no-untyped-def]
    port, http = procs.free_port(), procs.free_port()
    PROCS[f"127.0.0.1:{port}"] = brix_process(
        f"kvcache-{port}", "kvcache", "serve", "--port", str(port), "--http-port", str(http), *extra,
        ready_url=f"http://127.0.0.1:{http}/readyz")
    return f"127.0.0.1:{port}"


def kill(addr: str) -> None:
    """SIGKILL: no goodbye to the membership, connections reset."""
    os.kill(PROCS[addr].pid, signal.SIGKILL)
    PROCS[addr].popen.wait(5)


def metric(http_url: str, name: str) -> float:
    with urllib.request.urlopen(http_url + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in {http_url}/metrics")


def value_of(h: int, size: int, version: int = 0) -> bytes:
    """A value that names its key and version, so a read can tell whose value it got."""
    head = struct.pack("<QQ", h, version)
    return head + (head * (size // 16 + 1))[:max(0, size - 16)]


async def test_put_get_exists_delete_in_batches(brix_process) -> None:  # type: ignore[no-untyped-def]
    addr = start_server(brix_process, "--capacity", "64MiB")
    async with PoolClient(f"kvcache://{addr}") as client:
        items = [(h, value_of(h, 70_000)) for h in range(200)]
        assert await client.put(NS, items) == 200
        got = await client.get(NS, list(range(250)))
        assert set(got) == set(range(200)) and all(bytes(got[h]) == v for h, v in items)
        assert await client.exists(NS, [5, 6, 999]) == {5, 6}
        assert await client.get(Namespace("other-model", 16), [5]) == {}  # keys are scoped by model
        assert await client.get(Namespace("llama-2-7b", 32), [5]) == {}  # ... and by block size
        assert await client.delete(NS, [5, 999]) == {5}
        assert [h for h in range(8) if h not in await client.get(NS, list(range(8)))] == [5]
        prefix = await client.get_prefix(NS, [1, 2, 3, 5, 6])
        assert [bytes(v) for v in prefix] == [value_of(h, 70_000) for h in (1, 2, 3)]
        assert client.stats.failures == 0 and client.stats.corrupt == 0


async def test_many_clients_at_once_read_only_whole_values_of_their_own_key_within_capacity(  # type: ignore[no-untyped-def]
        brix_process) -> None:
    capacity = 4 << 20
    addr = start_server(brix_process, "--capacity", str(capacity))
    clients = [await PoolClient(f"kvcache://{addr}", connections=2).start() for _ in range(8)]
    wrong: list[str] = []
    reads = 0

    async def worker(i: int, client: PoolClient) -> None:
        nonlocal reads
        rng = __import__("random").Random(i)
        for round_ in range(60):
            keys = rng.sample(range(400), 8)
            await client.put(NS, [(h, value_of(h, rng.randrange(16, 60_000), round_)) for h in keys])
            got = await client.get(NS, rng.sample(range(400), 16))
            for h, v in got.items():
                reads += 1
                key, _ = struct.unpack_from("<QQ", v)
                if key != h or bytes(v) != value_of(h, len(v), struct.unpack_from("<Q", v, 8)[0]):
                    wrong.append(f"key {h} returned a value of key {key} / torn")

    try:
        await asyncio.gather(*(worker(i, c) for i, c in enumerate(clients)))
    finally:
        for c in clients:
            await c.close()
    assert not wrong
    assert reads > 500
    assert all(c.stats.failures == 0 for c in clients)


async def test_single_key_puts_and_gets_pipelined_on_one_connection_stay_whole(  # type: ignore[no-untyped-def]
        brix_process) -> None:
    """One-value PUTs and GETs of 64 KiB are read whole in one recv on both sides (framing.py); mixed
    with other sizes, misses and batches, many in flight on one connection, every value read is its
    key's own and whole."""
    addr = start_server(brix_process)
    wrong: list[str] = []
    async with PoolClient(f"kvcache://{addr}", connections=1) as client:
        async def worker(i: int) -> None:
            rng = __import__("random").Random(i)
            for round_ in range(40):
                h = rng.randrange(64)
                size = rng.choice([64 << 10, 64 << 10, 64 << 10, 3000, 100 << 10])
                await client.put(NS, [(h, value_of(h, size, round_))])
                keys = [rng.randrange(80)] if rng.random() < 0.8 else rng.sample(range(80), 4)
                for k, v in (await client.get(NS, keys)).items():
                    key, version = struct.unpack_from("<QQ", v)
                    if key != k or bytes(v) != value_of(k, len(v), version):
                        wrong.append(f"key {k} returned a value of key {key} / torn")
        await asyncio.gather(*(worker(i) for i in range(8)))
        assert client.stats.failures == 0 and client.stats.corrupt == 0 and client.stats.hits > 100
    assert not wrong


def test_used_bytes_stay_within_capacity_while_writing_ten_times_more(brix_process) -> None:  # type: ignore[no-untyped-def]
    port, http = procs.free_port(), procs.free_port()
    brix_process("kvcache", "kvcache", "serve", "--port", str(port), "--http-port", str(http), "--capacity", "1MiB",
                 ready_url=f"http://127.0.0.1:{http}/readyz")
    url = f"http://127.0.0.1:{http}"

    async def write() -> None:
        async with PoolClient(f"kvcache://127.0.0.1:{port}") as client:
            for batch in range(20):
                await client.put(NS, [(batch * 100 + i, value_of(i, 50_000)) for i in range(10)])
                assert metric(url, "brix_kvcache_used_bytes") <= 1 << 20
    asyncio.run(write())
    assert metric(url, "brix_kvcache_evictions_total") > 150
    assert metric(url, "brix_kvcache_capacity_bytes") == 1 << 20


def raw_call(port: int, frame: bytes) -> tuple[int, int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(frame)
        head = _recv(sock, p.HEADER_SIZE)
        body_len, _, status, count, _ = p.HEADER.unpack(head)
        return status, count, _recv(sock, body_len)


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def test_a_value_whose_checksum_does_not_match_is_not_stored(brix_process) -> None:  # type: ignore[no-untyped-def]
    addr = start_server(brix_process)
    port = int(addr.rsplit(":", 1)[1])
    good, bad = b"good" * 1000, b"flipped!" * 500
    frame = b"".join(p.put_request(NS.encode(), [(1, good, zlib.crc32(good)), (2, bad, zlib.crc32(bad) ^ 1)], 7))
    status, count, body = raw_call(port, frame)
    assert (status, count, list(body)) == (p.OK, 2, [p.STORED, p.BAD_CHECKSUM])
    status, count, body = raw_call(port, p.keys_request(p.GET, NS.encode(), [1, 2], 8))
    items = p.parse_get_reply(body, count)
    assert items[0] is not None and bytes(items[0][0]) == good and items[1] is None


def test_frames_after_a_large_put_on_one_connection_are_each_answered(brix_process) -> None:  # type: ignore[no-untyped-def]
    """After a one-value PUT of 64 KiB the server reads the next frame whole, expecting another such
    PUT (kvcache/framing.py): frames that are not that one, several frames in one read, a frame
    split over reads and a malformed one after it are still each answered as the protocol says."""
    addr = start_server(brix_process)
    port = int(addr.rsplit(":", 1)[1])
    ns = NS.encode()
    big = [value_of(h, 64 << 10) for h in range(4)]

    def put(h: int, value: bytes, rid: int) -> bytes:
        return b"".join(p.put_request(ns, [(h, value, zlib.crc32(value))], rid))

    def replies(sock: socket.socket, n: int) -> list[tuple[int, int, int, bytes]]:
        out = []
        for _ in range(n):
            body_len, _, status, count, rid = p.HEADER.unpack(_recv(sock, p.HEADER_SIZE))
            out.append((rid, status, count, _recv(sock, body_len)))
        return out

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(put(0, big[0], 1))                           # sets the guess
        assert replies(sock, 1) == [(1, p.OK, 1, bytes([p.STORED]))]
        # two PUTs and a GET in one write: the first fills the guessed buffer, the rest spills over
        sock.sendall(put(1, big[1], 2) + put(2, big[2], 3) + p.keys_request(p.GET, ns, [0, 1, 2], 4))
        got = replies(sock, 3)
        assert [r[:3] for r in got] == [(2, p.OK, 1), (3, p.OK, 1), (4, p.OK, 3)]
        items = p.parse_get_reply(got[2][3], 3)
        assert [bytes(i[0]) for i in items if i is not None] == big[:3]
        # a PUT of another size, then one split in two writes
        small = value_of(9, 3000)
        sock.sendall(put(9, small, 5))
        frame = put(3, big[3], 6)
        sock.sendall(put(0, big[0], 7))
        sock.sendall(frame[:100])
        time.sleep(0.05)
        sock.sendall(frame[100:])
        assert [r[:2] for r in replies(sock, 3)] == [(5, p.OK), (7, p.OK), (6, p.OK)]
        # a malformed PUT where a whole one is expected: refused, and the connection closed
        bad = bytearray(put(8, big[0], 8))
        struct.pack_into("<I", bad, p.HEADER_SIZE + len(ns) + 12, len(big[0]) - 1)  # the item's length
        sock.sendall(bytes(bad))
        rid, status, _, body = replies(sock, 1)[0]
        assert (rid, status) == (8, p.BAD_REQUEST) and b"bytes after its 1 items" in body
    status, count, body = raw_call(port, p.keys_request(p.GET, ns, [0, 1, 2, 3, 9, 8], 9))
    items = p.parse_get_reply(body, count)
    assert [bytes(i[0]) if i else None for i in items] == [*big, small, None]


def test_small_frames_in_one_read_or_split_byte_by_byte_are_answered_in_order(brix_process) -> None:  # type: ignore[no-untyped-def]
    """Small frames that arrive whole go to the server straight from its read buffer (framing.py);
    many in one write, one dribbled a byte at a time, and a malformed one among them are still
    each answered in order, as on any other path."""
    addr = start_server(brix_process)
    port = int(addr.rsplit(":", 1)[1])
    ns = NS.encode()
    value = value_of(7, 1000)
    put = b"".join(p.put_request(ns, [(7, value, zlib.crc32(value))], 1))
    frames = [put, p.ping_request(2), p.keys_request(p.EXISTS, ns, [7, 8], 3), p.keys_request(p.GET, ns, [8, 7], 4),
              p.keys_request(p.DELETE, ns, [7], 5), p.keys_request(p.EXISTS, ns, [7], 6)]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"".join(frames))
        got = []
        for _ in frames:
            body_len, _, status, count, rid = p.HEADER.unpack(_recv(sock, p.HEADER_SIZE))
            got.append((rid, status, count, _recv(sock, body_len)))
        assert [g[:3] for g in got] == [(1, p.OK, 1), (2, p.OK, 0), (3, p.OK, 2), (4, p.OK, 2), (5, p.OK, 1),
                                        (6, p.OK, 1)]
        assert got[2][3] == b"\x01\x00" and got[4][3] == b"\x01" and got[5][3] == b"\x00"
        items = p.parse_get_reply(got[3][3], 2)
        assert items[0] is None and items[1] is not None and bytes(items[1][0]) == value
        for byte in p.keys_request(p.EXISTS, ns, [8], 7):   # one byte per segment
            sock.sendall(bytes([byte]))
            time.sleep(0.001)
        body_len, _, status, count, rid = p.HEADER.unpack(_recv(sock, p.HEADER_SIZE))
        assert (rid, status, _recv(sock, body_len)) == (7, p.OK, b"\x00")
        # a whole GET whose body does not hold its count of hashes, after a good PING in the same write
        sock.sendall(p.ping_request(8) + p.header(len(ns) + 4, p.GET, 1, 9) + ns + b"\0" * 4)
        assert p.HEADER.unpack(_recv(sock, p.HEADER_SIZE))[2:] == (p.OK, 0, 8)
        body_len, _, status, _, rid = p.HEADER.unpack(_recv(sock, p.HEADER_SIZE))
        assert (rid, status) == (9, p.BAD_REQUEST) and b"expected 1 u64 hashes" in _recv(sock, body_len)


def test_a_malformed_frame_gets_an_error_that_says_what_is_wrong(brix_process) -> None:  # type: ignore[no-untyped-def]
    addr = start_server(brix_process)
    port = int(addr.rsplit(":", 1)[1])
    ns = NS.encode()
    status, _, body = raw_call(port, p.header(len(ns) + 5, p.GET, 1, 3) + ns + b"\0" * 5)
    assert status == p.BAD_REQUEST and b"expected 1 u64 hashes" in body
    status, _, body = raw_call(port, p.header(0, 9, 0, 4))
    assert status == p.BAD_REQUEST and b"unknown op 9" in body
    status, _, body = raw_call(port, struct.pack("<IBBHI", 0, 2, p.PING, 0, 5))
    assert status == p.BAD_REQUEST and b"version 2 is not supported" in body
    # PUT values are read item by item: an item longer than what is left of the body, or bytes
    # after the last item, are refused before anything is stored
    value = b"v" * 5000
    item = struct.pack("<QII", 1, zlib.crc32(value), len(value) + 10) + value
    status, _, body = raw_call(port, p.header(len(ns) + len(item), p.PUT, 1, 6) + ns + item)
    assert status == p.BAD_REQUEST and b"body ends first" in body
    item = struct.pack("<QII", 2, zlib.crc32(value), len(value)) + value + b"extra"
    status, _, body = raw_call(port, p.header(len(ns) + len(item), p.PUT, 1, 7) + ns + item)
    assert status == p.BAD_REQUEST and b"5 bytes after its 1 items" in body
    status, count, body = raw_call(port, p.keys_request(p.GET, ns, [1, 2], 8))
    assert (status, p.parse_get_reply(body, count)) == (p.OK, [None, None])


async def test_the_client_drops_a_value_corrupted_on_the_way_back() -> None:
    """A stand-in server that answers every GET with a value whose crc32 does not match."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readexactly(p.HEADER_SIZE)
        body_len, _, count, rid = p.parse_header(head)
        await reader.readexactly(body_len)
        value = b"x" * 1000
        writer.writelines(p.get_reply([(value, zlib.crc32(b"y" * 1000))] * count, rid))
        await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with PoolClient(f"kvcache://127.0.0.1:{port}") as client:
            assert await client.get(NS, [1, 2]) == {}
            assert client.stats.corrupt == 2 and client.stats.misses == 2
    finally:
        server.close()


def test_bad_flags_exit_2_with_what_to_fix() -> None:
    import subprocess
    out = subprocess.run(procs.brix_argv("kvcache", "serve", "--capacity", "lots"), capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2 and "--capacity" in out.stderr and "4GiB" in out.stderr
    out = subprocess.run(procs.brix_argv("engine-mock", "--kv-pool", "http://x:1"), capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2 and "kvcache://host:port" in out.stderr


async def test_a_server_killed_mid_run_costs_only_its_own_blocks(brix_process) -> None:  # type: ignore[no-untyped-def]
    addrs = [start_server(brix_process, "--capacity", "64MiB") for _ in range(3)]
    async with PoolClient("kvcache://" + ",".join(addrs), timeout_s=1.0) as client:
        keys = list(range(600))
        assert await client.put(NS, [(h, value_of(h, 4096)) for h in keys]) == 600
        owners = client._groups(NS, keys)
        victim = addrs[1]
        kill(victim)
        for _ in range(3):  # reads and writes go on; nothing raises
            got = await client.get(NS, keys)
            assert set(got) == set(keys) - set(owners[victim])
            assert all(bytes(v) == value_of(h, 4096) for h, v in got.items())
            await client.put(NS, [(h, value_of(h, 4096)) for h in keys[:50]])
        # one key per request goes to the same owner as in a batch: found, or lost with the victim
        for h in keys[:60]:
            assert (h in await client.get(NS, [h])) == (h not in owners[victim])
            assert await client.put(NS, [(h, value_of(h, 4096))]) == (0 if h in owners[victim] else 1)
        assert client.stats.failures > 0


async def wait_members(client: PoolClient, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(client.members) != n:
        if time.monotonic() > deadline:
            raise AssertionError(f"members {client.members}, wanted {n}")
        await asyncio.sleep(0.1)


async def test_servers_join_and_leave_through_redis_membership(brix_process, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    beat = ("--redis", redis_url, "--pool", "p1", "--heartbeat", "0.2", "--ttl", "1")
    first = [start_server(brix_process, *beat) for _ in range(2)]
    async with PoolClient(f"{redis_url}?pool=p1", refresh_s=0.2, timeout_s=1.0) as client:
        assert sorted(client.members) == sorted(first)
        keys = list(range(900))
        assert await client.put(NS, [(h, value_of(h, 1024)) for h in keys]) == 900

        # a server joins: it takes about a third of the keys; the rest stay where they were
        third = start_server(brix_process, *beat)
        await wait_members(client, 3)
        moved = client._groups(NS, keys).get(third, [])
        assert 200 < len(moved) < 400
        got = await client.get(NS, keys)
        assert set(got) == set(keys) - set(moved)
        await client.put(NS, [(h, value_of(h, 1024)) for h in moved])  # refilled by the engines' write-back
        assert len(await client.get(NS, keys)) == 900

        # a server dies: its blocks are misses (never errors) until the membership drops it
        victim = first[0]
        lost = set(client._groups(NS, keys)[victim])
        kill(victim)
        got = await client.get(NS, keys)
        assert set(got) == set(keys) - lost
        await wait_members(client, 2, timeout=5)
        assert victim not in client.members
        got = await client.get(NS, keys)  # its keys now map to the others, which never had them
        assert set(got) == set(keys) - lost
        assert all(bytes(v) == value_of(h, 1024) for h, v in got.items())
