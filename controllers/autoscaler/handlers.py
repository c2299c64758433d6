"""PodAutoscaler I/O: a kopf event handler keeps the set of autoscalers, a loop ticks each of them.

Each tick reads the target's /scale, lists its Ready pods, scrapes them (and the external,
optimizer and gateway sources), records one sample per second, and calls the pure
`decide()`; when a decision is due it writes /scale and the status. The decider state lives in
status.state, so an operator restarted (or a new leader) resumes where the last one stopped.

The tick loop is ours rather than a kopf timer: kopf timers put a finalizer on every object,
which would keep a PodAutoscaler (and its namespace) from being deleted while the operator is
down. An event handler needs none.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import kopf
from kubernetes import client

from brix.logs import kv
from controllers import watching
from controllers.autoscaler import scrape
from controllers.autoscaler.decide import Decision, Inputs, decide
from controllers.autoscaler.metrics import Observation, Window, observe
from controllers.autoscaler.model import AutoscalerSpec, DeciderState, SpecError, parse_spec
from controllers.autoscaler.target import Targets
from controllers.conditions import iso, set_condition
from controllers.settings import AutoscalerSettings
from controllers.stats import ControllerStats

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "autoscaling.brix.dev", "v1alpha1", "podautoscalers"
STATUS_REFRESH_S = 15.0


@dataclass
class Tracked:
    body: dict[str, Any]
    state: DeciderState | None = None            # None until restored from status
    windows: dict[str, Window] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    conditions: list[dict[str, Any]] = field(default_factory=list)
    last_scale_time: str | None = None
    invalid_generation: int | None = None        # the generation whose spec was refused (written once)
    failing: list[str] = field(default_factory=list)   # pods whose last scrape failed (logged on change)
    written: tuple[Any, ...] | None = None       # what the last status write said (see _act)
    written_at: float = 0.0


class AutoscalerController:
    def __init__(self, settings: AutoscalerSettings, api_client: client.ApiClient, stats: ControllerStats,
                 clock: Callable[[], float]) -> None:
        self.settings = settings
        self.targets = Targets(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.stats = stats
        self.clock = clock
        self.tracked: dict[str, Tracked] = {}
        self.session: aiohttp.ClientSession | None = None

    # ---- kopf: the set of autoscalers ---------------------------------------------------
    def register(self, registry: kopf.OperatorRegistry) -> None:
        @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, id="podautoscaler-seen")
        def seen(event: dict[str, Any], **_: Any) -> None:
            got = watching.seen(event)
            if got is None:
                return
            uid, obj = got
            if obj is None:
                self.tracked.pop(uid, None)
                return
            t = self.tracked.get(uid)
            if t is None:
                self.tracked[uid] = Tracked(obj)
            else:
                t.body = obj

    # ---- the loop -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self.session = aiohttp.ClientSession()
        try:
            while not stop.is_set():
                started = self.clock()
                await asyncio.gather(*(self._guarded(t) for t in list(self.tracked.values())))
                delay = max(0.05, self.settings.tick_s - (self.clock() - started))
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
        finally:
            await self.session.close()
            self.session = None

    async def _guarded(self, t: Tracked) -> None:
        meta = t.body.get("metadata") or {}
        try:
            await self.tick(t)
        except Exception as exc:  # noqa: BLE001 - one broken autoscaler must not stop the others
            kv(log, "autoscaler tick failed", logging.WARNING, namespace=meta.get("namespace"),
               name=meta.get("name"), error=f"{type(exc).__name__}: {exc}")

    async def tick(self, t: Tracked) -> None:
        now = self.clock()
        meta = t.body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        status = t.body.get("status") or {}
        if t.state is None:
            t.state = DeciderState.from_json(status.get("state"))
            t.decisions = list(status.get("lastDecisions") or [])
            t.conditions = list(status.get("conditions") or [])
            t.last_scale_time = status.get("lastScaleTime")
        try:
            spec = parse_spec(t.body.get("spec"))
        except SpecError as exc:
            if t.invalid_generation != meta.get("generation"):
                t.invalid_generation = meta.get("generation")
                t.conditions = set_condition(t.conditions, "ScalingActive", False, "InvalidSpec", str(exc), now)
                await self._write_status(ns, name, {"conditions": t.conditions})
                kv(log, "invalid PodAutoscaler spec", logging.WARNING, namespace=ns, name=name, error=str(exc))
            return
        t.invalid_generation = None
        try:
            scale = await asyncio.to_thread(self.targets.read_scale, ns, spec.target_api_version, spec.target_kind,
                                            spec.target_name)
        except Exception as exc:  # noqa: BLE001 - reported in the AbleToScale condition
            msg = f"cannot read the scale of {spec.target_kind}/{spec.target_name}: {getattr(exc, 'reason', exc)}"
            if not _has(t.conditions, "AbleToScale", "False", msg):
                t.conditions = set_condition(t.conditions, "AbleToScale", False, "FailedGetScale", msg, now)
                await self._write_status(ns, name, {"conditions": t.conditions})
            return
        pods = await asyncio.to_thread(self.targets.ready_pods, ns, scale.selector)
        observations = await self._observe(spec, t, ns, pods.ips, now)
        held = 0.0
        if scale.replicas == 0 and self.settings.gateway_urls:
            assert self.session is not None
            held = await scrape.held_requests(self.session, list(self.settings.gateway_urls), spec.model_name,
                                              self.settings.scrape_timeout_s)
        inputs = Inputs(current=scale.replicas, ready=len(pods.ips), observations=observations, held=held,
                        wall=dt.datetime.fromtimestamp(now, dt.UTC))
        decision, t.state = decide(spec, inputs, t.state, now)
        if not decision.due:
            return
        await self._act(t, spec, ns, name, scale.replicas, scale.status_replicas, decision, now)

    async def _observe(self, spec: AutoscalerSpec, t: Tracked, ns: str, ips: dict[str, str],
                       now: float) -> dict[str, Observation]:
        assert self.session is not None
        out: dict[str, Observation] = {}
        timeout = self.settings.scrape_timeout_s
        keep = {s.key for s in spec.sources}
        for key in [k for k in t.windows if k not in keep]:
            del t.windows[key]
        for src in spec.sources:
            window = t.windows.setdefault(src.key, Window(keep_s=spec.stable_window_s + 60))
            if src.type == "pod":
                values = await scrape.scrape_pods(self.session, ips, src, timeout)
                failed = sorted(p for p, v in values.items() if v is None)
                if failed:
                    self.stats.scrape_failures.labels(ns, t.body["metadata"]["name"]).inc(len(failed))
                if failed != t.failing:   # log changes only, not every second
                    kv(log, "pod scrape failing" if failed else "pod scrapes ok", logging.WARNING if failed
                       else logging.INFO, namespace=ns, name=t.body["metadata"]["name"], metric=src.metric,
                       pods=",".join(failed) or "-", port=src.port, path=src.path)
                    t.failing = failed
                window.forget_pods(set(ips))
                window.record_pods(now, values, len(ips))
            else:
                if src.type == "external":
                    value = await scrape.scrape_external(self.session, src, timeout)
                else:
                    # a replica target, not a load: followed as read, never averaged over a window
                    value = await scrape.scrape_optimizer(self.session, src, ns, spec.model_name, timeout)
                    if value is None:
                        self.stats.scrape_failures.labels(ns, t.body["metadata"]["name"]).inc()
                    out[src.key] = Observation(value, value, per_pod=False)
                    continue
                if value is None:
                    self.stats.scrape_failures.labels(ns, t.body["metadata"]["name"]).inc()
                else:
                    window.record_total(now, value)
            out[src.key] = observe(window, now, spec.stable_window_s, spec.panic_window_s, src.type == "pod",
                                   max(spec.sync_period_s, 2 * self.settings.tick_s))
        return out

    async def _act(self, t: Tracked, spec: AutoscalerSpec, ns: str, name: str, current: int, actual: int,
                   d: Decision, now: float) -> None:
        conds = set_condition(t.conditions, "AbleToScale", True, "SucceededRescale" if d.desired != current
                              else "ReadyForNewScale", "the target's /scale can be read and written", now)
        if d.desired != current:
            if not await self._still_exists(t):
                return
            try:
                await asyncio.to_thread(self.targets.write_scale, ns, spec.target_api_version, spec.target_kind,
                                        spec.target_name, d.desired)
            except Exception as exc:  # noqa: BLE001 - reported in AbleToScale; retried next period
                msg = f"cannot write the scale of {spec.target_kind}/{spec.target_name}: {getattr(exc, 'reason', exc)}"
                t.conditions = set_condition(conds, "AbleToScale", False, "FailedUpdateScale", msg, now)
                await self._write_status(ns, name, {"conditions": t.conditions})
                return
            t.last_scale_time = iso(now)
            t.decisions = (t.decisions + [{"time": iso(now), "from": current, "to": d.desired,
                                           "reason": d.reason}])[-self.settings.history:]
            self.stats.scale_events.labels(ns, name, "up" if d.desired > current else "down").inc()
            kv(log, "scaled", namespace=ns, name=name, target=f"{spec.target_kind}/{spec.target_name}",
               replicas_from=current, replicas_to=d.desired, reason=d.reason)
        conds = set_condition(conds, "ScalingActive", d.metrics_ok, "ValidMetricFound" if d.metrics_ok
                              else "FailedGetMetrics", d.reason, now)
        conds = set_condition(conds, "ScalingLimited", bool(d.limited), d.limited or "DesiredWithinRange",
                              f"bounds [{d.min_replicas}, {d.max_replicas}]"
                              + (f" from schedule {d.schedule!r}" if d.schedule else ""), now)
        t.conditions = conds
        self.stats.desired.labels(ns, name).set(d.desired)
        self.stats.actual.labels(ns, name).set(actual)
        self.stats.panic.labels(ns, name).set(1 if d.panic else 0)
        assert t.state is not None
        # Write when something a user or the next leader needs changed, else at most every
        # STATUS_REFRESH_S (the decider's timestamps move every decision; KPA decides every 2 s).
        st = t.state
        said = (d.desired, actual, d.panic, d.limited, d.schedule, len(t.decisions), t.last_scale_time,
                tuple((c["type"], c["status"], c["reason"]) for c in conds), st.panic_since, st.max_panic_pods,
                st.zero_since)
        if said == t.written and now - t.written_at < STATUS_REFRESH_S:
            return
        t.written, t.written_at = said, now
        await self._write_status(ns, name, {
            "desiredReplicas": d.desired, "actualReplicas": actual, "conditions": conds,
            "lastScaleTime": t.last_scale_time, "lastDecisions": t.decisions, "panic": d.panic,
            "scheduledBounds": {"minReplicas": d.min_replicas, "maxReplicas": d.max_replicas,
                                "activeSchedule": d.schedule},
            "observedGeneration": t.body["metadata"].get("generation"), "state": t.state.to_json()})

    async def _still_exists(self, t: Tracked) -> bool:
        """Whether this very PodAutoscaler (same uid) still exists; if not, it is forgotten.

        A watch that expired (410 Gone) is re-listed by kopf, and the re-list brings no DELETED event
        for an autoscaler deleted in the gap: read before every /scale write (rare), so that a deleted
        or replaced autoscaler never scales its target again."""
        meta = t.body["metadata"]
        try:
            obj = await asyncio.to_thread(self.custom.get_namespaced_custom_object, GROUP, VERSION,
                                          meta["namespace"], PLURAL, meta["name"])
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            obj = None
        if obj is not None and (obj.get("metadata") or {}).get("uid") == meta.get("uid"):
            return True
        self._forget(t)
        return False

    def _forget(self, t: Tracked) -> None:
        meta = t.body["metadata"]
        if self.tracked.pop(meta.get("uid"), None) is not None:
            kv(log, "PodAutoscaler gone: forgotten", namespace=meta.get("namespace"), name=meta.get("name"),
               uid=meta.get("uid"))

    async def _write_status(self, ns: str, name: str, status: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(self.custom.patch_namespaced_custom_object_status, GROUP, VERSION, ns, PLURAL,
                                    name, {"status": status})
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            # deleted while the watch was expired (see _still_exists)
            for t in [t for t in self.tracked.values() if t.body["metadata"].get("namespace") == ns
                      and t.body["metadata"].get("name") == name]:
                self._forget(t)


def _has(conditions: list[dict[str, Any]], ctype: str, status: str, message: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == status and c.get("message") == message
               for c in conditions)
