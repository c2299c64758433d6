"""vLLM's Prometheus metrics, every value taken from the simulated engine.

Gauges and counters are read from the engine when /metrics is scraped; histograms are cheap
bucket arrays filled once per engine step (no per-request label lookups, no locks on the hot
path). `render()` writes the Prometheus text format (0.0.4) itself, from lines prepared once
with everything but the values: prometheus-client's generic exposition took 2.3 ms per scrape,
and a gateway scraping every 100 ms made every request that arrived meanwhile wait for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client.utils import floatToGoString

from brix.histogram import Histogram
from engine_mock.model import Step

if TYPE_CHECKING:
    from engine_mock.engine import Engine

# Bucket bounds as vLLM (v0.10, vllm/v1/metrics/loggers.py) declares them.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0)
# vllm:iteration_tokens_total in vLLM v1 (fixed; v0 used the CUDA-graph capture sizes)
ITERATION_TOKEN_BUCKETS = (1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
                           16384.0)
PARAMS_N_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0)
ENGINE_INDEX = "0"  # vLLM v1 labels every series with its engine core's index; one core here
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


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _head(name: str, doc: str, kind: str) -> str:
    return f"# HELP {name} {doc.replace(chr(92), chr(92) * 2)}\n# TYPE {name} {kind}\n"


class EngineMetrics:
    """Collects vllm:* from an Engine; call `record(step)` after every engine step."""

    def __init__(self, engine: Engine, model_name: str, max_loras: int, max_model_len: int,
                 sim_now: Callable[[], float], v0_metrics: bool = False) -> None:
        self.engine = engine
        self.model_name = model_name
        self.max_loras = max_loras
        self.sim_now = sim_now
        self.v0_metrics = v0_metrics
        self.ttft = Histogram(TTFT_BUCKETS)
        self.tpot = Histogram(TPOT_BUCKETS)
        self.itl = Histogram(TPOT_BUCKETS)
        self.e2e = Histogram(LATENCY_BUCKETS)
        self.queue = Histogram(LATENCY_BUCKETS)
        self.prefill = Histogram(LATENCY_BUCKETS)
        self.decode = Histogram(LATENCY_BUCKETS)
        self.inference = Histogram(LATENCY_BUCKETS)
        tokens = one_two_five_buckets(max_model_len)
        self.prompt_tokens = Histogram(tokens)
        self.gen_tokens = Histogram(tokens)
        self.max_gen_tokens = Histogram(tokens)
        self.params_max_tokens = Histogram(tokens)
        self.params_n = Histogram(PARAMS_N_BUCKETS)
        self.iteration_tokens = Histogram(ITERATION_TOKEN_BUCKETS)
        # not a vLLM metric: how late (wall seconds) the event loop delivered each step's tokens
        self.lateness = Histogram((0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1))
        # not a vLLM metric (vLLM labels every series with the base model's served name and has no
        # per-adapter request count): requests admitted per LoRA adapter, for rate-aware placement
        self.lora_requests: dict[str, int] = {}
        self._layout()

    def lora_arrived(self, lora: str) -> None:
        self.lora_requests[lora] = self.lora_requests.get(lora, 0) + 1

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
            self.inference.observe(step.end - sched)
            self.params_n.observe(1)  # engine-mock serves n=1 only
            self.params_max_tokens.observe(req.max_tokens)
            self.max_gen_tokens.observe(req.num_generated)  # the longest of the request's n sequences
            if req.num_generated > 1:
                self.tpot.observe((step.end - first) / (req.num_generated - 1))
            self.prompt_tokens.observe(req.prompt_len)
            self.gen_tokens.observe(req.num_generated)

    def _layout(self) -> None:
        """Everything of the exposition but the values, in scrape order."""
        # labels in prometheus-client's (sorted) order: engine, then model_name
        model = f'engine="{ENGINE_INDEX}",model_name="{_escape(self.model_name)}"'
        eng = self.engine
        c = eng.counters

        def scalar(name: str, doc: str, kind: str, value: Callable[[], float]) -> tuple[str, Callable[[], float]]:
            full = name + "_total" if kind == "counter" else name
            return _head(full, doc, kind) + f"{full}{{{model}}} ", value

        self._gauges = [
            scalar("vllm:num_requests_running", "Number of requests in model execution batches.", "gauge",
                   lambda: len(eng.running)),
            scalar("vllm:num_requests_waiting", "Number of requests waiting to be processed.", "gauge",
                   lambda: len(eng.waiting)),
            scalar("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", "gauge", eng.kv.usage),
            scalar("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", "gauge",
                   eng.kv.usage),
        ]
        if self.v0_metrics:  # series only vLLM's v0 engine exported (--v0-metrics)
            self._gauges += [
                scalar("vllm:num_requests_swapped", "Number of swapped requests (always 0: preemption recomputes).",
                       "gauge", lambda: 0),
                scalar("vllm:cpu_cache_usage_perc", "CPU KV-cache usage (no CPU offload: 0).", "gauge",
                       lambda: 0.0),
            ]
        self._lora_head = _head("vllm:lora_requests_info", "Running stats on lora requests.", "gauge")
        self._lora_counter_head = _head("engine_mock_lora_requests_total", "Requests admitted per LoRA adapter"
                                        " (not a vLLM metric; counts survive an unload).", "counter")
        self._cache_config = (
            _head("vllm:cache_config_info", "Information of the LLMEngine CacheConfig.", "gauge")
            + f'vllm:cache_config_info{{block_size="{eng.kv.block_size}",cache_dtype="auto",'
              f'enable_prefix_caching="True",gpu_memory_utilization="0.9",num_cpu_blocks="0",'
              f'num_gpu_blocks="{eng.kv.num_blocks}"}} 1.0\n')
        self._counters = [
            scalar("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
                   "counter", lambda: c.prefix_queries),
            scalar("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", "counter",
                   lambda: c.prefix_hits),
            scalar("vllm:prompt_tokens", "Number of prefill tokens processed.", "counter", lambda: c.prompt_tokens),
            scalar("vllm:generation_tokens", "Number of generation tokens processed.", "counter",
                   lambda: c.generation_tokens),
            scalar("vllm:num_preemptions", "Cumulative number of preemptions from the engine.", "counter",
                   lambda: c.preemptions),
        ]
        self._success = (_head("vllm:request_success_total", "Count of successfully processed requests.", "counter")
                         + f'vllm:request_success_total{{engine="{ENGINE_INDEX}",finished_reason="length",'
                           f'model_name="{_escape(self.model_name)}"}} ')
        self._hists = []
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
            ("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.",
             self.inference),
            ("vllm:request_prompt_tokens", "Number of prefill tokens processed.", self.prompt_tokens),
            ("vllm:request_generation_tokens", "Number of generation tokens processed.", self.gen_tokens),
            ("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
             self.iteration_tokens),
            ("vllm:request_max_num_generation_tokens", "Histogram of maximum number of requested generation tokens.",
             self.max_gen_tokens),
            ("vllm:request_params_n", "Histogram of the n request parameter.", self.params_n),
            ("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.",
             self.params_max_tokens),
            ("engine_mock_step_lateness_seconds", "Wall seconds between a simulated step's end and the"
             " delivery of its tokens (event-loop and OS scheduling delay; not a vLLM metric).", self.lateness),
        ):
            # label order as prometheus-client writes it (sorted): engine, le, model_name
            buckets = [f'{name}_bucket{{engine="{ENGINE_INDEX}",le="{le}",model_name="{_escape(self.model_name)}"}} '
                       for le in hist.le_labels()]
            self._hists.append((_head(name, doc, "histogram"), buckets, f"{name}_count{{{model}}} ",
                                f"{name}_sum{{{model}}} ", hist))

    def render(self) -> bytes:
        """The /metrics page (Prometheus text format 0.0.4)."""
        fmt: Callable[[float], str] = floatToGoString
        out: list[str] = []
        add = out.append
        for prefix, value in self._gauges:
            add(f"{prefix}{fmt(value())}\n")
        eng = self.engine
        add(self._lora_head)
        add(f'vllm:lora_requests_info{{max_lora="{self.max_loras}",'
            f'running_lora_adapters="{_escape(",".join(eng.running_loras()))}",'
            f'waiting_lora_adapters="{_escape(",".join(eng.waiting_loras()))}"}} {fmt(time.time())}\n')
        add(self._cache_config)
        if self.lora_requests:
            add(self._lora_counter_head)
            for name, n in sorted(self.lora_requests.items()):
                add(f'engine_mock_lora_requests_total{{engine="{ENGINE_INDEX}",lora_name="{_escape(name)}"}} '
                    f'{fmt(n)}\n')
        for prefix, value in self._counters:
            add(f"{prefix}{fmt(value())}\n")
        add(f"{self._success}{fmt(eng.counters.success)}\n")
        for head, buckets, count, total, hist in self._hists:
            add(head)
            cumulative = hist.cumulative()
            for line, n in zip(buckets, cumulative, strict=True):
                add(f"{line}{fmt(n)}\n")
            add(f"{count}{fmt(cumulative[-1])}\n{total}{fmt(hist.sum)}\n")
        return "".join(out).encode()
