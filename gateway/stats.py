"""The gateway's own Prometheus metrics, in a registry owned by the app (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_ROUTING_BUCKETS = tuple(10e-6 * 2 ** i for i in range(15))  # 10 µs .. 164 ms


class GatewayStats:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter("brix_gateway_requests", "Requests answered, by model, strategy, endpoint and HTTP status",
                                ["model", "strategy", "endpoint", "status"], registry=r)
        self.routing_latency = Histogram("brix_gateway_routing_decision_seconds",
                                         "Time to choose an endpoint (filters, scorers, pick)",
                                         buckets=_ROUTING_BUCKETS, registry=r)
        self.ttft = Histogram("brix_gateway_time_to_first_token_seconds",
                              "Time from request arrival to the first response byte, as the client sees it",
                              ["model"], buckets=_LATENCY_BUCKETS, registry=r)
        self.e2e = Histogram("brix_gateway_request_duration_seconds",
                             "Time from request arrival to the last response byte", ["model"],
                             buckets=_LATENCY_BUCKETS, registry=r)
        self.prefix_blocks = Counter("brix_gateway_prefix_blocks",
                                     "Prompt blocks of prefix-cache-aware decisions (ratio = matched/total)",
                                     ["model", "kind"], registry=r)
        self.prefix_imbalanced = Counter("brix_gateway_prefix_load_imbalance",
                                         "prefix-cache-aware decisions overridden by the load-imbalance guard",
                                         registry=r)
        self.retries = Counter("brix_gateway_upstream_retries", "Requests retried on another endpoint after a "
                               "connect failure", ["endpoint"], registry=r)
        self.rate_limited = Counter("brix_gateway_rate_limited", "Requests refused with 429", ["limit"], registry=r)
        self.tokens = Counter("brix_gateway_tokens", "Tokens seen in responses (usage)", ["model", "kind"], registry=r)
        self.in_flight = Gauge("brix_gateway_in_flight_requests", "Requests in flight to each endpoint",
                               ["endpoint"], registry=r)
        self.ready_endpoints = Gauge("brix_gateway_ready_endpoints", "Endpoints that are ready", registry=r)
        self._children: dict[tuple[object, ...], object] = {}

    def child(self, metric, *labels: str):  # type: ignore[no-untyped-def]
        """metric.labels(*labels), cached: prometheus-client's lookup costs a few µs per call."""
        key = (id(metric), *labels)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = metric.labels(*labels)
        return c
