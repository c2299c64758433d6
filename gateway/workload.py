"""The live workload of each model: request rate per (prompt, completion) token bucket over a
sliding window (pure; the caller passes the time in).

The gateway records every request that finished with a usage count; the GPU-mix optimizer of
`brix scheduler-ext --gateway-url` reads the rates at `GET /v1/workload` and sums them over the
gateway replicas. Buckets are `brix.token_buckets.bucket_of` of each length (the smallest power of
two at or above it), so the optimizer can map them onto any profile grid.

Counts are kept per slot of `slot_s` seconds; a rate is the count in the slots that lie inside
the last `window_s` seconds divided by the time those slots cover up to now (less right after
start, so the first minute does not read low).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric

from brix.token_buckets import bucket_of

Cell = tuple[int, int]  # (prompt bucket, completion bucket), in tokens


@dataclass
class _ModelSlots:
    slots: deque[tuple[int, dict[Cell, int]]] = field(default_factory=deque)  # (slot number, counts)


class WorkloadWindow:
    def __init__(self, started: float, window_s: float = 60.0, slot_s: float = 1.0) -> None:
        if window_s <= 0 or slot_s <= 0 or slot_s > window_s:
            raise ValueError(f"workload window {window_s} s / slot {slot_s} s: need 0 < slot <= window")
        self.started = started
        self.window_s = window_s
        self.slot_s = slot_s
        self._models: dict[str, _ModelSlots] = {}

    def record(self, model: str, prompt_tokens: int, completion_tokens: int, now: float) -> None:
        slot = int(now // self.slot_s)
        slots = self._models.setdefault(model, _ModelSlots()).slots
        if not slots or slots[-1][0] != slot:
            slots.append((slot, {}))
            self._expire(slots, now)
        counts = slots[-1][1]
        cell = (bucket_of(prompt_tokens), bucket_of(completion_tokens))
        counts[cell] = counts.get(cell, 0) + 1

    def _expire(self, slots: deque[tuple[int, dict[Cell, int]]], now: float) -> None:
        first = int((now - self.window_s) // self.slot_s) + 1   # oldest slot still inside the window
        while slots and slots[0][0] < first:
            slots.popleft()

    def covered_s(self, now: float) -> float:
        """Seconds the rates are averaged over: from the start of the oldest slot inside the window
        (or from the gateway's start, when later) to now."""
        first = (int((now - self.window_s) // self.slot_s) + 1) * self.slot_s
        return max(self.slot_s, now - max(first, self.started))

    def rates(self, now: float) -> dict[str, dict[Cell, float]]:
        """model -> cell -> requests/s over the window; models with nothing in the window are left out."""
        out: dict[str, dict[Cell, float]] = {}
        span = self.covered_s(now)
        for model in list(self._models):
            slots = self._models[model].slots
            self._expire(slots, now)
            if not slots:
                del self._models[model]
                continue
            totals: dict[Cell, int] = {}
            for _, counts in slots:
                for cell, n in counts.items():
                    totals[cell] = totals.get(cell, 0) + n
            out[model] = {cell: n / span for cell, n in sorted(totals.items())}
        return out

    def document(self, now: float) -> dict[str, object]:
        """The JSON body of GET /v1/workload."""
        models = {}
        for model, cells in self.rates(now).items():
            models[model] = {
                "rps": round(sum(cells.values()), 6),
                "cells": [{"prompt_tokens": p, "completion_tokens": c, "rps": round(r, 6)}
                          for (p, c), r in cells.items()],
            }
        return {"window_s": self.window_s, "covered_s": round(self.covered_s(now), 3),
                "buckets": "smallest power of two >= the token count", "models": models}

    def samples(self, now: float) -> Iterator[tuple[str, int, int, float]]:
        """(model, prompt bucket, completion bucket, requests/s) for the gauge on /metrics."""
        for model, cells in self.rates(now).items():
            for (p, c), r in cells.items():
                yield model, p, c, r


class WorkloadCollector:
    """prometheus-client collector: `brix_gateway_workload_requests_per_second{model, prompt_tokens,
    completion_tokens}`, the window's rates when /metrics is read (`clock` gives the time)."""

    def __init__(self, window: WorkloadWindow, clock: Callable[[], float]) -> None:
        self.window = window
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        fam = GaugeMetricFamily("brix_gateway_workload_requests_per_second",
                                f"Requests/s per model and token bucket (smallest power of two >= the prompt and "
                                f"completion tokens) over the last {self.window.window_s:g} s",
                                labels=["model", "prompt_tokens", "completion_tokens"])
        for model, p, c, r in self.window.samples(self.clock()):
            fam.add_metric([model, str(p), str(c)], r)
        yield fam
