"""CPU cost of the gateway's own HTTP/1.1 server (gateway/http_edge.py) per request, in process.

    .venv/bin/python hack/bench/bench_http_edge.py

One keep-alive connection on loopback to an HttpEdge whose handler answers a fixed JSON body at
once: requests one at a time (depth 1) and 16 pipelined. The figure is process CPU time per
request (client and server share the process), the best of 12 rounds of 4,000 requests, so other
load on the machine moves it less than wall-clock time would. It imports the gateway of the
current directory, so two checkouts compare side by side with the same script:
`cd <checkout> && /path/to/.venv/bin/python /path/to/bench_http_edge.py`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))   # the checkout run from (see above)
from gateway.http_edge import HttpEdge  # noqa: E402
from gateway.http_messages import Request, Responder  # noqa: E402

REQUEST = (b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
           b"authorization: Bearer abc\r\ncontent-length: 27\r\n\r\n" + b'{"model":"m","prompt":"hi"}')
ANSWER = b'{"ok":true}'


async def fixed(req: Request, out: Responder) -> None:
    out.send(200, {"content-type": "application/json"}, ANSWER)


def error_body(status: int, message: str, code: str) -> bytes:
    return b"{}"


async def measure(rounds: int = 12, per_round: int = 4000) -> dict[int, float]:
    edge = HttpEdge({("POST", "/v1/completions"): fixed}, fixed, 1 << 20, error_body)
    await edge.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)

    async def run(n: int, depth: int) -> None:
        for _ in range(n // depth):
            writer.write(REQUEST * depth)
            for _ in range(depth):
                await reader.readuntil(ANSWER)

    await run(2000, 1)   # warm-up
    best: dict[int, float] = {}
    for depth in (1, 16):
        for _ in range(rounds):
            t0 = time.process_time()
            await run(per_round, depth)
            best[depth] = min(best.get(depth, 1e9), (time.process_time() - t0) / per_round * 1e6)
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.05)   # the server sees the close
    await edge.stop(grace_s=0.1)
    return best


def main() -> int:
    try:
        import uvloop
        best = uvloop.run(measure())
        loop = "uvloop"
    except ImportError:
        best = asyncio.run(measure())
        loop = "asyncio"
    print(f"http_edge on {loop}, CPU per request (client + server, best of 12 x 4000):")
    for depth, us in best.items():
        print(f"  depth {depth:>2}: {us:6.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
