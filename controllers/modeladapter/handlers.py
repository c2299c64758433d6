"""ModelAdapter I/O: a kopf event handler keeps the set of adapters; a loop reconciles each namespace
that has some, one round per tick (or at once after a change).

A round lists the namespace's pods, reads GET /v1/models (and once per pod the engine's
--max-loras) from the engines that a selector matches, calls the pure `plan`, does the loads and
unloads, and writes the EndpointSlice, the status and the finalizer. The finalizer
(adapter.model.brix.dev/finalizer) is ours, not kopf's: it is removed once no engine lists the
adapter any more, so deleting a ModelAdapter unloads it everywhere first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp
import kopf
from kubernetes import client
from kubernetes.client.rest import ApiException

from brix.logs import kv
from controllers import watching
from controllers.modeladapter import engine, rates, resources
from controllers.modeladapter.model import (
    FINALIZER,
    GROUP,
    PLURAL,
    VERSION,
    AdapterView,
    PodView,
    State,
    adapter_view,
    pod_view,
)
from controllers.modeladapter.reconcile import Outcome, Settings, plan, record, serving, summarize
from controllers.settings import ModelAdapterSettings
from controllers.stats import ControllerStats

log = logging.getLogger(__name__)


class ModelAdapterController:
    def __init__(self, settings: ModelAdapterSettings, api_client: client.ApiClient, stats: ControllerStats,
                 clock: Callable[[], float], rng: random.Random | None = None) -> None:
        self.settings = settings
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.discovery = client.DiscoveryV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.stats = stats
        self.clock = clock
        self.rng = rng or random.Random()
        self.tracked: dict[str, dict[str, Any]] = {}        # uid -> body
        self.states: dict[str, State] = {}                  # namespace -> State
        self.slots: dict[str, int] = {}                     # pod uid -> the engine's --max-loras
        self.slices: dict[str, tuple[Any, ...]] = {}        # adapter uid -> what its slice last said
        self.statuses: dict[str, Any] = {}                  # adapter uid -> the status last written
        self.wake = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None
        self.rates: dict[str, rates.History] = {}           # namespace -> per-pod request counters
        self.scraped_at: dict[str, float] = {}              # namespace -> last counter scrape
        self.rsettings = Settings(drain_s=settings.drain_s, backoff_base_s=settings.backoff_base_s,
                                  backoff_cap_s=settings.backoff_cap_s, solve_time_s=settings.solve_time_s)

    def register(self, registry: kopf.OperatorRegistry) -> None:
        @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, id="modeladapter-seen")
        async def seen(event: dict[str, Any], **_: Any) -> None:
            if watching.track(event, self.tracked, self.slices, self.statuses):
                self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        self.session = aiohttp.ClientSession()
        try:
            while not stop.is_set():
                self.wake.clear()
                by_ns: dict[str, list[dict[str, Any]]] = {}
                for body in list(self.tracked.values()):
                    by_ns.setdefault(body["metadata"]["namespace"], []).append(body)
                await asyncio.gather(*(self._guarded(ns, bodies) for ns, bodies in by_ns.items()))
                for ns in [n for n in self.states if n not in by_ns]:
                    del self.states[ns]
                    self.rates.pop(ns, None)
                    self.scraped_at.pop(ns, None)
                await watching.until_woken(self.wake, stop, self.settings.tick_s)
        finally:
            await self.session.close()
            self.session = None

    async def _guarded(self, ns: str, bodies: list[dict[str, Any]]) -> None:
        try:
            await self.reconcile_namespace(ns, bodies)
        except Exception as exc:  # noqa: BLE001 - one namespace's trouble must not stop the others
            kv(log, "modeladapter round failed", logging.WARNING, namespace=ns,
               error=f"{type(exc).__name__}: {exc}")

    async def _observe(self, ns: str, adapters: list[AdapterView]) -> list[PodView]:
        resp = await asyncio.to_thread(self.core.list_namespaced_pod, ns, _preload_content=False)
        pods = [pod_view(p) for p in json.loads(resp.data)["items"]]
        named = {n for a in adapters for n in a.instances}
        wanted = [p for p in pods if p.ip and not p.deleting and (p.name in named or any(
            a.spec is not None and a.spec.selector.matches(p.labels) for a in adapters))]
        assert self.session is not None
        timeout = self.settings.request_timeout_s
        live = {p.uid for p in pods}
        for uid in [u for u in self.slots if u not in live]:
            del self.slots[uid]

        async def probe(p: PodView) -> PodView:
            url = f"http://{p.ip}:{p.port}"
            listed = await engine.models(self.session, url, timeout)   # type: ignore[arg-type]
            if listed is None:
                return p
            if p.uid not in self.slots:
                slots = await engine.max_loras(self.session, url, timeout)   # type: ignore[arg-type]
                if slots is None:
                    return p
                self.slots[p.uid] = slots
            return replace(p, base_models=listed[0], loaded=listed[1], slots=self.slots[p.uid])
        probed = {p.name: p for p in await asyncio.gather(*(probe(p) for p in wanted))}
        observed = [probed.get(p.name, p) for p in pods]
        await self._scrape_rates(ns, [p for p in observed if p.loaded is not None])
        return observed

    async def _scrape_rates(self, ns: str, engines: list[PodView]) -> None:
        """Every rate_scrape_s, each answering engine's per-adapter request counters (a failed
        scrape adds no sample)."""
        now = self.clock()
        if now - self.scraped_at.get(ns, float("-inf")) < self.settings.rate_scrape_s:
            return
        self.scraped_at[ns] = now
        history = self.rates.setdefault(ns, rates.History(window_s=self.settings.rate_window_s))
        assert self.session is not None
        texts = await asyncio.gather(*(engine.metrics_text(self.session, f"http://{p.ip}:{p.port}",
                                                           self.settings.request_timeout_s) for p in engines))
        for p, text in zip(engines, texts, strict=True):
            rates.observe(history, p.name, now, rates.parse(text) if text is not None else None)
        rates.forget(history, {p.name for p in engines})

    def _with_rates(self, ns: str, adapters: list[AdapterView], pods: list[PodView]) -> list[AdapterView]:
        history = self.rates.get(ns)
        if history is None:
            return adapters
        placed = {a.name: {p.name for p in pods if p.loaded and a.name in p.loaded} for a in adapters}
        measured = rates.adapter_rates(history, self.clock(), placed)
        weights = rates.with_fallback([a.name for a in adapters], measured)
        for a in adapters:
            self.stats.adapter_rate.labels(ns, a.name).set(weights[a.name])
        return [replace(a, rate=weights[a.name]) for a in adapters]

    async def reconcile_namespace(self, ns: str, bodies: list[dict[str, Any]]) -> None:
        adapters = [adapter_view(b) for b in bodies]
        pods = await self._observe(ns, adapters)
        adapters = self._with_rates(ns, adapters, pods)
        state = self.states.setdefault(ns, State())
        now = self.clock()
        out = plan(adapters, pods, state, now, self.rsettings)
        if out.solved:
            kv(log, "adapters placed", namespace=ns, note=out.solver_note,
               placement=";".join(f"{a}={','.join(p)}" for a, p in sorted(out.placement.items())))
        assert self.session is not None
        outcomes: list[Outcome] = list(await asyncio.gather(
            *(engine.apply(self.session, act, self.settings.request_timeout_s) for act in out.actions)))
        record(state, adapters, outcomes, self.clock(), self.rng, self.rsettings)
        changes: dict[str, set[str]] = {}
        gone: dict[str, set[str]] = {}
        for o in outcomes:
            a = o.action
            result = "ok" if o.ok else ("permanent" if o.permanent else "retry")
            self.stats.adapter_calls.labels(ns, a.adapter, a.kind, result).inc()
            kv(log, f"adapter {a.kind}" + ("ed" if o.ok else " failed"), logging.INFO if o.ok else logging.WARNING,
               namespace=ns, adapter=a.adapter, pod=a.pod, error=o.message or None)
            if o.ok:
                (changes if a.kind == "load" else gone).setdefault(a.pod, set()).add(a.adapter)
        pods = [replace(p, loaded=(p.loaded | changes.get(p.name, set())) - gone.get(p.name, set()))
                if p.loaded is not None and (p.name in changes or p.name in gone) else p for p in pods]
        now = self.clock()
        for a, body in zip(adapters, bodies, strict=True):
            await self._write(ns, a, body, out, pods, state, now)

    async def _write(self, ns: str, a: AdapterView, body: dict[str, Any], out: Any, pods: list[PodView],
                     state: State, now: float) -> None:
        finalizers = list((body.get("metadata") or {}).get("finalizers") or [])
        serve = serving(a, out.placement.get(a.name, ()), pods)
        await self._slice(ns, a, serve, pods)
        if a.deleting:
            still = [p.name for p in pods if p.loaded is not None and not p.deleting and a.name in p.loaded]
            if not still and FINALIZER in finalizers:
                await self._patch_meta(ns, a.name, [f for f in finalizers if f != FINALIZER])
                kv(log, "adapter unloaded everywhere; finalizer removed", namespace=ns, adapter=a.name)
            return
        if FINALIZER not in finalizers:
            await self._patch_meta(ns, a.name, [*finalizers, FINALIZER])
            body.setdefault("metadata", {})["finalizers"] = [*finalizers, FINALIZER]
        old = body.get("status") or {}
        status = summarize(a, out, pods, state, now, list(old.get("conditions") or []))
        self.stats.adapter_ready.labels(ns, a.name).set(status["readyReplicas"])
        said = json.dumps(status, sort_keys=True)
        if self.statuses.get(a.uid) == said:
            return
        await asyncio.to_thread(self.custom.patch_namespaced_custom_object_status, GROUP, VERSION, ns, PLURAL,
                                a.name, {"status": status})
        self.statuses[a.uid] = said
        body["status"] = status
        if old.get("phase") != status["phase"] or old.get("readyReplicas") != status["readyReplicas"]:
            ready = next(c for c in status["conditions"] if c["type"] == "Ready")
            kv(log, "adapter status", namespace=ns, adapter=a.name, phase=status["phase"],
               ready=f"{status['readyReplicas']}/{status['desiredReplicas']}",
               instances=",".join(status["instances"]) or "-", reason=ready["reason"])

    async def _patch_meta(self, ns: str, name: str, finalizers: list[str]) -> None:
        try:
            await asyncio.to_thread(self.custom.patch_namespaced_custom_object, GROUP, VERSION, ns, PLURAL, name,
                                    {"metadata": {"finalizers": finalizers}})
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def _slice(self, ns: str, a: AdapterView, serve: list[PodView], pods: list[PodView]) -> None:
        port = resources.port_of(serve or [p for p in pods if p.name in a.instances])
        loopback = any((p.ip or "").startswith("127.") for p in pods)
        body = resources.endpoint_slice(a, ns, serve, port, loopback)
        said = (port, tuple((e["addresses"][0], e["targetRef"]["name"]) for e in body["endpoints"]))
        if self.slices.get(a.uid) == said:
            return
        if a.uid not in self.slices:      # first time this process writes it: make sure both exist
            try:
                await asyncio.to_thread(self.core.create_namespaced_service, ns, resources.service(a, ns, port))
            except ApiException as exc:
                if exc.status != 409:
                    raise
            try:
                await asyncio.to_thread(self.discovery.create_namespaced_endpoint_slice, ns, body)
                self.slices[a.uid] = said
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
        await asyncio.to_thread(self.discovery.patch_namespaced_endpoint_slice, a.name, ns,
                                {"endpoints": body["endpoints"], "ports": body["ports"]})
        self.slices[a.uid] = said
