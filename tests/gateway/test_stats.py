"""The gateway's lock-free counters and histograms expose exactly what prometheus-client's would."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gateway.stats import FastCounter, FastHistogram, _Collector

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 1, 10)


def series(registry: CollectorRegistry, name: str) -> list[str]:
    return sorted(line for line in generate_latest(registry).decode().splitlines()
                  if line.startswith(name) and "_created" not in line)


def test_histogram_and_counter_expose_the_same_series_as_prometheus_client() -> None:
    rng = random.Random(7)
    values = [rng.choice(BUCKETS) for _ in range(50)] + [rng.uniform(0, 20) for _ in range(200)] + [0.0, 1e9]
    ours, ref = CollectorRegistry(), CollectorRegistry()
    fh = FastHistogram("t_seconds", "doc", ["model"], BUCKETS)
    fc = FastCounter("t_tokens", "doc", ["model", "kind"])
    ours.register(_Collector([fh, fc]))
    rh = Histogram("t_seconds", "doc", ["model"], buckets=BUCKETS, registry=ref)
    rc = Counter("t_tokens", "doc", ["model", "kind"], registry=ref)
    for i, v in enumerate(values):
        model = "a" if i % 3 else "b"
        fh.observe(v, model)
        rh.labels(model).observe(v)
        fc.inc(model, "prompt", amount=i)
        rc.labels(model, "prompt").inc(i)
    assert series(ours, "t_seconds") == series(ref, "t_seconds")
    assert series(ours, "t_tokens") == series(ref, "t_tokens")
    assert any('le="0.005"' in line for line in series(ours, "t_seconds_bucket"))  # boundary values counted inclusive
