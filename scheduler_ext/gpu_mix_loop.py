"""`brix scheduler-ext --gateway-url URL ...`: GPU-mix targets recomputed from the gateways' live workload.

Every `--mix-interval` seconds: read `GET /v1/workload` from every gateway URL (the replicas of a
gateway each see a share of the requests, so their rates are summed), and for every model with
profiles run `gpu_mix.plan` (Mélange + hysteresis) and store the targets under
`--gateway-namespace`, where each GPU type's PodAutoscaler reads them
(`/v1/optimizer/targets/{namespace}/{model}`).

A gateway that does not answer makes the reading partial: targets may then grow but never shrink
(a missing reading is not a quiet workload). With no answer at all, nothing changes. A model the
gateways stop reporting counts as a workload of 0 (after the down delay its targets drop to 0).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from brix.aio import cancel_and_wait
from brix.logs import kv
from scheduler_ext import gpu_mix
from scheduler_ext.solvers import melange
from scheduler_ext.solvers.profiles import InputError
from scheduler_ext.targets import TargetStore
from scheduler_ext.workload_feed import Cells, on_grid, parse_gateway_workload, sum_workloads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MixLoopSettings:
    gateway_urls: tuple[str, ...]
    namespace: str = "default"
    interval_s: float = 10.0
    policy: gpu_mix.MixPolicy = field(default_factory=gpu_mix.MixPolicy)
    timeout_s: float = 2.0


@dataclass
class _Decided:
    model: str
    plan: gpu_mix.MixPlan
    problem: melange.Problem | None


class MixLoop:
    def __init__(self, targets: TargetStore, settings: MixLoopSettings) -> None:
        self.targets = targets
        self.settings = settings
        self.memories: dict[str, gpu_mix.MixMemory] = {}
        self.skipped: set[str] = set()
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name="gpu-mix-loop")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.round_once()
            except Exception as exc:  # noqa: BLE001 - one bad round must not end the loop
                kv(log, "gpu mix round failed", logging.ERROR, error=repr(exc))
            await asyncio.sleep(max(0.0, self.settings.interval_s - (loop.time() - started)))

    async def read_gateways(self) -> tuple[dict[str, Cells], int]:
        """The summed workload and how many gateways failed to answer."""
        assert self._session is not None
        async def one(url: str) -> dict[str, Cells] | None:
            try:
                async with self._session.get(f"{url}/v1/workload",  # type: ignore[union-attr]  # asserted above; mypy forgets in the closure
                                             timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s)) as resp:
                    if resp.status != 200:
                        kv(log, "gateway workload unavailable", logging.WARNING, url=url, status=resp.status)
                        return None
                    return parse_gateway_workload(json.loads(await resp.read()), f"{url}/v1/workload")
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError, InputError) as exc:
                kv(log, "gateway workload unavailable", logging.WARNING, url=url, error=repr(exc))
                return None
        parts = await asyncio.gather(*(one(u) for u in self.settings.gateway_urls))
        got = [p for p in parts if p is not None]
        return sum_workloads(got), len(parts) - len(got)

    async def round_once(self) -> None:
        workload, failed = await self.read_gateways()
        if failed == len(self.settings.gateway_urls):
            return
        now = time.monotonic()
        decided = await asyncio.get_running_loop().run_in_executor(None, self._decide, workload, failed > 0, now)
        self.rounds += 1
        ns = self.settings.namespace
        for d in decided:
            if d.plan.targets is None:
                continue
            if d.plan.changed or self.targets.targets.get((ns, d.model)) is None:
                if d.problem is not None:
                    solution = melange.Solution(True, dict(d.plan.targets), d.plan.cost, d.plan.solve_ms)
                    self.targets.set_from_solution(ns, d.model, d.problem, solution)
                else:
                    self.targets.set_replicas(ns, d.model, d.plan.targets)
                kv(log, "gpu mix targets", model=f"{ns}/{d.model}", replicas=d.plan.targets,
                   cost=round(d.plan.cost, 4), rps=round(d.plan.rps, 3), reason=d.plan.reason,
                   partial=failed > 0)

    def _decide(self, workload: dict[str, Cells], partial: bool, now: float) -> list[_Decided]:
        out = []
        for model in sorted(set(workload) | set(self.memories)):
            entries = self.targets.profiles_for(model)
            indexes = entries[0].indexes if entries else None
            if not entries or not indexes:
                if model not in self.skipped:
                    self.skipped.add(model)
                    kv(log, "gpu mix: no profiles with indexes for this model; not planned", model=model)
                continue
            distribution, rps = on_grid(workload.get(model, {}), indexes)
            gpus = [e.profile for e in entries]
            memory = self.memories.setdefault(model, gpu_mix.MixMemory())
            plan = gpu_mix.plan(gpus, distribution, rps, memory, now, self.settings.policy, allow_down=not partial)
            problem = melange.Problem(gpus, distribution, rps) if rps > 0 else None
            out.append(_Decided(model, plan, problem))
        return out

    def status(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "models": {m: mem.held for m, mem in self.memories.items()}}


def start_mix_loop(targets: TargetStore, settings: Any) -> MixLoop:
    """From scheduler_ext.settings.Settings (gateway_urls, gateway_namespace, mix_*)."""
    loop = MixLoop(targets, MixLoopSettings(
        gateway_urls=tuple(u.rstrip("/") for u in settings.gateway_urls), namespace=settings.gateway_namespace,
        interval_s=settings.mix_interval_s,
        policy=gpu_mix.MixPolicy(down_delay_s=settings.mix_down_delay_s, down_margin=settings.mix_down_margin,
                                 headroom=settings.mix_headroom)))
    loop.start()
    kv(log, "gpu mix loop started", gateways=len(loop.settings.gateway_urls), namespace=loop.settings.namespace,
       interval_s=loop.settings.interval_s)
    return loop
