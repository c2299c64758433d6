"""`brix profile`, pure parts: SLOs read from an engine's own latency histograms, the rate search
per bucket, and the AIBrix-format profile document.

Latencies come from the engine's `/metrics` (vLLM's histograms, which engine-mock exports in
simulated seconds), as the difference of the cumulative buckets before and after a trial. A
percentile is Prometheus' `histogram_quantile` (linear inside a bucket); one that falls past the
last finite bucket is infinite, so it fails every SLO. An SLO limit on a bucket bound is exact.

The rate search (AIBrix's gen_profile keeps the highest benchmarked rate that meets the SLOs):
start at `start_rps`, double while the SLO holds, halve while it does not, then bisect
(geometrically) until the highest passing and the lowest failing rate are within `precision`.
The answer is the highest rate that passed, 0.0 when none above `min_rps` did (the optimizer
then never assigns that bucket to this GPU type).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

METRIC_HISTOGRAM = {
    "ttft": "vllm:time_to_first_token_seconds",
    "tpot": "vllm:time_per_output_token_seconds",
    "itl": "vllm:inter_token_latency_seconds",
    "e2e": "vllm:e2e_request_latency_seconds",
}
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?[ \t]+(\S+)")
_LE = re.compile(r'le="([^"]*)"')


@dataclass(frozen=True)
class Hist:
    """A cumulative histogram: (upper bound, count <= it) ascending, ending with +Inf; sum; count."""

    buckets: tuple[tuple[float, float], ...]
    total: float
    count: float

    def minus(self, before: Hist) -> Hist:
        prior = dict(before.buckets)
        return Hist(tuple((le, n - prior.get(le, 0.0)) for le, n in self.buckets),
                    self.total - before.total, self.count - before.count)

    def quantile(self, q: float) -> float:
        if self.count <= 0:
            return math.nan
        rank = q * self.count
        lower_le, lower_n = 0.0, 0.0
        for le, n in self.buckets:
            if n >= rank:
                if math.isinf(le):
                    return math.inf
                if n == lower_n:
                    return le
                return lower_le + (le - lower_le) * (rank - lower_n) / (n - lower_n)
            lower_le, lower_n = le, n
        return math.inf

    def mean(self) -> float:
        return self.total / self.count if self.count > 0 else math.nan


def parse_histograms(text: str, names: set[str]) -> dict[str, Hist]:
    """The histograms named `names` from a Prometheus text page, summed over their other labels."""
    buckets: dict[str, dict[float, float]] = {n: {} for n in names}
    sums: dict[str, float] = dict.fromkeys(names, 0.0)
    counts: dict[str, float] = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        if not line.startswith("vllm:") and not any(line.startswith(n) for n in names):
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        metric, labels, raw = m.group(1), m.group(2) or "", m.group(3)
        try:
            value = float(raw)
        except ValueError:
            continue
        for name in names:
            if metric == name + "_bucket":
                le = _LE.search(labels)
                if le:
                    bound = math.inf if le.group(1) in ("+Inf", "Inf") else float(le.group(1))
                    buckets[name][bound] = buckets[name].get(bound, 0.0) + value
            elif metric == name + "_sum":
                sums[name] += value
            elif metric == name + "_count":
                counts[name] += value
    return {n: Hist(tuple(sorted(buckets[n].items())), sums[n], counts[n]) for n in names if buckets[n]}


def slo_results(slo: Mapping[str, float], hists: Mapping[str, Hist]) -> dict[str, float]:
    """`ttft_p99` -> the measured value (seconds) for every SLO entry."""
    out = {}
    for key in slo:
        metric, _, pct = key.partition("_")
        h = hists.get(METRIC_HISTOGRAM[metric])
        if h is None:
            out[key] = math.nan
        elif pct == "mean":
            out[key] = h.mean()
        else:
            out[key] = h.quantile(float(pct[1:]) / 100.0)
    return out


def slo_met(slo: Mapping[str, float], measured: Mapping[str, float]) -> bool:
    return all(not math.isnan(measured.get(k, math.nan)) and measured[k] <= limit for k, limit in slo.items())


@dataclass
class RateSearch:
    start_rps: float
    min_rps: float = 0.01
    max_rps: float = 1000.0
    precision: float = 0.1
    """Stop when the lowest failing rate is within this fraction above the highest passing one."""
    passed: float = 0.0
    failed: float = math.inf
    tried: list[tuple[float, bool]] = field(default_factory=list)

    def next_rate(self) -> float | None:
        """The next rate to try; None when the search is over (the answer is `passed`)."""
        if not self.tried:
            return min(max(self.start_rps, self.min_rps), self.max_rps)
        if self.passed <= 0:
            rate = self.failed / 2
            return rate if rate >= self.min_rps else None
        if math.isinf(self.failed):
            rate = self.passed * 2
            return rate if self.passed < self.max_rps else None
        if self.failed <= self.passed * (1 + self.precision):
            return None
        return math.sqrt(self.passed * self.failed)

    def report(self, rate: float, ok: bool) -> None:
        self.tried.append((rate, ok))
        if ok:
            self.passed = max(self.passed, rate)
        else:
            self.failed = min(self.failed, rate)


def profile_doc(gpu: str, cost: float, indexes: list[list[int]], tputs: list[list[float]],
                slo: Mapping[str, float], created: float, model: str | None = None,
                measured: list[list[dict[str, float]]] | None = None) -> dict[str, object]:
    """AIBrix's GPUProfile JSON (gpu, cost, tputs[output][input], indexes, created) plus `slos` as
    AIBrix's Go side keeps them, the `model` the profile applies to, and what was measured at each
    cell's rate (`measured[o][i]`: `ttft_p99` -> seconds)."""
    doc: dict[str, object] = {"gpu": gpu, "cost": cost, "tputs": tputs, "indexes": indexes, "created": created,
                              "slos": aibrix_slos(slo)}
    if model:
        doc["model"] = model
    if measured is not None:
        doc["measured"] = measured
    return doc


def aibrix_slos(slo: Mapping[str, float]) -> dict[str, object]:
    """{"percentile": 99, "ttft": 1.0} as AIBrix writes them when every entry has one percentile;
    else the entries as given (`ttft_p99`: seconds)."""
    pcts = {k.partition("_")[2] for k in slo}
    if len(pcts) != 1:
        return dict(slo)
    pct = pcts.pop()
    out: dict[str, object] = {"percentile": "mean" if pct == "mean" else int(pct[1:])}
    out.update({k.partition("_")[0]: v for k, v in slo.items()})
    return out
