"""Kubernetes discovery: watch pods labelled model.brix.dev/name; Ready pods with an IP become
endpoints http://<podIP>:<model.brix.dev/port or 8000>. Also watch the EndpointSlices that the
ModelAdapter controller writes (label adapter.model.brix.dev/name): an adapter is routed to the
pods its slice lists, at once, and to no other (gateway/store.py). The blocking watches of the
official client run in worker threads and hand events to the event loop."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from brix.logs import kv
from gateway.store import EndpointStore

log = logging.getLogger(__name__)

MODEL_LABEL = "model.brix.dev/name"
PORT_LABEL = "model.brix.dev/port"
DEFAULT_PORT = 8000
ADAPTER_LABEL = "adapter.model.brix.dev/name"


def slice_endpoints(eps: Any) -> tuple[str | None, list[str]]:
    """(adapter name, endpoint URLs of its ready addresses) for a V1EndpointSlice (or a dict)."""
    meta = _get(eps, "metadata")
    adapter = (_get(meta, "labels") or {}).get(ADAPTER_LABEL)
    ports = _get(eps, "ports") or []
    port = _get(ports[0], "port") if ports else None
    urls = []
    for ep in _get(eps, "endpoints") or []:
        cond = _get(ep, "conditions")
        if cond is not None and _get(cond, "ready") is False:
            continue
        urls += [f"http://{_pod_ip(addr)}:{port or DEFAULT_PORT}" for addr in _get(ep, "addresses") or []]
    return adapter, urls


def _pod_ip(address: str) -> str:
    """An IPv4 slice address, or a pod DNS name a-b-c-d.<ns>.pod.cluster.local from an FQDN slice (the
    local cluster's 127.x pod IPs may not appear in IPv4 slices) -> the IP."""
    head, _, rest = address.partition(".")
    parts = head.split("-")
    if ".pod." in f".{rest}." and len(parts) == 4 and all(p.isdigit() for p in parts):
        return ".".join(parts)
    return address


def pod_endpoint(pod: Any) -> tuple[str | None, bool]:
    """(endpoint URL or None, ready) for a V1Pod (or the same shape as a dict, for tests)."""
    meta, status = _get(pod, "metadata"), _get(pod, "status")
    labels = _get(meta, "labels") or {}
    ip = _get(status, "pod_ip") or _get(status, "podIP")
    try:
        port = int(labels.get(PORT_LABEL, DEFAULT_PORT))
    except (TypeError, ValueError):
        port = DEFAULT_PORT
    if not ip:
        return None, False
    ready = False
    for cond in _get(status, "conditions") or []:
        if _get(cond, "type") == "Ready":
            ready = _get(cond, "status") == "True"
    if _get(meta, "deletion_timestamp") or _get(meta, "deletionTimestamp"):
        ready = False
    return f"http://{ip}:{port}", ready


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


class KubernetesDiscovery:
    def __init__(self, api_client: Any, namespace: str | None, label_selector: str = MODEL_LABEL) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.label_selector = label_selector
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pods: dict[str, str] = {}     # pod uid -> endpoint
        self._sync: Any = None

    async def start(self, store: EndpointStore) -> None:
        loop = asyncio.get_running_loop()

        def apply(kind: str, uid: str, endpoint: str | None, ready: bool) -> None:
            old = self._pods.get(uid)
            if kind == "DELETED" or endpoint is None:
                if old:
                    store.remove(old)
                    self._pods.pop(uid, None)
                    kv(log, "pod endpoint removed", endpoint=old)
                return
            if old and old != endpoint:
                store.remove(old)
            self._pods[uid] = endpoint
            store.upsert(endpoint, ready)
            kv(log, "pod endpoint", endpoint=endpoint, ready=ready, event=kind)

        def sync(uids: set[str]) -> None:
            """After a (re)list: forget pods that vanished while the watch was down."""
            for uid in [u for u in self._pods if u not in uids]:
                apply("DELETED", uid, None, False)
            store.discovered = True

        self._sync = sync
        self._thread = threading.Thread(target=self._watch, args=(loop, apply), name="k8s-pod-watch", daemon=True)
        self._thread.start()

        slices: dict[str, str] = {}      # slice uid -> adapter

        def apply_slice(kind: str, uid: str, adapter: str | None, urls: list[str]) -> None:
            if adapter is None:
                return
            if kind == "DELETED":
                slices.pop(uid, None)
                store.drop_adapter(adapter)
            else:
                slices[uid] = adapter
                store.set_adapter_endpoints(adapter, urls)
            kv(log, "adapter endpoints", adapter=adapter, endpoints=",".join(urls) or "-", event=kind)

        def sync_slices(uids: set[str]) -> None:
            for uid in [u for u in slices if u not in uids]:
                apply_slice("DELETED", uid, slices[uid], [])

        self._slice_thread = threading.Thread(target=self._watch_slices, args=(loop, apply_slice, sync_slices),
                                              name="k8s-slice-watch", daemon=True)
        self._slice_thread.start()

    def _watch_slices(self, loop: asyncio.AbstractEventLoop, apply: Any, sync: Any) -> None:
        from kubernetes import client, watch

        api = client.DiscoveryV1Api(self.api_client)
        fn = api.list_namespaced_endpoint_slice if self.namespace else api.list_endpoint_slice_for_all_namespaces
        args = (self.namespace,) if self.namespace else ()
        resource_version = None
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    items = fn(*args, label_selector=ADAPTER_LABEL)
                    for eps in items.items:
                        loop.call_soon_threadsafe(apply, "ADDED", eps.metadata.uid, *slice_endpoints(eps))
                    loop.call_soon_threadsafe(sync, {e.metadata.uid for e in items.items})
                    resource_version = items.metadata.resource_version
                w = watch.Watch()
                for event in w.stream(fn, *args, label_selector=ADAPTER_LABEL, timeout_seconds=5,
                                      resource_version=resource_version):
                    if self._stop.is_set():
                        w.stop()
                        break
                    eps = event["object"]
                    resource_version = eps.metadata.resource_version or resource_version
                    loop.call_soon_threadsafe(apply, event["type"], eps.metadata.uid, *slice_endpoints(eps))
            except Exception as exc:  # noqa: BLE001 - keep watching; the API may come back
                if self._stop.is_set():
                    break
                kv(log, "endpointslice watch failed; retrying", logging.WARNING, error=type(exc).__name__,
                   status=getattr(exc, "status", None))
                resource_version = None
                self._stop.wait(1.0)

    def _watch(self, loop: asyncio.AbstractEventLoop, apply: Any) -> None:
        from kubernetes import client, watch

        api = client.CoreV1Api(self.api_client)
        resource_version = None
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    if self.namespace:
                        pods = api.list_namespaced_pod(self.namespace, label_selector=self.label_selector)
                    else:
                        pods = api.list_pod_for_all_namespaces(label_selector=self.label_selector)
                    for pod in pods.items:
                        ep, ready = pod_endpoint(pod)
                        loop.call_soon_threadsafe(apply, "ADDED", pod.metadata.uid, ep, ready)
                    loop.call_soon_threadsafe(self._sync, {p.metadata.uid for p in pods.items})
                    resource_version = pods.metadata.resource_version
                w = watch.Watch()
                kwargs: dict[str, Any] = {"label_selector": self.label_selector, "timeout_seconds": 5,
                                          "resource_version": resource_version}
                fn = api.list_namespaced_pod if self.namespace else api.list_pod_for_all_namespaces
                args = (self.namespace,) if self.namespace else ()
                for event in w.stream(fn, *args, **kwargs):
                    if self._stop.is_set():
                        w.stop()
                        break
                    pod = event["object"]
                    ep, ready = pod_endpoint(pod)
                    resource_version = pod.metadata.resource_version or resource_version
                    loop.call_soon_threadsafe(apply, event["type"], pod.metadata.uid, ep, ready)
            except Exception as exc:  # noqa: BLE001 - keep watching; the API may come back
                if self._stop.is_set():
                    break
                status = getattr(exc, "status", None)
                kv(log, "pod watch failed; retrying", logging.WARNING, error=type(exc).__name__, status=status)
                resource_version = None        # relist (also after 410 Gone)
                self._stop.wait(1.0)

    async def stop(self) -> None:
        self._stop.set()
