"""GPU profiles: the coefficients of engine_mock's step-time model.

One engine step (a continuous-batching iteration) takes, in simulated seconds:

    step = overhead + max(weights_s, tokens_w * flop_s_per_token) + ctx_tokens * kv_s_per_token

- `weights_s`: streaming the fp16 weights once per step (memory bound): W / (BW * eta_bw).
- `flop_s_per_token`: 2 * params FLOPs per scheduled token (prefill and decode tokens alike),
  at a model FLOPs utilisation `mfu`: 2P / (TFLOPS * mfu). `tokens_w` weights adapter (LoRA)
  tokens by 1 + lora_overhead.
- `kv_s_per_token`: reading one token's K and V for attention during decode: KV / (BW * eta_bw),
  times the context length of every decoding sequence in the batch (`ctx_tokens`).

The max() is a roofline: small batches are memory bound (a decode step costs about the weight
read), large prefills are compute bound (cost grows with uncached prompt tokens).

Built-in numbers model Llama-2-7B in fp16 (P = 6.74e9 parameters, W = 13.5 GB, KV = 2 * 32
layers * 4096 hidden * 2 bytes = 512 KiB per token) on one GPU. Sources:
- memory and bandwidth, dense fp16 tensor TFLOPS: NVIDIA data sheets — A10 24 GB, 600 GB/s,
  125 TFLOPS; L20 48 GB, 864 GB/s, 119.5 TFLOPS; A100 SXM 80 GB, 2039 GB/s, 312 TFLOPS;
  H100 SXM 80 GB, 3350 GB/s, 989 TFLOPS.
- eta_bw = 0.75 (achieved/peak HBM bandwidth of decode GEMV kernels) and mfu = 0.5 (prefill
  model FLOPs utilisation): engine-mock assumptions in the range reported for vLLM/FlashAttention
  kernels, not measurements. overhead = 1 ms per step for scheduling and kernel launches
  (assumption). lora_overhead = 0.1 (adapter tokens cost 10 % more compute; assumption in line
  with Punica/S-LoRA's reported single-digit to ~20 % overheads).
- KV blocks: (memory * 0.9 gpu_memory_utilization - W - 1 GiB activations) / (block_size * KV),
  vLLM's own sizing rule.
- max_num_batched_tokens: vLLM V1 defaults for the OpenAI server, 2048 on smaller GPUs and
  8192 on A100/H100 class GPUs.

`load_aibrix_profile` instead fits the coefficients to an AIBrix GPU-optimizer profile JSON
(the `tputs[out][in]` saturation throughput matrix over `indexes`), see README.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

KV_BYTES_PER_TOKEN = 2 * 32 * 4096 * 2  # Llama-2-7B, fp16
WEIGHT_BYTES = 13.5e9
FLOPS_PER_TOKEN = 2 * 6.74e9
ETA_BW = 0.75
MFU = 0.5
GIB = 1024**3


@dataclass(frozen=True)
class Profile:
    """Coefficients of one GPU type (times in simulated seconds)."""

    name: str
    overhead_s: float
    weights_s: float
    flop_s_per_token: float
    kv_s_per_token: float
    memory_bytes: float
    max_num_batched_tokens: int = 2048
    lora_overhead: float = 0.1
    max_model_len: int = 4096
    source: str = "built-in"

    def step_time(self, tokens_weighted: float, ctx_tokens: int) -> float:
        compute = tokens_weighted * self.flop_s_per_token
        return self.overhead_s + (compute if compute > self.weights_s else self.weights_s) \
            + ctx_tokens * self.kv_s_per_token

    def kv_blocks(self, block_size: int) -> int:
        free = self.memory_bytes * 0.9 - WEIGHT_BYTES - GIB
        return max(16, int(free // (block_size * KV_BYTES_PER_TOKEN)))


def _builtin(name: str, memory_gb: float, bw_gbs: float, tflops: float, batched: int) -> Profile:
    return Profile(
        name=name,
        overhead_s=0.001,
        weights_s=WEIGHT_BYTES / (bw_gbs * 1e9 * ETA_BW),
        flop_s_per_token=FLOPS_PER_TOKEN / (tflops * 1e12 * MFU),
        kv_s_per_token=KV_BYTES_PER_TOKEN / (bw_gbs * 1e9 * ETA_BW),
        memory_bytes=memory_gb * 1e9,
        max_num_batched_tokens=batched,
    )


BUILTIN: dict[str, Profile] = {
    "A10": _builtin("A10", 24, 600, 125, 2048),
    "L20": _builtin("L20", 48, 864, 119.5, 2048),
    "A100": _builtin("A100", 80, 2039, 312, 8192),
    "H100": _builtin("H100", 80, 3350, 989, 8192),
}


class ProfileError(ValueError):
    """A profile file that cannot be used; the message names the file and the problem."""


def builtin(gpu_type: str) -> Profile:
    try:
        return BUILTIN[gpu_type.upper()]
    except KeyError:
        raise ProfileError(f"unknown --gpu-type {gpu_type!r}; built-in types are {', '.join(BUILTIN)}") from None


# The through-origin fit of 1/tputs for the AIBrix A100 profile of Llama-2-7B gives 1.00 ms of GPU
# time per output token; we equate that operating point with the built-in A100 coefficients, so
# a profile whose fitted per-output-token cost is k ms gets decode coefficients k times A100's.
AIBRIX_A100_DECODE_S = 1.0e-3


def load_aibrix_profile(path: Path, base: Profile) -> Profile:
    """Fit prefill and decode cost to an AIBrix GPU-optimizer profile JSON.

    The file holds `indexes = [outputs, inputs]` and `tputs[i][j]`, the highest request rate
    that meets the SLO for requests of outputs[i] output and inputs[j] input tokens (0 where
    none does). At that rate the GPU is saturated, so 1/tputs is GPU seconds per request; a
    least-squares fit 1/tputs ~ b*in + c*out over the non-zero cells gives b, seconds per
    prompt token (used as `flop_s_per_token`), and c, seconds per output token (decode weight
    and KV read times are the built-in A100's scaled by c / 1.00 ms). Memory, KV sizing and
    batch limits come from `base` (--gpu-type).
    """
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ProfileError(f"profile {path} is not JSON ({exc}); expected an AIBrix profile .json file") from None
    if not isinstance(doc, dict) or "tputs" not in doc or "indexes" not in doc:
        raise ProfileError(f"profile {path}: expected an AIBrix GPU profile object with keys 'indexes' and 'tputs'")
    try:
        outputs, inputs = doc["indexes"]
        rows = [(float(i), float(o), float(doc["tputs"][r][c]))
                for r, o in enumerate(outputs) for c, i in enumerate(inputs)]
    except (ValueError, TypeError, IndexError) as exc:
        raise ProfileError(f"profile {path}: 'indexes' must be [outputs, inputs] matching 'tputs' ({exc})") from None
    rows = [(i, o, 1.0 / t) for i, o, t in rows if t > 0 and math.isfinite(t)]
    if len(rows) < 2:
        raise ProfileError(f"profile {path}: fewer than 2 non-zero tputs cells, cannot fit a latency model")
    b, c = _least_squares(rows)
    if b <= 0 or c <= 0:
        raise ProfileError(f"profile {path}: fitted costs are not positive (per prompt token {b:.3g} s,"
                           f" per output token {c:.3g} s); is 'indexes' in the order [outputs, inputs]?")
    a100 = BUILTIN["A100"]
    scale = c / AIBRIX_A100_DECODE_S
    return replace(
        base,
        name=str(doc.get("gpu", Path(path).stem)),
        weights_s=a100.weights_s * scale,
        kv_s_per_token=a100.kv_s_per_token * scale,
        flop_s_per_token=b,
        source=str(path),
    )


def _least_squares(rows: list[tuple[float, float, float]]) -> tuple[float, float]:
    import numpy as np

    matrix = np.array([[i, o] for i, o, _ in rows])
    target = np.array([g for _, _, g in rows])
    coef, *_ = np.linalg.lstsq(matrix, target, rcond=None)
    return float(coef[0]), float(coef[1])
