"""The gateway's own Prometheus metrics, in a registry owned by the app (no globals).

The series updated on every request (requests, routing decision time, TTFT, duration, tokens,
prefix blocks) are plain dicts and lists exported by a collector when /metrics is read:
prometheus-client's Counter and Histogram take a lock and walk the buckets in Python on every
update, which was a measurable share of the gateway's per-request cost. The gateway updates
them from its one event-loop thread only. Rare events (retries, 429s, ...) keep
prometheus-client's own metric types.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from brix.histogram import Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_ROUTING_BUCKETS = tuple(10e-6 * 2 ** i for i in range(15))  # 10 µs .. 164 ms


class FastCounter:
    """A labelled counter: `inc(*label_values, amount=1)`."""

    def __init__(self, name: str, doc: str, labelnames: Sequence[str]) -> None:
        self.name, self.doc, self.labelnames = name, doc, list(labelnames)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount

    def family(self) -> Metric:
        fam = CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
        for labels, value in self.values.items():
            fam.add_metric(list(labels), value)
        return fam


class FastHistogram:
    """A labelled histogram: `observe(value, *label_values)`, one brix.histogram.Histogram per label set."""

    def __init__(self, name: str, doc: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.doc, self.labelnames = name, doc, list(labelnames)
        self.buckets = tuple(buckets)
        self.series: dict[tuple[str, ...], Histogram] = {}

    def observe(self, value: float, *labels: str) -> None:
        h = self.series.get(labels)
        if h is None:
            h = self.series[labels] = Histogram(self.buckets)
        h.observe(value)

    def family(self) -> Metric:
        fam = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        for labels, h in self.series.items():
            fam.add_metric(list(labels), list(zip(h.le_labels(), h.cumulative(), strict=True)), h.sum)
        return fam


class _Collector:
    def __init__(self, metrics: list[FastCounter | FastHistogram]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for m in self.metrics:
            yield m.family()


class GatewayStats:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = FastCounter("brix_gateway_requests",
                                    "Requests answered, by model, strategy, endpoint and HTTP status",
                                    ["model", "strategy", "endpoint", "status"])
        self.routing_latency = FastHistogram("brix_gateway_routing_decision_seconds",
                                             "Time to choose an endpoint (filters, scorers, pick)", [], _ROUTING_BUCKETS)
        self.ttft = FastHistogram("brix_gateway_time_to_first_token_seconds",
                                  "Time from request arrival to the first response byte, as the client sees it",
                                  ["model"], _LATENCY_BUCKETS)
        self.e2e = FastHistogram("brix_gateway_request_duration_seconds",
                                 "Time from request arrival to the last response byte", ["model"], _LATENCY_BUCKETS)
        self.prefix_blocks = FastCounter("brix_gateway_prefix_blocks",
                                         "Prompt blocks of prefix-cache-aware decisions (ratio = matched/total)",
                                         ["model", "kind"])
        self.tokens = FastCounter("brix_gateway_tokens", "Tokens seen in responses (usage)", ["model", "kind"])
        r.register(_Collector([self.requests, self.routing_latency, self.ttft, self.e2e, self.prefix_blocks,
                               self.tokens]))
        self.prefix_imbalanced = Counter("brix_gateway_prefix_load_imbalance",
                                         "prefix-cache-aware decisions overridden by the load-imbalance guard",
                                         registry=r)
        self.retries = Counter("brix_gateway_upstream_retries", "Requests retried on another endpoint after a "
                               "connect failure", ["endpoint"], registry=r)
        self.rate_limited = Counter("brix_gateway_rate_limited", "Requests refused with 429", ["limit"], registry=r)
        self.in_flight = Gauge("brix_gateway_in_flight_requests", "Requests in flight to each endpoint",
                               ["endpoint"], registry=r)
        self.held = Gauge("brix_gateway_held_requests", "Requests waiting for a Ready endpoint of their model "
                          "(scale from zero; --hold-timeout)", ["model"], registry=r)
        self.ready_endpoints = Gauge("brix_gateway_ready_endpoints", "Endpoints that are ready", registry=r)
