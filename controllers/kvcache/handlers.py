"""KVCache I/O: a kopf event handler keeps the set of KVCaches; a loop reconciles each of them every
tick (or at once after a change): it creates the objects of controllers/kvcache/resources.py that are
missing, patches those whose spec hash differs (a changed spec rolls the StatefulSet through its
RollingUpdate), reads the StatefulSet's and Redis Deployment's ready counts, and writes the status
when it changed. Owner references make Kubernetes' garbage collector delete the objects with the
KVCache."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import kopf
from kubernetes import client
from kubernetes.client.rest import ApiException

from brix.logs import kv
from controllers import watching
from controllers.kvcache import resources
from controllers.kvcache.model import GROUP, PLURAL, VERSION, SpecError, parse_spec
from controllers.kvcache.status import summarize
from controllers.settings import KVCacheSettings
from controllers.stats import ControllerStats

log = logging.getLogger(__name__)


class KVCacheController:
    def __init__(self, settings: KVCacheSettings, api_client: client.ApiClient, stats: ControllerStats,
                 clock: Callable[[], float]) -> None:
        self.settings = settings
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.stats = stats
        self.clock = clock
        self.tracked: dict[str, dict[str, Any]] = {}   # uid -> body
        self.statuses: dict[str, str] = {}             # uid -> the status last written (JSON)
        self.wake = asyncio.Event()

    def register(self, registry: kopf.OperatorRegistry) -> None:
        @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, id="kvcache-seen")
        async def seen(event: dict[str, Any], **_: Any) -> None:
            if watching.track(event, self.tracked, self.statuses):
                self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()
            await asyncio.gather(*(self._guarded(body) for body in list(self.tracked.values())))
            await watching.until_woken(self.wake, stop, self.settings.tick_s)

    async def _guarded(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        try:
            await self.reconcile(body)
        except Exception as exc:  # noqa: BLE001 - one KVCache's trouble must not stop the others
            kv(log, "kvcache round failed", logging.WARNING, namespace=meta["namespace"], kvcache=meta["name"],
               error=f"{type(exc).__name__}: {exc}")

    async def reconcile(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        name, ns, uid = meta["name"], meta["namespace"], meta["uid"]
        if meta.get("deletionTimestamp"):
            return
        try:
            spec = parse_spec(body.get("spec") or {})
        except SpecError as exc:
            await self._status(body, summarize(None, str(exc), None, None, "", self._conditions(body), self.clock(),
                                               meta.get("generation")))
            return
        observed: dict[str, dict[str, Any] | None] = {}
        for obj in resources.desired(name, ns, uid, spec):
            observed[obj["kind"] + "/" + obj["metadata"]["name"]] = await self._ensure(obj)
        sts = observed.get(f"StatefulSet/{name}")
        redis = observed.get(f"Deployment/{resources.redis_name(name)}")
        status = summarize(spec, None, sts, redis, resources.pool_url(name, ns, spec), self._conditions(body),
                           self.clock(), meta.get("generation"))
        self.stats.kvcache_ready.labels(ns, name).set(status["readyReplicas"])
        await self._status(body, status)

    def _conditions(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return list((body.get("status") or {}).get("conditions") or [])

    async def _ensure(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Create the object if it is missing, patch it if its spec hash differs; returns what the API holds."""
        kind, name, ns = obj["kind"], obj["metadata"]["name"], obj["metadata"]["namespace"]
        read, create, patch = {
            "StatefulSet": (self.apps.read_namespaced_stateful_set, self.apps.create_namespaced_stateful_set,
                            self.apps.patch_namespaced_stateful_set),
            "Deployment": (self.apps.read_namespaced_deployment, self.apps.create_namespaced_deployment,
                           self.apps.patch_namespaced_deployment),
            "Service": (self.core.read_namespaced_service, self.core.create_namespaced_service,
                        self.core.patch_namespaced_service),
        }[kind]
        try:
            current = await self._call(read, name, ns)
        except ApiException as exc:
            if exc.status != 404:
                raise
            try:
                created = await self._call(create, ns, obj)
            except ApiException as exc2:
                if exc2.status != 409:
                    raise
                return None  # made meanwhile: seen next round
            kv(log, "kvcache object created", namespace=ns, kind=kind, name=name)
            return created
        if resources.spec_hash(current) == resources.spec_hash(obj):
            return current
        patch_body = {"metadata": {"annotations": obj["metadata"]["annotations"]}, "spec": obj["spec"]}
        if kind == "Service":  # clusterIP and selector stay; only ports change with the spec
            patch_body["spec"] = {"ports": obj["spec"]["ports"]}
        patched = await self._call(patch, name, ns, patch_body)
        kv(log, "kvcache object updated", namespace=ns, kind=kind, name=name)
        return patched

    async def _call(self, fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
        resp = await asyncio.to_thread(fn, *args, _preload_content=False)
        return json.loads(resp.data)

    async def _status(self, body: dict[str, Any], status: dict[str, Any]) -> None:
        meta = body["metadata"]
        said = json.dumps(status, sort_keys=True)
        if self.statuses.get(meta["uid"]) == said:
            return
        old = body.get("status") or {}
        await asyncio.to_thread(self.custom.patch_namespaced_custom_object_status, GROUP, VERSION, meta["namespace"],
                                PLURAL, meta["name"], {"status": status})
        self.statuses[meta["uid"]] = said
        body["status"] = status
        if old.get("phase") != status["phase"] or old.get("readyReplicas") != status["readyReplicas"]:
            kv(log, "kvcache status", namespace=meta["namespace"], kvcache=meta["name"], phase=status["phase"],
               ready=f"{status['readyReplicas']}/{status['replicas']}", pool_url=status.get("poolURL") or None)
