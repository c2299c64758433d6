"""What the fleet controllers keep between syncs: a cache of watched objects, written through by the
controllers' own creates, patches and deletes, and a work queue of keys to sync (no kube I/O here).

The cache is what a client-go informer's store is, plus write-through: the body an API call
returns goes in at once, so a sync that follows sooner than the watch event neither creates a
second RayCluster nor scales a replica set twice (the watch event of that write still triggers
the syncs it would have). A watch event older than what is cached (smaller resourceVersion) is
ignored, and an object this process deleted is not brought back by a
late event (a tombstone per uid until its DELETED event, or 120 s).

The queue is client-go's workqueue: a key is in it at most once, one sync per key at a time (a
key added while it syncs runs again afterwards), `add_after` for delayed checks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Hashable
from typing import Any

Key = tuple[str, str]      # (namespace, name)
TOMBSTONE_S = 120.0


def _rv(body: dict[str, Any]) -> int | None:
    raw = str((body.get("metadata") or {}).get("resourceVersion") or "")
    return int(raw) if raw.isdigit() else None


class Cache:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.objects: dict[Key, dict[str, Any]] = {}
        self.tombstones: dict[str, float] = {}      # uid -> when this process deleted it

    @staticmethod
    def key(body: dict[str, Any]) -> Key:
        meta = body.get("metadata") or {}
        return meta.get("namespace") or "", meta.get("name") or ""

    def get(self, key: Key) -> dict[str, Any] | None:
        return self.objects.get(key)

    def in_namespace(self, namespace: str) -> list[dict[str, Any]]:
        return [b for (ns, _), b in self.objects.items() if ns == namespace]

    def observe(self, etype: str | None, body: dict[str, Any]) -> bool:
        """A watch event; True when the cache changed."""
        key, uid = self.key(body), (body.get("metadata") or {}).get("uid", "")
        if etype == "DELETED":
            self.tombstones.pop(uid, None)
            current = self.objects.get(key)
            if current is not None and (current.get("metadata") or {}).get("uid") == uid:
                del self.objects[key]
                return True
            return False
        self._expire()
        if uid in self.tombstones:
            return False
        return self._put(key, body)

    def written(self, body: dict[str, Any]) -> None:
        """What an API call of ours returned (create, patch). Its watch event still counts as news
        (the object's other controller has not seen it yet)."""
        self._put(self.key(body), body, strict=True)

    def deleted(self, body: dict[str, Any]) -> None:
        uid = (body.get("metadata") or {}).get("uid", "")
        key = self.key(body)
        current = self.objects.get(key)
        if current is not None and (current.get("metadata") or {}).get("uid") == uid:
            if (body.get("metadata") or {}).get("finalizers"):
                # held by a finalizer: it stays, marked as being deleted, until its DELETED event
                self.objects[key] = {**current, "metadata": {**current["metadata"],
                                                             "deletionTimestamp": "deleting"}}
                return
            del self.objects[key]
        self.tombstones[uid] = self.clock()

    def _put(self, key: Key, body: dict[str, Any], strict: bool = False) -> bool:
        current = self.objects.get(key)
        if current is not None:
            same_uid = (current.get("metadata") or {}).get("uid") == (body.get("metadata") or {}).get("uid")
            old, new = _rv(current), _rv(body)
            if same_uid and old is not None and new is not None and (new < old or (strict and new == old)):
                return False
        self.objects[key] = body
        return True

    def _expire(self) -> None:
        now = self.clock()
        for uid in [u for u, t in self.tombstones.items() if now - t > TOMBSTONE_S]:
            del self.tombstones[uid]


class WorkQueue:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self.dirty: set[Hashable] = set()
        self.processing: set[Hashable] = set()
        self.timers: dict[Hashable, asyncio.TimerHandle] = {}

    def add(self, key: Hashable) -> None:
        if key in self.dirty:
            return
        self.dirty.add(key)
        if key not in self.processing:
            self.queue.put_nowait(key)

    def add_after(self, key: Hashable, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        old = self.timers.get(key)
        if old is not None:
            if old.when() <= when:
                return
            old.cancel()
        self.timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: Hashable) -> None:
        self.timers.pop(key, None)
        self.add(key)

    async def get(self) -> Hashable:
        key = await self.queue.get()
        self.dirty.discard(key)
        self.processing.add(key)
        return key

    def done(self, key: Hashable) -> None:
        self.processing.discard(key)
        if key in self.dirty:
            self.queue.put_nowait(key)

    def close(self) -> None:
        for t in self.timers.values():
            with contextlib.suppress(Exception):
                t.cancel()
        self.timers.clear()
