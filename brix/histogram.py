"""A Prometheus-style histogram as plain data: fixed upper bounds, a count per bucket, a sum.

engine_mock and the gateway record latencies on their hot paths with it and export it
themselves, without prometheus-client's per-update lock and Python bucket walk. Buckets are
`le` (inclusive) like Prometheus's; the last bucket is +Inf.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from prometheus_client.utils import floatToGoString


class Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = [float(b) for b in bounds]
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def le_labels(self) -> list[str]:
        """The `le` label of every bucket, as prometheus-client writes them, "+Inf" last."""
        return [floatToGoString(b) for b in self.bounds] + ["+Inf"]

    def cumulative(self) -> list[int]:
        """Observations at or below each bound, then the total (the +Inf bucket)."""
        out, acc = [], 0
        for n in self.counts:
            acc += n
            out.append(acc)
        return out
