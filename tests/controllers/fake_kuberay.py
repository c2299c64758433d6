"""A stand-in for the KubeRay operator in tests and benchmarks: it watches RayClusters in one
namespace and, as KubeRay would once a cluster's pods are up, writes a ready status `delay` seconds
after each cluster appears (state ready, HeadPodReady and RayClusterProvisioned True, the ready
transition time), or a failed one (state failed) for the clusters `fail` picks. It creates no pods.

It also records what a benchmark needs: when each cluster appeared, turned ready and went, and the
largest number of clusters that existed at once (`peak`).

    with FakeKubeRay(api_client, "default", delay=seeded_delays(7, 2, 10)) as kuberay:
        ...
        kuberay.wait(lambda k: k.live == 4, "4 clusters")
"""

from __future__ import annotations

import datetime as dt
import heapq
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

GROUP, VERSION, PLURAL = "ray.io", "v1", "rayclusters"
Delay = Callable[[int, str], float]     # (index in order of appearance, name) -> seconds


def seeded_delays(seed: int, low: float, high: float) -> Delay:
    """The k-th cluster to appear gets the k-th draw of uniform(low, high) from Random(seed)."""
    rng = random.Random(seed)
    draws: list[float] = []

    def delay(index: int, _: str) -> float:
        while len(draws) <= index:
            draws.append(rng.uniform(low, high))
        return draws[index]
    return delay


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Seen:
    name: str
    index: int
    appeared: float                     # time.monotonic()
    ready_at: float | None = None
    failed_at: float | None = None
    gone_at: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


class FakeKubeRay:
    def __init__(self, api_client: client.ApiClient, namespace: str, delay: Delay | float = 0.0,
                 fail: Callable[[Seen], bool] = lambda s: False) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.delay: Delay = delay if callable(delay) else (lambda i, n, d=float(delay): d)
        self.fail = fail
        self.clusters: dict[str, Seen] = {}
        self.live = 0
        self.peak = 0
        self.lock = threading.Condition()
        self._due: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._watch = watch.Watch()
        self._threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def __enter__(self) -> FakeKubeRay:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
        for item in listed.get("items", []):
            self._appeared(item)
        rv = listed["metadata"]["resourceVersion"]
        self._threads = [threading.Thread(target=self._watch_loop, args=(rv,), daemon=True, name="fake-kuberay-watch"),
                         threading.Thread(target=self._status_loop, daemon=True, name="fake-kuberay-status")]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        self._watch.stop()
        with self.lock:
            self.lock.notify_all()
        for t in self._threads:
            t.join(10)

    def reset_peak(self) -> None:
        with self.lock:
            self.peak = self.live

    def wait(self, check: Callable[[FakeKubeRay], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with self.lock:
            while not check(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what} (live={self.live}, errors={self.errors[-3:]})")
                self.lock.wait(min(left, 0.2))

    # ---- watching -----------------------------------------------------------------------------------------
    def _watch_loop(self, rv: str) -> None:
        while not self._stop.is_set():
            try:
                for event in self._watch.stream(self.custom.list_namespaced_custom_object, GROUP, VERSION,
                                                self.namespace, PLURAL, resource_version=rv, timeout_seconds=30,
                                                allow_watch_bookmarks=False):
                    obj = event["object"]
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if event["type"] == "ADDED":
                        self._appeared(obj)
                    elif event["type"] == "DELETED":
                        self._gone(obj)
                    if self._stop.is_set():
                        return
            except ApiException as exc:
                if exc.status == 410:    # expired: list again
                    listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
                    names = {i["metadata"]["name"] for i in listed.get("items", [])}
                    for item in listed.get("items", []):
                        self._appeared(item)
                    for name, seen in list(self.clusters.items()):
                        if seen.gone_at is None and name not in names:
                            self._gone({"metadata": {"name": name}})
                    rv = listed["metadata"]["resourceVersion"]
                elif not self._stop.is_set():
                    self.errors.append(f"watch: {exc.status} {exc.reason}")
                    time.sleep(0.2)
            except Exception as exc:  # noqa: BLE001 - the stand-in keeps watching; a test sees .errors
                if not self._stop.is_set():
                    self.errors.append(f"watch: {exc!r}")
                    time.sleep(0.2)

    def _appeared(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        with self.lock:
            if name in self.clusters and self.clusters[name].gone_at is None:
                return
            seen = Seen(name, len(self.clusters), time.monotonic(), labels=dict(obj["metadata"].get("labels") or {}),
                        body=obj)
            self.clusters[name] = seen
            self.live += 1
            self.peak = max(self.peak, self.live)
            heapq.heappush(self._due, (seen.appeared + self.delay(seen.index, name), name))
            self.lock.notify_all()

    def _gone(self, obj: dict[str, Any]) -> None:
        with self.lock:
            seen = self.clusters.get(obj["metadata"]["name"])
            if seen is not None and seen.gone_at is None:
                seen.gone_at = time.monotonic()
                self.live -= 1
                self.lock.notify_all()

    # ---- statuses -------------------------------------------------------------------------------------------
    def _status_loop(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                now = time.monotonic()
                if not self._due or self._due[0][0] > now:
                    self.lock.wait(0.05 if not self._due else min(0.05, self._due[0][0] - now))
                    continue
                _, name = heapq.heappop(self._due)
                seen = self.clusters[name]
                if seen.gone_at is not None:
                    continue
                failed = self.fail(seen)
            self._write_status(seen, failed)

    def _write_status(self, seen: Seen, failed: bool) -> None:
        t = _iso(time.time())
        if failed:
            status: dict[str, Any] = {"state": "failed", "reason": "the head pod cannot start (fake KubeRay)",
                                      "lastUpdateTime": t}
        else:
            status = {"state": "ready", "reason": "", "lastUpdateTime": t, "stateTransitionTimes": {"ready": t},
                      "head": {"podIP": "127.0.0.1", "serviceIP": "127.0.0.1"},
                      "conditions": [
                          {"type": "HeadPodReady", "status": "True", "reason": "HeadPodRunningAndReady",
                           "message": "", "lastTransitionTime": t},
                          {"type": "RayClusterProvisioned", "status": "True", "reason": "AllPodRunningAndReadyFirstTime",
                           "message": "", "lastTransitionTime": t}]}
        try:
            self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, self.namespace, PLURAL, seen.name,
                                                              {"status": status})
        except ApiException as exc:
            if exc.status != 404:
                self.errors.append(f"status of {seen.name}: {exc.status} {exc.reason}")
            return
        with self.lock:
            if failed:
                seen.failed_at = time.monotonic()
            else:
                seen.ready_at = time.monotonic()
            self.lock.notify_all()
