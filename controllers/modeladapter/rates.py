"""Recent request rates of LoRA adapters from engines' cumulative per-adapter counters (pure; time is
passed in).

Each engine pod's /metrics is read now and then; a successful scrape gives, per adapter, the count of
requests it has admitted since the engine started (engine-mock's `engine_mock_lora_requests_total`;
an adapter without a line has 0 there). A failed scrape is no sample at all, never a zero: a pod's
rate is its counters' increase between its own oldest and newest samples in the window, divided by
the time between them, so a missed scrape only lengthens one interval. A counter that goes down (the
engine restarted) restarts from 0, as Prometheus' rate() does.

An adapter's rate is the sum over pods; it is known only when every pod it is loaded on has a
measured span (two samples in the window) - otherwise the pods that answered would understate it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from brix import vllm_metrics

COUNTER = "engine_mock_lora_requests_total"

Sample = tuple[float, dict[str, float]]      # (time, adapter -> cumulative count)


@dataclass
class History:
    """Samples per pod (by name), oldest first, pruned to the window."""

    window_s: float = 60.0
    min_span_s: float = 5.0
    """A pod's samples must span at least this long before its rate counts."""
    samples: dict[str, list[Sample]] = field(default_factory=dict)


def parse(text: str) -> dict[str, float]:
    """adapter -> count from a /metrics page (summed over engines of one pod)."""
    out: dict[str, float] = {}
    for labels, value in vllm_metrics.samples(text, COUNTER):
        name = labels.get("lora_name")
        if name is not None:
            out[name] = out.get(name, 0.0) + value
    return out


def observe(history: History, pod: str, now: float, counts: dict[str, float] | None) -> None:
    """Add one scrape of `pod` at `now` (None: it failed, nothing is added) and drop what the window
    no longer needs (the newest sample at or before its start is kept as its baseline)."""
    if counts is not None:
        history.samples.setdefault(pod, []).append((now, dict(counts)))
    start = now - history.window_s
    for name in list(history.samples):
        kept = history.samples[name]
        while len(kept) >= 2 and kept[1][0] <= start:
            kept.pop(0)
        if kept and kept[-1][0] < start:      # nothing newer than the window: the pod is gone or silent
            del history.samples[name]


def forget(history: History, live: set[str]) -> None:
    for name in [n for n in history.samples if n not in live]:
        del history.samples[name]


def pod_rates(history: History, now: float) -> dict[str, dict[str, float]]:
    """pod -> adapter -> req/s over the pod's samples in the window; pods without a span of
    min_span_s are left out (unknown, not idle)."""
    start = now - history.window_s
    out: dict[str, dict[str, float]] = {}
    for pod, samples in history.samples.items():
        inside = [s for s in samples if start <= s[0] <= now]
        before = [s for s in samples if s[0] < start]
        used = before[-1:] + inside
        if len(used) < 2:
            continue
        span = used[-1][0] - used[0][0]
        if span < history.min_span_s:
            continue
        increase: dict[str, float] = {}
        for (_, a), (_, b) in zip(used, used[1:], strict=False):
            for name, v in b.items():
                prev = a.get(name, 0.0)
                increase[name] = increase.get(name, 0.0) + (v - prev if v >= prev else v)
        out[pod] = {name: inc / span for name, inc in increase.items()}
    return out


def adapter_rates(history: History, now: float, placed: dict[str, set[str]]) -> dict[str, float]:
    """adapter -> req/s summed over pods, for each adapter of `placed` (adapter -> pods it is loaded
    on) whose pods were all measured; the others are left out (unknown)."""
    per_pod = pod_rates(history, now)
    out: dict[str, float] = {}
    for name, pods in placed.items():
        if not pods or any(p not in per_pod for p in pods):
            continue
        # requests anywhere it was served in the window (a pod it moved away from counts too)
        out[name] = sum(r.get(name, 0.0) for r in per_pod.values())
    return out


def with_fallback(names: list[str], measured: dict[str, float], default: float = 1.0) -> dict[str, float]:
    """Every adapter's weight for placement: its measured rate, else the mean of the measured ones
    (a new adapter counts as an average one), else `default` when nothing is measured."""
    fallback = sum(measured.values()) / len(measured) if measured else default
    return {n: measured[n] if n in measured else fallback for n in names}
