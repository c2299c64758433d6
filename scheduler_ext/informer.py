"""Kubernetes mode: list + watch nodes and pods with the official client, in background threads.

Each event is handed to the event loop (`deliver` is called with call_soon_threadsafe), so the
cache is only ever mutated on the loop thread. A watch that expires (410 Gone) or breaks is
followed by a fresh list, which replaces that kind's contents in the cache.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from brix.logs import kv

log = logging.getLogger(__name__)

# deliver(kind, event_type, object) with event_type ADDED | MODIFIED | DELETED | SYNC (object: items list)
Deliver = Callable[[str, str, Any], None]


class Informer:
    def __init__(self, api_client: Any, deliver: Deliver, watch_timeout_s: int = 300,
                 retry_s: float = 1.0) -> None:
        self.api_client = api_client
        self.deliver = deliver
        self.watch_timeout_s = watch_timeout_s
        self.retry_s = retry_s
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.api_client)
        # only pods that hold resources: bound and not finished (like kube-scheduler's own informer)
        pod_selector = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"
        for kind, lister, selector in (("node", core.list_node, None),
                                       ("pod", core.list_pod_for_all_namespaces, pod_selector)):
            thread = threading.Thread(target=self._run, args=(kind, lister, selector), name=f"informer-{kind}",
                                      daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.stop_event.set()

    def _run(self, kind: str, lister: Callable[..., Any], selector: str | None) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        while not self.stop_event.is_set():
            try:
                extra = {"field_selector": selector} if selector else {}
                resp = lister(_preload_content=False, **extra)
                doc = json.loads(resp.data)
                version = (doc.get("metadata") or {}).get("resourceVersion")
                self.deliver(kind, "SYNC", doc.get("items") or [])
                kv(log, "informer listed", kind=kind, items=len(doc.get("items") or []), resource_version=version)
                while not self.stop_event.is_set():
                    stream = watch.Watch().stream(lister, resource_version=version, deserialize=False,
                                                  timeout_seconds=self.watch_timeout_s,
                                                  allow_watch_bookmarks=True, **extra)
                    for event in stream:
                        if self.stop_event.is_set():
                            return
                        obj = event.get("object") or {}
                        rv = (obj.get("metadata") or {}).get("resourceVersion")
                        if rv:
                            version = rv
                        if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                            self.deliver(kind, event["type"], obj)
            except ApiException as exc:
                if exc.status != 410:
                    kv(log, "informer watch failed, relisting", logging.WARNING, kind=kind, status=exc.status,
                       reason=exc.reason)
                    self.stop_event.wait(self.retry_s)
            except Exception as exc:  # noqa: BLE001 - a broken connection must not end the informer
                kv(log, "informer error, relisting", logging.WARNING, kind=kind, error=repr(exc))
                self.stop_event.wait(self.retry_s)


def load_api_client(kubeconfig: str | None) -> Any:
    from kubernetes import client, config

    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    try:
        config.load_incluster_config()
        return client.ApiClient()
    except config.ConfigException:
        return config.new_client_from_config()
