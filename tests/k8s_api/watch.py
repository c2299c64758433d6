"""Watch events: the history kept per resource, fan-out to open watches, and the watch stream itself."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from collections import defaultdict, deque

import aiohttp.web
import kmock

from tests.k8s_api.patches import merge_patch
from tests.k8s_api.resources import ApiError, Obj, ResourceType, Route, as_version
from tests.k8s_api.selectors import Predicate, matcher

Key = tuple[str, str]


@dataclasses.dataclass
class WatchEvent:
    rv: int
    type: str
    obj: Obj
    old: Obj | None = None


@dataclasses.dataclass
class Watcher:
    queue: asyncio.Queue[WatchEvent | None]  # None: the server is closing; an EXPIRED event: see expire()
    match: Predicate


EXPIRED = "EXPIRED"  # not on the wire: the watch ends with an ERROR 410 event


class WatchBus:
    """The last `history` events of each resource (for resourceVersion replays) and the open watches."""

    def __init__(self, history: int) -> None:
        self.history = history
        self.events: dict[Key, deque[WatchEvent]] = {}
        self.floor: dict[Key, int] = {}  # replays from an older resourceVersion answer 410 Expired
        self.watchers: dict[Key, list[Watcher]] = defaultdict(list)
        self.closing = False

    def track(self, key: Key) -> None:
        self.events.setdefault(key, deque(maxlen=self.history))
        self.floor.setdefault(key, 0)

    def publish(self, key: Key, event: WatchEvent) -> None:
        events = self.events[key]
        if len(events) == events.maxlen:
            self.floor[key] = events[0].rv
        events.append(event)
        for watcher in self.watchers.get(key, []):
            watcher.queue.put_nowait(event)

    def expire(self, key: Key, rv: int) -> None:
        """Forget the history of a resource up to rv, as an etcd compaction does, and end its open
        watches with an ERROR 410 Expired event, as kube-apiserver does when a watcher's position is
        compacted away; a watch from a version older than rv gets 410 too, so clients must re-list."""
        self.events[key].clear()
        self.floor[key] = max(self.floor[key], rv)
        for watcher in self.watchers.get(key, []):
            watcher.queue.put_nowait(WatchEvent(rv, EXPIRED, {}))

    async def close(self, timeout: float = 2.0) -> None:
        """End every watch stream (so that the server can stop without waiting on them)."""
        self.closing = True
        for watchers in self.watchers.values():
            for watcher in watchers:
                watcher.queue.put_nowait(None)
        deadline = asyncio.get_running_loop().time() + timeout
        while any(self.watchers.values()) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)


async def serve_watch(bus: WatchBus, objects: dict[tuple[str, str], Obj], request: kmock.Request,
                      rt: ResourceType, route: Route) -> aiohttp.web.StreamResponse:
    """GAP: watches with selectors, resourceVersion replays, timeoutSeconds, and disconnect detection.

    objects: the stored objects of rt, sent as ADDED first when the watch names no resourceVersion.
    """
    match = matcher(request.params, route)
    rv_param = request.params.get("resourceVersion") or "0"
    try:
        since = int(rv_param)
        timeout = float(request.params.get("timeoutSeconds") or math.inf)
    except ValueError as exc:
        raise ApiError(400, "BadRequest", f"resourceVersion and timeoutSeconds must be numbers: {exc}") from exc
    backlog: list[WatchEvent] = []
    expired = False
    if since == 0:  # no version: the current state first, as ADDED events
        backlog = [WatchEvent(int(o["metadata"]["resourceVersion"]), "ADDED", o) for _, o in sorted(objects.items())]
    elif since < bus.floor[rt.key]:
        expired = True
    else:
        backlog = [e for e in bus.events[rt.key] if e.rv > since]
    watcher = Watcher(asyncio.Queue(), match)
    for event in backlog:
        watcher.queue.put_nowait(event)
    bus.watchers[rt.key].append(watcher)  # no await since the snapshot: nothing is missed
    raw = request._raw_request
    assert raw is not None
    response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    try:
        await response.prepare(raw)
        if expired:
            await response.write(expired_line(since, bus.floor[rt.key]))
            return response
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not bus.closing and loop.time() < deadline:
            if raw.transport is None or raw.transport.is_closing():
                break
            try:
                event = await asyncio.wait_for(watcher.queue.get(), min(0.5, deadline - loop.time()))
            except TimeoutError:
                continue
            if event is None:  # the server is closing
                break
            if event.type == EXPIRED:  # compacted under the open watch (WatchBus.expire)
                await response.write(expired_line(since, event.rv))
                break
            line = watch_line(rt, route, event, match)
            if line is not None:
                await response.write(line)
        await response.write_eof()
    except ConnectionError:
        pass  # the client went away; aiohttp's test server also cancels this handler then
    finally:
        bus.watchers[rt.key].remove(watcher)
    return response


def expired_line(since: int, floor: int) -> bytes:
    status = ApiError(410, "Expired", f"too old resource version: {since} ({floor})")
    return json.dumps({"type": "ERROR", "object": status.status()}).encode() + b"\n"


def watch_line(rt: ResourceType, route: Route, event: WatchEvent, match: Predicate) -> bytes | None:
    """Selector transitions as the real watch cache sends them: (un)matching becomes ADDED/DELETED."""
    etype, obj = event.type, event.obj
    now = match(obj)
    if etype == "MODIFIED" and event.old is not None:
        before = match(event.old)
        if before and not now:
            etype = "DELETED"
            obj = merge_patch(event.old, {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}})
        elif now and not before:
            etype = "ADDED"
        elif not now:
            return None
    elif not now:
        return None
    return json.dumps({"type": etype, "object": as_version(rt, obj, route.version)}).encode() + b"\n"
