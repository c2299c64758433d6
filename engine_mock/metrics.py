"""vLLM's Prometheus metrics, every value taken from the simulated engine.

A custom collector on a per-process CollectorRegistry: gauges and counters are read from the
engine when /metrics is scraped, histograms are cheap bucket arrays filled once per engine
step (no per-request label lookups, no locks on the hot path).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from engine_mock.model import Step

if TYPE_CHECKING:
    from engine_mock.scheduler import Engine

# Bucket bounds as vLLM (v0.10, vllm/v1/metrics/loggers.py) declares them.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0)
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                   240.0, 480.0, 960.0, 1920.0, 7680.0)


def one_two_five_buckets(limit: int) -> tuple[float, ...]:
    out: list[float] = []
    mag = 1
    while True:
        for m in (1, 2, 5):
            if m * mag > limit:
                return tuple(out)
            out.append(float(m * mag))
        mag *= 10


class Hist:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        out = []
        acc = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            acc += count
            out.append((_fmt(bound), float(acc)))
        out.append(("+Inf", float(acc + self.counts[-1])))
        return out


def _fmt(bound: float) -> str:
    return repr(float(bound))


class EngineMetrics(Collector):
    """Collects vllm:* from an Engine; call `record(step)` after every engine step."""

    def __init__(self, engine: Engine, model_name: str, max_loras: int, max_model_len: int,
                 sim_now: Callable[[], float]) -> None:
        self.engine = engine
        self.model_name = model_name
        self.max_loras = max_loras
        self.sim_now = sim_now
        self.ttft = Hist(TTFT_BUCKETS)
        self.tpot = Hist(TPOT_BUCKETS)
        self.itl = Hist(TPOT_BUCKETS)
        self.e2e = Hist(LATENCY_BUCKETS)
        self.queue = Hist(LATENCY_BUCKETS)
        self.prefill = Hist(LATENCY_BUCKETS)
        self.decode = Hist(LATENCY_BUCKETS)
        tokens = one_two_five_buckets(max_model_len)
        self.prompt_tokens = Hist(tokens)
        self.gen_tokens = Hist(tokens)
        self.iteration_tokens = Hist(one_two_five_buckets(16384))
        # not a vLLM metric: how late (wall seconds) the event loop delivered each step's tokens
        self.lateness = Hist((0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1))
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def record(self, step: Step) -> None:
        if step.empty:
            return
        self.iteration_tokens.observe(step.prefill_tokens + step.decode_tokens)
        itl = self.itl
        for gap in step.itl:
            itl.observe(gap)
        for req in step.emitted:
            if req.num_generated == 1 and req.first_token == step.end:
                self.ttft.observe(step.end - req.arrival)
        for req in step.finished:
            first = req.first_token or step.end
            sched = req.first_scheduled if req.first_scheduled is not None else req.arrival
            self.e2e.observe(step.end - req.arrival)
            self.queue.observe(sched - req.arrival)
            self.prefill.observe(first - sched)
            self.decode.observe(step.end - first)
            if req.num_generated > 1:
                self.tpot.observe((step.end - first) / (req.num_generated - 1))
            self.prompt_tokens.observe(req.prompt_len)
            self.gen_tokens.observe(req.num_generated)

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        eng = self.engine
        c = eng.counters
        label = ["model_name"]
        value = [self.model_name]

        def gauge(name: str, doc: str, v: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=label)
            g.add_metric(value, v)
            return g

        def counter(name: str, doc: str, v: float) -> CounterMetricFamily:
            m = CounterMetricFamily(name, doc, labels=label)
            m.add_metric(value, v)
            return m

        yield gauge("vllm:num_requests_running", "Number of requests in model execution batches.", len(eng.running))
        yield gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", len(eng.waiting))
        yield gauge("vllm:num_requests_swapped", "Number of swapped requests (always 0: preemption recomputes).", 0)
        usage = eng.kv.usage()
        yield gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", usage)
        yield gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", usage)
        yield gauge("vllm:cpu_cache_usage_perc", "CPU KV-cache usage (no CPU offload: 0).", 0.0)
        lora = GaugeMetricFamily("vllm:lora_requests_info", "Running stats on lora requests.",
                                 labels=["max_lora", "running_lora_adapters", "waiting_lora_adapters"])
        lora.add_metric([str(self.max_loras), ",".join(eng.running_loras()), ",".join(eng.waiting_loras())],
                        time.time())
        yield lora
        cfg = GaugeMetricFamily("vllm:cache_config_info", "Information of the LLMEngine CacheConfig.",
                                labels=["block_size", "cache_dtype", "enable_prefix_caching", "gpu_memory_utilization",
                                        "num_cpu_blocks", "num_gpu_blocks"])
        cfg.add_metric([str(eng.kv.block_size), "auto", "True", "0.9", "0", str(eng.kv.num_blocks)], 1.0)
        yield cfg
        yield counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
                      c.prefix_queries)
        yield counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
                      c.prefix_hits)
        yield counter("vllm:prompt_tokens", "Number of prefill tokens processed.", c.prompt_tokens)
        yield counter("vllm:generation_tokens", "Number of generation tokens processed.", c.generation_tokens)
        yield counter("vllm:num_preemptions", "Cumulative number of preemptions from the engine.", c.preemptions)
        success = CounterMetricFamily("vllm:request_success", "Count of successfully processed requests.",
                                      labels=["finished_reason", "model_name"])
        success.add_metric(["length", self.model_name], c.success)
        yield success
        for name, doc, hist in (
            ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", self.ttft),
            ("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.", self.tpot),
            ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", self.itl),
            ("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", self.e2e),
            ("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.",
             self.queue),
            ("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.",
             self.prefill),
            ("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.",
             self.decode),
            ("vllm:request_prompt_tokens", "Number of prefill tokens processed.", self.prompt_tokens),
            ("vllm:request_generation_tokens", "Number of generation tokens processed.", self.gen_tokens),
            ("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
             self.iteration_tokens),
            ("engine_mock:step_lateness_seconds", "Wall seconds between a simulated step's end and the"
             " delivery of its tokens (event-loop and OS scheduling delay; not a vLLM metric).", self.lateness),
        ):
            h = HistogramMetricFamily(name, doc, labels=label)
            h.add_metric(value, hist.buckets(), hist.sum)
            yield h
