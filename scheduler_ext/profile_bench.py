"""`brix profile`, I/O: open-loop load against an engine's OpenAI API, latencies from its /metrics.

One trial sends `n` requests of exactly `prompt_tokens` prompt token ids (random, so no prefix is
shared) and `completion_tokens` completion tokens (`max_tokens` with vLLM's `ignore_eos`) at
Poisson arrivals of `rate` requests per engine second, waits for every answer, and reads the
engine's latency histograms before and after. `time_scale` is how many engine seconds pass per
wall second (engine-mock's `--speed`; 1 for a real engine): arrivals are sent that much faster.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from brix.logs import kv
from scheduler_ext.profiling import (
    METRIC_HISTOGRAM,
    RateSearch,
    parse_histograms,
    profile_doc,
    slo_met,
    slo_results,
)

log = logging.getLogger(__name__)


class ProfileError(RuntimeError):
    """The engine cannot be profiled as asked (unreachable, refuses the requests, too slow a client)."""


@dataclass(frozen=True)
class ProfileSettings:
    engine: str
    """Base URL of the engine's OpenAI API (and /metrics)."""
    gpu_type: str
    """The profile's gpu: the GPU type name the optimizer and the extender match nodes by."""
    slo: dict[str, float]
    """`ttft_p99` -> seconds; a rate passes when every entry holds."""
    cost: float
    """Price of one replica per hour (dollars)."""
    inputs: tuple[int, ...]
    """Prompt-token ticks of the grid (indexes[1])."""
    outputs: tuple[int, ...]
    """Completion-token ticks of the grid (indexes[0])."""
    out: Path
    model: str | None = None
    """Model to request; None = the first of the engine's /v1/models."""
    time_scale: float = 1.0
    """Engine seconds per wall second (engine-mock --speed)."""
    trial_seconds: float = 30.0
    """Engine seconds of arrivals per trial, at least; longer where a request alone takes long (settle)."""
    settle: float = 8.0
    """A trial's arrivals span at least this many times the e2e latency of a request alone: a rate
    over the engine's capacity shows only once the batch has filled the KV cache (vLLM admits a
    request when its prompt fits, so TTFT stays low for a while after the decodes have fallen
    behind); a trial of a few hundred requests at a high rate ends before that."""
    min_requests: int = 20
    max_requests: int = 5000
    """A guard: a trial that would need more requests fails (raise it, or lower --trial-seconds)."""
    precision: float = 0.1
    seed: int = 0
    request_timeout_s: float = 600.0


@dataclass(frozen=True)
class TrialResult:
    measured: dict[str, float]
    ok: bool
    lag: float   # wall time the arrivals took / the planned time (1.0 = on schedule)


async def _get(session: aiohttp.ClientSession, url: str) -> str:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            text = await resp.text()
            if resp.status != 200:
                raise ProfileError(f"GET {url}: HTTP {resp.status}: {text[:200]}")
            return text
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ProfileError(f"GET {url}: {exc!r}; is the engine running at --engine?") from None


async def first_model(session: aiohttp.ClientSession, base: str) -> str:
    import json

    try:
        doc = json.loads(await _get(session, f"{base}/v1/models"))
        return str(doc["data"][0]["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise ProfileError(f"GET {base}/v1/models did not list a model; give --model") from None


def trial_requests(s: ProfileSettings, rate: float, e2e_alone: float) -> int:
    """Requests in a trial at `rate`: arrivals over max(trial_seconds, settle x e2e alone) engine seconds."""
    span = max(s.trial_seconds, s.settle * e2e_alone)
    n = max(s.min_requests, math.ceil(rate * span))
    if n > s.max_requests:
        raise ProfileError(f"a trial at {rate:g} req/s needs {n} requests (over {span:g} engine seconds), more than "
                           f"--max-requests {s.max_requests}; raise --max-requests")
    return n


async def trial(session: aiohttp.ClientSession, s: ProfileSettings, model: str, prompt_tokens: int,
                completion_tokens: int, rate: float, rng: random.Random, sequential: int = 0,
                e2e_alone: float = 0.0) -> TrialResult:
    """`rate` requests/s for a trial; or, with `sequential` = n, n requests one after the other (the
    latency of a request alone, and its e2e time as `e2e_mean`)."""
    names = {METRIC_HISTOGRAM[k.partition("_")[0]] for k in s.slo} | {METRIC_HISTOGRAM["e2e"]}
    n = sequential or trial_requests(s, rate, e2e_alone)
    before = parse_histograms(await _get(session, f"{s.engine}/metrics"), names)
    loop = asyncio.get_running_loop()
    gaps = [0.0] * n if sequential else [rng.expovariate(rate) / s.time_scale for _ in range(n)]
    failures: list[str] = []

    async def one(k: int) -> None:
        base = bases[k]
        prompt = [100 + (base + j * 7919) % 29900 for j in range(prompt_tokens)]
        body = {"model": model, "prompt": prompt, "max_tokens": completion_tokens,
                "ignore_eos": True, "temperature": 0.0}
        try:
            async with session.post(f"{s.engine}/v1/completions", json=body,
                                    timeout=aiohttp.ClientTimeout(total=s.request_timeout_s)) as resp:
                text = await resp.read()
                if resp.status != 200:
                    failures.append(f"HTTP {resp.status}: {text[:300].decode(errors='replace')}")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            failures.append(repr(exc))

    bases = [rng.randrange(1 << 30) for _ in range(n)]   # distinct prompts: no prefix is shared
    tasks = []
    start = loop.time()
    due = start
    for k, gap in enumerate(gaps):
        if sequential:
            await one(k)
            continue
        due += gap
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k)))
    sent = loop.time() - start
    await asyncio.gather(*tasks)
    if failures:
        raise ProfileError(f"{len(failures)} of {n} requests ({prompt_tokens} prompt + {completion_tokens} completion "
                           f"tokens) failed; first: {failures[0]}. A context-length error means the grid's largest "
                           "bucket does not fit the engine (start it with a larger --max-model-len or use smaller "
                           "--buckets)")
    after = parse_histograms(await _get(session, f"{s.engine}/metrics"), names)
    missing = names - set(after)
    if missing:
        raise ProfileError(f"{s.engine}/metrics has no {', '.join(sorted(missing))} histogram (a vLLM engine exports "
                           "them); the SLO cannot be measured")
    hists = {k: h.minus(before[k]) if k in before else h for k, h in after.items()}
    measured = slo_results(s.slo, hists)
    ok = slo_met(s.slo, measured)
    measured["e2e_mean"] = hists[METRIC_HISTOGRAM["e2e"]].mean()
    lag = 1.0 if sequential else sent / max(sum(gaps), 1e-9)
    return TrialResult(measured, ok, lag)


async def run_profile(s: ProfileSettings, progress: Callable[[str], None]) -> dict[str, object]:
    started = time.monotonic()
    rng = random.Random(s.seed)
    tputs = [[0.0] * len(s.inputs) for _ in s.outputs]
    measured: list[list[dict[str, float]]] = [[{} for _ in s.inputs] for _ in s.outputs]
    trials = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        model = s.model or await first_model(session, s.engine)
        for o, completion in enumerate(s.outputs):
            for i, prompt in enumerate(s.inputs):
                cell_started = time.monotonic()
                alone = await trial(session, s, model, prompt, completion, 0.0, rng, sequential=3)
                trials += 1
                if not alone.ok:   # even a request on its own misses the SLO: this type never serves the bucket
                    measured[o][i] = {k: round(v, 6) for k, v in alone.measured.items()}
                    progress(f"bucket output {completion} x input {prompt}: 0 req/s (a request alone misses the "
                             f"SLO: {_fmt(alone.measured)}; {time.monotonic() - cell_started:.1f} s)")
                    continue
                # a request every e2e seconds keeps about one in flight: start there, never search below a quarter
                start = 1.0 / max(alone.measured["e2e_mean"], 1e-3)
                search = RateSearch(start_rps=start, min_rps=start / 4, precision=s.precision)
                best: dict[str, float] = alone.measured
                while (rate := search.next_rate()) is not None:
                    result = await trial(session, s, model, prompt, completion, rate, rng,
                                         e2e_alone=alone.measured["e2e_mean"])
                    trials += 1
                    if result.lag > 1.25:
                        raise ProfileError(
                            f"the client sent {rate:g} req/s x time scale {s.time_scale:g} {result.lag:.2f}x slower "
                            "than planned (CPU-bound); lower the engine's --speed and --time-scale with it")
                    search.report(rate, result.ok)
                    if result.ok and rate >= search.passed:
                        best = result.measured
                    kv(log, "profile trial", prompt_tokens=prompt, completion_tokens=completion, rps=round(rate, 4),
                       ok=result.ok, **{k: round(v, 4) for k, v in result.measured.items()})
                tputs[o][i] = round(search.passed, 6)
                measured[o][i] = {k: round(v, 6) for k, v in best.items()}
                progress(f"bucket output {completion} x input {prompt}: {tputs[o][i]:g} req/s "
                         f"({len(search.tried)} trials, {time.monotonic() - cell_started:.1f} s)")
    doc = profile_doc(s.gpu_type, s.cost, [list(s.outputs), list(s.inputs)], tputs, s.slo, time.time(), model,
                      measured)
    doc["benchmark"] = {"engine": s.engine, "seconds": round(time.monotonic() - started, 1), "trials": trials,
                        "time_scale": s.time_scale, "trial_seconds": s.trial_seconds, "settle": s.settle,
                        "seed": s.seed}
    return doc


def _fmt(measured: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3g} s" for k, v in measured.items())
