"""lora-affinity: prefer endpoints where the requested LoRA adapter is already loaded.

Scores (as GIE's lora-affinity-scorer): 1.0 adapter running there, 0.8 not loaded but a free
LoRA slot (running adapters < max_lora), 0.6 adapter waiting to load there, 0.0 no slot.
Inputs: vllm:lora_requests_info{running_lora_adapters, waiting_lora_adapters, max_lora}.
For a base-model request (not an adapter of any endpoint's list) every endpoint scores 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.routing.api import Category, check_params
from gateway.routing.model import EndpointState, RoutingContext, RoutingRequest

TYPE = "lora-affinity"


@dataclass
class LoraAffinityScorer:
    name: str = TYPE
    category: Category = "affinity"
    needs_prompt: bool = False

    def score(self, ctx: RoutingContext, request: RoutingRequest,
              endpoints: Sequence[EndpointState]) -> dict[str, float]:
        adapter = request.model
        scores: dict[str, float] = {}
        for e in endpoints:
            m = e.metrics
            if m.max_lora <= 0 and not m.running_lora_adapters and not m.waiting_lora_adapters:
                scores[e.id] = 1.0          # engine without LoRA metrics: no information
            elif adapter in m.running_lora_adapters:
                scores[e.id] = 1.0
            elif len(m.running_lora_adapters) < m.max_lora:
                scores[e.id] = 0.8
            elif adapter in m.waiting_lora_adapters:
                scores[e.id] = 0.6
            else:
                scores[e.id] = 0.0
        return scores


def from_params(name: str, raw: dict[str, object] | None) -> LoraAffinityScorer:
    check_params(TYPE, raw, [])
    return LoraAffinityScorer(name=name)
