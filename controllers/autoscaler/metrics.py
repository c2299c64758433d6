"""Per-second metric buckets and the windowed averages the deciders read (pure; `now` is passed in).

One scrape round of a pod source gives each Ready pod's value (or None when its scrape failed).
The second's bucket keeps the total for the whole target: the mean of the values that were read
times the number of Ready pods (Knative records totals the same way, so a window average stays
right while the pod count changes under it). A failed scrape adds nothing to the mean, and a
round where every scrape failed leaves the second missing, not zero: averages are taken over the
seconds that have data, and a window with none gives None, which the deciders treat as "no data"
(hold), never as "no load". External and optimizer sources record their value as the total.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class Window:
    keep_s: float = 3600.0
    buckets: dict[int, list[float]] = field(default_factory=dict)   # second -> [sum of totals, rounds]
    latest: dict[str, tuple[float, float | None]] = field(default_factory=dict)   # pod -> (t, value or None)

    def record_pods(self, t: float, values: Mapping[str, float | None], ready: int) -> None:
        """One scrape round: each Ready pod's value, None where the scrape failed."""
        for pod, v in values.items():
            self.latest[pod] = (t, v)
        got = [v for v in values.values() if v is not None]
        if got and ready > 0:
            self.record_total(t, sum(got) / len(got) * ready)

    def record_total(self, t: float, total: float) -> None:
        sec = math.floor(t)
        b = self.buckets.get(sec)
        if b is None:
            self.buckets[sec] = [total, 1.0]
            self._trim(sec)
        else:
            b[0] += total
            b[1] += 1

    def forget_pods(self, alive: set[str]) -> None:
        for pod in [p for p in self.latest if p not in alive]:
            del self.latest[pod]

    def _trim(self, sec: int) -> None:
        if len(self.buckets) > self.keep_s + 8:
            cutoff = sec - self.keep_s
            for s in [s for s in self.buckets if s < cutoff]:
                del self.buckets[s]

    def average(self, now: float, window_s: float) -> float | None:
        """Mean total over the seconds (now - window_s, now] that have data; None when none has."""
        hi = math.floor(now)
        lo = hi - max(1, round(window_s)) + 1
        total = count = 0.0
        for sec, (s, c) in self.buckets.items():
            if lo <= sec <= hi:
                total += s
                count += c
        return total / count if count else None

    def latest_values(self, now: float, max_age_s: float) -> dict[str, float | None]:
        """Each pod's last value no older than max_age_s (None: its last scrape failed or is too old)."""
        return {pod: (v if now - t <= max_age_s else None) for pod, (t, v) in self.latest.items()}


@dataclass(frozen=True)
class Observation:
    """What one metric source says at `now`, in the units of its target value.

    stable / panic: the window averages of the total (pod and external sources: a load for the
    whole target, compared with target x pods; optimizer sources: a replica count). latest: pod
    sources' per-pod values, for HPA's readiness and missing-metric rules.
    """

    stable: float | None
    panic: float | None
    per_pod: bool = True
    latest: Mapping[str, float | None] = field(default_factory=dict)


def observe(window: Window, now: float, stable_s: float, panic_s: float, per_pod: bool, latest_age_s: float) -> Observation:
    return Observation(window.average(now, stable_s), window.average(now, panic_s), per_pod,
                       window.latest_values(now, latest_age_s) if per_pod else {})
