"""least-latency: lowest estimated latency for a new request (AIBrix formula).

estimate = mean queue time + mean prefill time / avg prompt tokens * guess_prompt
         + mean decode time / avg generation tokens * guess_gen
where guess_prompt / guess_gen are the mean of the candidates' average prompt / generation
lengths (defaults 10 and 100 when no engine has finished a request yet). Endpoints whose
histograms are empty estimate from the queue alone, and in-flight requests break ties.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.routing.api import Category, as_float, check_params, least
from gateway.routing.model import EndpointState, RoutingContext, RoutingRequest

TYPE = "least-latency"


@dataclass
class LeastLatencyScorer:
    name: str = TYPE
    default_prompt_tokens: float = 10.0
    default_generation_tokens: float = 100.0
    category: Category = "balance"
    needs_prompt: bool = False

    def estimate(self, e: EndpointState, guess_prompt: float, guess_gen: float) -> float:
        m = e.metrics
        queue = m.queue_time_sum / m.queue_time_count if m.queue_time_count else 0.0
        prefill = m.prefill_time_sum / m.prefill_time_count if m.prefill_time_count else 0.0
        decode = m.decode_time_sum / m.decode_time_count if m.decode_time_count else 0.0
        per_prompt_tok = prefill / m.avg_prompt_tokens if m.avg_prompt_tokens else 0.0
        per_gen_tok = decode / m.avg_generation_tokens if m.avg_generation_tokens else 0.0
        return queue + per_prompt_tok * guess_prompt + per_gen_tok * guess_gen

    def score(self, ctx: RoutingContext, request: RoutingRequest,
              endpoints: Sequence[EndpointState]) -> dict[str, float]:
        prompts = [e.metrics.avg_prompt_tokens for e in endpoints if e.metrics.avg_prompt_tokens]
        gens = [e.metrics.avg_generation_tokens for e in endpoints if e.metrics.avg_generation_tokens]
        guess_prompt = sum(prompts) / len(prompts) if prompts else self.default_prompt_tokens
        guess_gen = sum(gens) / len(gens) if gens else self.default_generation_tokens
        # in-flight count as a tiny tie-breaker so cold engines with no history still spread
        return least({e.id: self.estimate(e, guess_prompt, guess_gen) + 1e-6 * e.in_flight for e in endpoints})


def from_params(name: str, raw: dict[str, object] | None) -> LeastLatencyScorer:
    p = check_params(TYPE, raw, ["default_prompt_tokens", "default_generation_tokens"])
    scorer = LeastLatencyScorer(name=name,
                                default_prompt_tokens=as_float(p, "default_prompt_tokens", 10.0),
                                default_generation_tokens=as_float(p, "default_generation_tokens", 100.0))
    if scorer.default_prompt_tokens <= 0 or scorer.default_generation_tokens <= 0:
        raise ValueError(f"{TYPE}: default_prompt_tokens and default_generation_tokens must be > 0")
    return scorer
