"""RayClusterFleet and RayClusterReplicaSet I/O: kopf event handlers fill a cache of fleets, replica
sets and RayClusters; two work queues sync a fleet when it or one of its replica sets changes, and
a replica set when it or one of its RayClusters changes (as kube-controller-manager's Deployment
and ReplicaSet controllers do with informers). Each sync calls the pure `fleet.plan` /
`replicaset.reconcile` and writes what they say; every write carries the resourceVersion it was
decided on (a 409 means the cache was behind: the key syncs again after the watch catches up);
status writes carry none, each object's status having one writer.

No kopf change handlers (and so no kopf finalizers or annotations on the objects): only event
handlers, as the other controllers of this operator.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import kopf
from kubernetes import client
from kubernetes.client.rest import ApiException

from brix.logs import kv
from controllers.rayfleet import fleet as fleetlib
from controllers.rayfleet import replicaset as rslib
from controllers.rayfleet.hashing import equal_ignore_hash
from controllers.rayfleet.model import (
    FLEETS,
    GROUP,
    RAY_GROUP,
    RAY_VERSION,
    RAYCLUSTERS,
    REPLICASETS,
    VERSION,
    SpecError,
    controller_uid,
    fleet_view,
    parse_replicaset_spec,
    replicaset_view,
)
from controllers.rayfleet.progress import PROGRESSING, RS_CREATE_ERROR, new_condition, set_condition
from controllers.rayfleet.raycluster import cluster_view, raycluster_body
from controllers.rayfleet.store import Cache, Key, WorkQueue
from controllers.settings import RayFleetSettings
from controllers.stats import ControllerStats

log = logging.getLogger(__name__)
JSON_PATCH = "application/json-patch+json"


class Retry(Exception):
    """The cache was behind (409) or a write failed: sync this key again soon."""


class RayFleetController:
    def __init__(self, settings: RayFleetSettings, api_client: client.ApiClient, stats: ControllerStats,
                 clock: Callable[[], float]) -> None:
        self.settings = settings
        self.custom = client.CustomObjectsApi(api_client)
        self.stats = stats
        self.clock = clock
        self.fleets, self.replicasets, self.clusters = Cache(clock), Cache(clock), Cache(clock)
        self.fleet_queue, self.rs_queue = WorkQueue(), WorkQueue()
        self.failures: dict[tuple[str, Key], int] = {}

    # ---- kopf: the caches -------------------------------------------------------------------------
    def register(self, registry: kopf.OperatorRegistry) -> None:
        # async handlers: kopf runs them on the event loop, where the workers read the caches (sync
        # ones would run in kopf's thread pool, beside the workers)
        @kopf.on.event(GROUP, VERSION, FLEETS, registry=registry, id="rayclusterfleet-seen")
        async def fleet_seen(event: dict[str, Any], **_: Any) -> None:
            obj = event.get("object") or {}
            if self.fleets.observe(event.get("type"), obj):
                self.fleet_queue.add(Cache.key(obj))

        @kopf.on.event(GROUP, VERSION, REPLICASETS, registry=registry, id="rayclusterreplicaset-seen")
        async def replicaset_seen(event: dict[str, Any], **_: Any) -> None:
            obj = event.get("object") or {}
            if self.replicasets.observe(event.get("type"), obj):
                self.rs_queue.add(Cache.key(obj))
                self._owner_changed(obj, self.fleets, self.fleet_queue)

        @kopf.on.event(RAY_GROUP, RAY_VERSION, RAYCLUSTERS, registry=registry, id="raycluster-seen")
        async def cluster_seen(event: dict[str, Any], **_: Any) -> None:
            obj = event.get("object") or {}
            if self.clusters.observe(event.get("type"), obj):
                self._owner_changed(obj, self.replicasets, self.rs_queue)

    @staticmethod
    def _owner_changed(obj: dict[str, Any], owners: Cache, queue: WorkQueue) -> None:
        meta = obj.get("metadata") or {}
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller"):
                queue.add((meta.get("namespace") or "", ref.get("name") or ""))

    # ---- the loop ------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        workers = [asyncio.create_task(self._worker(self.fleet_queue, "fleet", self.sync_fleet))
                   for _ in range(self.settings.workers)]
        workers += [asyncio.create_task(self._worker(self.rs_queue, "replicaset", self.sync_replicaset))
                    for _ in range(self.settings.workers)]
        try:
            await stop.wait()
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self.fleet_queue.close()
            self.rs_queue.close()

    async def _worker(self, queue: WorkQueue, kind: str, sync: Callable[[Key], Any]) -> None:
        while True:
            key = await queue.get()
            try:
                await sync(key)
                self.failures.pop((kind, key), None)
                self.stats.rayfleet_syncs.labels(kind, "ok").inc()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one object's trouble must not stop the others
                n = self.failures.get((kind, key), 0) + 1
                self.failures[(kind, key)] = n
                delay = min(self.settings.retry_cap_s, self.settings.retry_base_s * 2 ** (n - 1))
                self.stats.rayfleet_syncs.labels(kind, "retry" if isinstance(exc, Retry) else "error").inc()
                if not isinstance(exc, Retry) or n > 3:
                    kv(log, f"{kind} sync failed", logging.WARNING, namespace=key[0], name=key[1],
                       error=f"{type(exc).__name__}: {exc}", retry_in=f"{delay:g}s")
                queue.add_after(key, delay)
            finally:
                queue.done(key)

    # ---- API calls (blocking client in a thread) ---------------------------------------------------------
    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ApiException as exc:
            if exc.status == 409:
                raise Retry(f"conflict: {exc.reason}") from exc
            raise

    # ---- fleets ------------------------------------------------------------------------------------------
    async def sync_fleet(self, key: Key) -> None:
        body = self.fleets.get(key)
        if body is None:
            return
        ns, name = key
        view = fleet_view(body)
        rss = [replicaset_view(b) for b in self.replicasets.in_namespace(ns)]
        plan = fleetlib.plan(view, rss, self.clock())
        if view.spec_error and plan.status is not None:
            kv(log, "invalid RayClusterFleet spec", logging.WARNING, namespace=ns, name=name, error=view.spec_error)
        if plan.create is not None and not await self._create_replicaset(view, plan.create):
            return
        for u in plan.updates:
            patch: dict[str, Any] = {"metadata": {"resourceVersion": u.resource_version}}
            if u.annotations:
                patch["metadata"]["annotations"] = u.annotations
            spec = {k: v for k, v in (("replicas", u.replicas), ("minReadySeconds", u.min_ready_s)) if v is not None}
            if spec:
                patch["spec"] = spec
            before = (self.replicasets.get((ns, u.name)) or {}).get("spec", {}).get("replicas")
            self.replicasets.written(await self._call(self.custom.patch_namespaced_custom_object, GROUP, VERSION, ns,
                                                      REPLICASETS, u.name, patch))
            if u.replicas is not None:
                kv(log, "scaled replica set", namespace=ns, fleet=name, replicaset=u.name, replicas_from=before,
                   replicas_to=u.replicas)
        for rs_name in plan.deletes:
            try:
                gone = await self._call(self.custom.delete_namespaced_custom_object, GROUP, VERSION, ns, REPLICASETS,
                                        rs_name, propagation_policy="Background")
                self.replicasets.deleted(gone if isinstance(gone, dict) and gone.get("metadata") else
                                         self.replicasets.get((ns, rs_name)) or {"metadata": {}})
                kv(log, "old replica set deleted (revisionHistoryLimit)", namespace=ns, fleet=name, replicaset=rs_name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        await self._write_fleet(view.resource_version, ns, name, plan)
        if plan.requeue_after is not None:
            self.fleet_queue.add_after(key, plan.requeue_after)

    async def _create_replicaset(self, view: Any, rs: dict[str, Any]) -> bool:
        ns, name = view.namespace, rs["metadata"]["name"]
        try:
            created = await asyncio.to_thread(self.custom.create_namespaced_custom_object, GROUP, VERSION, ns,
                                              REPLICASETS, rs)
        except ApiException as exc:
            if exc.status == 409:
                existing = self.replicasets.get((ns, name))
                if existing is not None and controller_uid(existing.get("metadata") or {}) == view.uid and \
                        equal_ignore_hash((existing.get("spec") or {}).get("template") or {}, view.raw_spec["template"]):
                    return True     # ours, already there: the cache was behind
                if existing is None:
                    raise Retry(f"replica set {name} exists but is not cached yet") from exc
                count = int(view.status.get("collisionCount") or 0) + 1
                kv(log, "template hash collision: bumping collisionCount", logging.WARNING, namespace=ns,
                   fleet=view.name, replicaset=name, collision_count=count)
                self.fleets.written(await self._call(
                    self.custom.patch_namespaced_custom_object_status, GROUP, VERSION, ns, FLEETS, view.name,
                    {"metadata": {"resourceVersion": view.resource_version}, "status": {"collisionCount": count}}))
                raise Retry("hash collision") from exc
            if exc.status in (400, 403, 422) and view.spec is not None and view.spec.progress_deadline_s is not None:
                status = dict(view.status)
                set_condition(status, new_condition(PROGRESSING, "False", RS_CREATE_ERROR,
                                                    f"Failed to create new replica set {name!r}: {exc.reason}: "
                                                    f"{(exc.body or '')[:300]}", self.clock()))
                if status != view.status:
                    self.fleets.written(await self._call(self.custom.patch_namespaced_custom_object_status, GROUP,
                                                         VERSION, ns, FLEETS, view.name, {"status": status}))
            raise
        self.replicasets.written(created)
        kv(log, "replica set created", namespace=ns, fleet=view.name, replicaset=name,
           replicas=rs["spec"]["replicas"], revision=rs["metadata"]["annotations"].get("orchestration.brix.dev/revision"))
        return True

    async def _write_fleet(self, rv: str, ns: str, name: str, plan: fleetlib.FleetPlan) -> None:
        if plan.rollback is not None:
            rb = plan.rollback
            ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                                         {"op": "replace", "path": "/metadata/annotations", "value": rb.annotations}]
            if rb.template is not None:
                ops.append({"op": "replace", "path": "/spec/template", "value": rb.template})
            body = await self._call(self.custom.patch_namespaced_custom_object, GROUP, VERSION, ns, FLEETS, name, ops,
                                    _content_type=JSON_PATCH)
            self.fleets.written(body)
            rv = body["metadata"]["resourceVersion"]
            kv(log, "rollback" if rb.template is not None else "rollback not done", namespace=ns, fleet=name,
               revision=rb.revision, outcome=rb.outcome)
        elif plan.fleet_annotations:
            body = await self._call(self.custom.patch_namespaced_custom_object, GROUP, VERSION, ns, FLEETS, name,
                                    {"metadata": {"resourceVersion": rv, "annotations": plan.fleet_annotations}})
            self.fleets.written(body)
            rv = body["metadata"]["resourceVersion"]
        if plan.status is not None:
            # no resourceVersion: only this sync writes the status, and what it says was observed
            body = await self._call(self.custom.patch_namespaced_custom_object_status, GROUP, VERSION, ns, FLEETS, name,
                                    {"status": plan.status})
            self.fleets.written(body)
            st = plan.status
            for state in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
                self.stats.rayfleet_clusters.labels(ns, name, state).set(int(st.get(state) or 0))

    # ---- replica sets ------------------------------------------------------------------------------------------
    async def sync_replicaset(self, key: Key) -> None:
        body = self.replicasets.get(key)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return
        ns, name = key
        meta = body["metadata"]
        try:
            spec = parse_replicaset_spec(body.get("spec"))
        except SpecError as exc:
            kv(log, "invalid RayClusterReplicaSet spec", logging.WARNING, namespace=ns, name=name, error=str(exc))
            return
        uid = meta.get("uid", "")
        views = [cluster_view(b) for b in self.clusters.in_namespace(ns)
                 if controller_uid(b.get("metadata") or {}) == uid]
        plan = rslib.reconcile(spec.replicas, views)
        failure: tuple[str, str] | None = None
        if plan.delete:
            failure = await self._delete_clusters(ns, name, plan.delete)
        if plan.create:
            failure = await self._create_clusters(ns, name, uid, spec.template, plan.create) or failure
        views = [cluster_view(b) for b in self.clusters.in_namespace(ns)
                 if controller_uid(b.get("metadata") or {}) == uid]
        status, requeue = rslib.summarize(int(meta.get("generation") or 1), spec.min_ready_s, views, self.clock(),
                                          list((body.get("status") or {}).get("conditions") or []), failure)
        if status != (body.get("status") or {}):
            # no resourceVersion: only this sync writes the status, and its observedGeneration is the
            # generation it acted on (a spec changed meanwhile is seen by the next sync)
            self.replicasets.written(await self._call(
                self.custom.patch_namespaced_custom_object_status, GROUP, VERSION, ns, REPLICASETS, name,
                {"status": status}))
        if requeue is not None:
            self.rs_queue.add_after(key, requeue)
        if failure is not None:
            raise RuntimeError(f"{failure[0]}: {failure[1]}")

    async def _delete_clusters(self, ns: str, rs: str, names: list[str]) -> tuple[str, str] | None:
        gate = asyncio.Semaphore(self.settings.delete_parallelism)
        failure: list[tuple[str, str]] = []

        async def one(cname: str) -> None:
            async with gate:
                current = self.clusters.get((ns, cname)) or {"metadata": {"namespace": ns, "name": cname}}
                try:
                    gone = await asyncio.to_thread(self.custom.delete_namespaced_custom_object, RAY_GROUP, RAY_VERSION,
                                                   ns, RAYCLUSTERS, cname, propagation_policy="Background")
                except ApiException as exc:
                    if exc.status == 404:
                        self.clusters.deleted(current)
                        return
                    failure.append((rslib.FAILED_DELETE, f"cannot delete RayCluster {cname}: {exc.reason}"))
                    return
                kept = gone if isinstance(gone, dict) and (gone.get("metadata") or {}).get("uid") else current
                self.clusters.deleted(kept)
        await asyncio.gather(*(one(n) for n in names))
        kv(log, "RayClusters deleted", namespace=ns, replicaset=rs, count=len(names) - len(failure),
           names=",".join(names))
        return failure[0] if failure else None

    async def _create_clusters(self, ns: str, rs: str, uid: str, template: dict[str, Any],
                               count: int) -> tuple[str, str] | None:
        """Slow start, as the ReplicaSet controller: batches of 1, 2, 4, ... so that a refused template
        fails once, not `count` times."""
        body = raycluster_body(rs, uid, ns, template)
        done, batch, created = 0, 1, []
        while done < count:
            n = min(batch, count - done)
            results = await asyncio.gather(*(asyncio.to_thread(self.custom.create_namespaced_custom_object, RAY_GROUP,
                                                               RAY_VERSION, ns, RAYCLUSTERS, body) for _ in range(n)),
                                           return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            for r in results:
                if isinstance(r, dict):
                    self.clusters.written(r)
                    created.append(r["metadata"]["name"])
            done += n
            if errors:
                exc = errors[0]
                reason = getattr(exc, "reason", type(exc).__name__)
                kv(log, "RayCluster create failed", logging.WARNING, namespace=ns, replicaset=rs,
                   error=f"{reason}: {(getattr(exc, 'body', '') or '')[:300]}")
                return rslib.FAILED_CREATE, f"cannot create RayCluster: {reason}"
            batch *= 2
        kv(log, "RayClusters created", namespace=ns, replicaset=rs, count=len(created), names=",".join(created))
        return None
