"""engine-mock benchmark: throughput of one process on one core, and simulated-vs-observed TTFT.

Run: .venv/bin/python hack/bench/bench_engine_mock.py [--seconds 8] [--concurrency 64]

Part 1 (throughput): `brix engine-mock --speed 1000` pinned to CPU 0; a load generator
(a minimal asyncio HTTP/1.1 client, many keep-alive connections) in a separate process pinned to CPU 1 sends
non-stream /v1/completions with max_tokens=8 for a fixed time. The same client then hits a
bare aiohttp server (same JSON, no simulation, no metrics) on the same core: the ceiling of
Python+aiohttp on this machine. Goal: >= 2,000 req/s from engine-mock.

Part 2 (TTFT fidelity): engine-mock at --speed 1 (A100 profile); sequential streaming requests
of several prompt sizes, then concurrent ones. Observed time to first chunk (client wall clock,
taken in the client's data_received) vs simulated TTFT (the vllm:time_to_first_token_seconds
sum over the same requests); means, since the engine only exposes the simulated sum.
Goal: within 10 %. Also printed: the floor (a GET /health round trip after the same idle gap).

    .venv/bin/python hack/bench/bench_engine_mock.py [--only throughput|ttft]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from brix import procs  # noqa: E402


def pin(pid: int, cpu: int) -> bool:
    try:
        if cpu < os.cpu_count():  # type: ignore[operator]
            os.sched_setaffinity(pid, {cpu})
            return True
    except (AttributeError, OSError):
        pass
    return False


def scrape(url: str, prefix: str) -> tuple[float, float]:
    """(sum, count) of the histogram `prefix` on the engine's /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith(prefix + "_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith(prefix + "_count"):
            count = float(line.rsplit(" ", 1)[1])
    return total, count


def ttft_sum(url: str) -> tuple[float, float]:
    return scrape(url, "vllm:time_to_first_token_seconds")


# --- load generator (runs in its own process) ---------------------------------------------------
# A minimal keep-alive HTTP/1.1 client on asyncio.Protocol: one request in flight per
# connection, responses framed by Content-Length. It costs the client a fraction of what the
# aiohttp client does, so the server, not the load generator, is what gets measured (the
# aiohttp client is used for the streaming TTFT probes below).
class _Conn:
    def __init__(self, request: bytes, stop: float, stats: dict[str, float | int | list[float]],
                 done: asyncio.Future[None]) -> None:
        self.request, self.stop, self.stats, self.done = request, stop, stats, done
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        self._send()

    def _send(self) -> None:
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end]
            i = head.lower().find(b"content-length:")
            length = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None])
            total = head_end + 4 + length
            if len(self.buf) < total:
                return
            body = self.buf[head_end + 4:total]
            self.buf = self.buf[total:]
            now = time.perf_counter()
            if head.startswith(b"HTTP/1.1 200") and b'"completion_tokens":8' in body:
                self.stats["done"] += 1  # type: ignore[operator]
                self.stats["lat"].append(now - self.sent_at)  # type: ignore[union-attr]
            else:
                self.stats["errors"] += 1  # type: ignore[operator]
            if now >= self.stop:
                assert self.transport is not None
                self.transport.close()
                return
            self._send()

    def eof_received(self) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass


def _load_worker(url: str, seconds: float, concurrency: int, cpu: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    pin(0, cpu)
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"model": "bench", "prompt": "Benchmark prompt: say something short.",
                       "max_tokens": 8}).encode()
    request = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def main() -> tuple[int, int, list[float]]:
        loop = asyncio.get_running_loop()
        # warm-up second, then the measured window
        for length in (1.0, seconds):
            stats: dict[str, float | int | list[float]] = {"done": 0, "errors": 0, "lat": []}
            start = time.perf_counter()
            stop = start + length
            futures = []
            for _ in range(concurrency):
                fut: asyncio.Future[None] = loop.create_future()
                await loop.create_connection(
                    lambda f=fut, stop=stop, stats=stats: _Conn(request, stop, stats, f),  # type: ignore[misc]
                    host, int(port))
                futures.append(fut)
            await asyncio.gather(*futures)
            elapsed = time.perf_counter() - start
        return int(stats["done"]), int(stats["errors"]), [elapsed, *sorted(stats["lat"])]  # type: ignore[arg-type]

    out.put(asyncio.run(main()))


def run_load(url: str, seconds: float, concurrency: int) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    p = ctx.Process(target=_load_worker, args=(url, seconds, concurrency, 1, q))
    p.start()
    done, errors, rest = q.get(timeout=seconds + 120)
    p.join(30)
    elapsed, lat = rest[0], rest[1:]
    p50 = lat[len(lat) // 2] if lat else float("nan")
    p99 = lat[int(len(lat) * 0.99)] if lat else float("nan")
    return {"rps": done / elapsed, "errors": errors, "p50_ms": p50 * 1e3, "p99_ms": p99 * 1e3}


# --- a bare aiohttp server: the ceiling for Python + aiohttp on this core ------------------------
BARE_SERVER = r'''
import json, sys, time
from aiohttp import web
BODY = json.dumps({"id": "cmpl-0", "object": "text_completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "text": " a b c d e f g h", "logprobs": None, "finish_reason": "length"}],
    "usage": {"prompt_tokens": 9, "total_tokens": 17, "completion_tokens": 8}}, separators=(",", ":")).encode()
async def completions(request):
    json.loads(await request.read())
    return web.Response(body=BODY, content_type="application/json")
async def health(request):
    return web.Response()
app = web.Application()
app.router.add_post("/v1/completions", completions)
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
'''


# --- part 2: TTFT fidelity -----------------------------------------------------------------------
class _StreamProbe(asyncio.Protocol):
    """One kept-alive connection that times streaming requests to their first SSE chunk.

    Not an HTTP client library: what is timed is the engine and the loopback, not the client's
    own request building and response parsing (the aiohttp client adds about 0.4 ms per request
    on this machine). The clock starts just before the request bytes are written and stops in
    data_received, as soon as bytes holding a `data:` event arrive after the response head (the
    head itself is sent earlier, when the stream opens). A response ends at the zero-size chunk.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.sent = self.first = 0.0
        self.done: asyncio.Future[float] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    async def time_request(self, request: bytes) -> float:
        self.buf, self.first = b"", 0.0
        self.done = asyncio.get_running_loop().create_future()
        self.sent = time.perf_counter()
        self.transport.write(request)  # type: ignore[union-attr]
        return await self.done

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buf += data
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buf[:head_end].lower()
        if not head.startswith(b"http/1.1 200"):
            self.done.set_exception(RuntimeError(f"engine answered {self.buf[:head_end]!r}"))  # type: ignore[union-attr]
            return
        if b"content-length:" in head:  # a plain response (the floor probe): timed to its last byte
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
            if len(self.buf) >= head_end + 4 + length:
                self.done.set_result(now - self.sent)  # type: ignore[union-attr]
            return
        if not self.first and b"data:" in self.buf[head_end:]:
            self.first = now - self.sent
        if self.buf.endswith(b"\r\n0\r\n\r\n"):
            self.done.set_result(self.first)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError(f"engine closed the connection: {exc}"))


async def floor_probe(url: str, n: int) -> float:
    """Median round trip of GET /health after the same idle gap as the TTFT probes: what the
    loopback, two process wake-ups and the HTTP stack cost with no simulated work at all."""
    host, port = url.removeprefix("http://").split(":")
    _, conn = await asyncio.get_running_loop().create_connection(_StreamProbe, host, int(port))
    times = []
    for _ in range(n):
        times.append(await conn.time_request(f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()))
        await asyncio.sleep(0.05)
    conn.transport.close()  # type: ignore[union-attr]
    return sorted(times)[n // 2]


async def ttft_probe(url: str, prompt_tokens: int, n: int, concurrency: int) -> tuple[float, float, float]:
    """Median and mean observed time-to-first-chunk, mean simulated TTFT, over n streaming requests.

    Every prompt is unique (no prefix-cache hits), so the simulated TTFT is the same for every
    request of a sequential probe.
    """
    host, port = url.removeprefix("http://").split(":")
    sim_before, count_before = ttft_sum(url)
    observed: list[float] = []
    word = " word"
    nonce = f"{prompt_tokens}-{concurrency}-{time.time_ns()}"
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(_StreamProbe, host, int(port)))[1] for _ in range(concurrency)]

    async def one(i: int, conn: _StreamProbe) -> None:
        prompt = f"probe {nonce} request {i}:" + word * prompt_tokens
        body = json.dumps({"model": "bench", "prompt": prompt, "max_tokens": 4, "stream": True}).encode()
        request = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        observed.append(await conn.time_request(request))

    for start in range(0, n, concurrency):
        await asyncio.gather(*(one(i, conns[i - start]) for i in range(start, min(n, start + concurrency))))
        await asyncio.sleep(0.05)
    for conn in conns:
        conn.transport.close()  # type: ignore[union-attr]
    sim_after, count_after = ttft_sum(url)
    assert count_after - count_before == n
    observed.sort()
    return observed[len(observed) // 2], sum(observed) / len(observed), (sim_after - sim_before) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="load duration per throughput run")
    parser.add_argument("--concurrency", type=int, default=64, help="client connections for throughput")
    parser.add_argument("--speed", type=float, default=1000.0, help="engine --speed for the throughput run")
    parser.add_argument("--only", choices=("throughput", "ttft"), help="run one part only")
    args = parser.parse_args()
    logdir = Path("/tmp/bench_engine_mock")
    logdir.mkdir(exist_ok=True)
    print(f"cpus={os.cpu_count()} python={sys.version.split()[0]}")

    if args.only != "ttft":
        throughput(args, logdir)
    if args.only != "throughput":
        ttft_fidelity(logdir)
    return 0


def throughput(args: argparse.Namespace, logdir: Path) -> None:
    rows = []
    for name, argv in (
        ("engine-mock", procs.brix_argv("engine-mock", "--model", "bench", "--speed", str(args.speed),
                                        "--log-level", "warning")),
        ("bare aiohttp", [sys.executable, "-c", BARE_SERVER]),
    ):
        port = procs.free_port()
        full = [*argv, "--port", str(port)] if name == "engine-mock" else [*argv, str(port)]
        proc = procs.start(name, full, logdir / f"{name.replace(' ', '_')}.log",
                           ready_url=f"http://127.0.0.1:{port}/health")
        try:
            proc.wait_ready(30)
            pinned = pin(proc.pid, 0)
            res = run_load(f"http://127.0.0.1:{port}", args.seconds, args.concurrency)
        finally:
            proc.stop()
        rows.append((name, res, pinned))
    print("\n== throughput: non-stream /v1/completions, max_tokens=8, "
          f"{args.concurrency} connections, {args.seconds:.0f} s, server pinned to 1 core ==")
    print(f"{'server':<14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  pinned")
    for name, res, pinned in rows:
        print(f"{name:<14} {res['rps']:>8.0f} {res['p50_ms']:>8.1f} {res['p99_ms']:>8.1f} {res['errors']:>7.0f}  {pinned}")
    ours, bare = rows[0][1]["rps"], rows[1][1]["rps"]
    print(f"engine-mock / bare aiohttp = {ours / bare:.2f}   goal engine-mock >= 2000 req/s:"
          f" {'MET' if ours >= 2000 else 'NOT MET'}")



def ttft_fidelity(logdir: Path) -> None:
    """Part 2 at --speed 1; this process is the client, on the other core."""
    pin(0, 1)
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}"
    proc = procs.start("engine-mock-ttft", procs.brix_argv("engine-mock", "--model", "bench", "--port", str(port),
                                                            "--log-level", "warning"),
                       logdir / "ttft.log", ready_url=url + "/health")
    try:
        proc.wait_ready(30)
        pin(proc.pid, 0)
        print("\n== TTFT fidelity: engine-mock --speed 1 (A100), streaming, max_tokens=4 ==")
        print(f"{'prompt tok':>10} {'concurrent':>10} {'sim TTFT ms':>12} {'obs p50 ms':>11} {'obs mean ms':>12}"
              f" {'mean/sim':>9}")
        worst = 0.0
        for prompt_tokens, conc in ((100, 1), (500, 1), (2000, 1), (500, 8), (2000, 8)):
            p50, mean, sim = asyncio.run(ttft_probe(url, prompt_tokens, 48, conc))
            worst = max(worst, abs(mean / sim - 1))
            print(f"{prompt_tokens:>10} {conc:>10} {sim * 1e3:>12.2f} {p50 * 1e3:>11.2f} {mean * 1e3:>12.2f}"
                  f" {mean / sim:>9.3f}")
        late, steps = scrape(url, "engine_mock_step_lateness_seconds")
        floor = asyncio.run(floor_probe(url, 48))
        print(f"server-side delivery lateness: mean {late / max(steps, 1) * 1e3:.3f} ms over {steps:.0f} steps;"
              f" floor (GET /health round trip after the same idle gap, p50): {floor * 1e3:.2f} ms.\n"
              "most of observed - simulated is that floor (loopback, waking two idle processes, HTTP parsing)")
        print(f"worst |observed mean/simulated - 1| = {worst * 100:.1f} %   goal within 10 %:"
              f" {'MET' if worst <= 0.10 else 'NOT MET'}")
    finally:
        proc.stop()


if __name__ == "__main__":
    raise SystemExit(main())
