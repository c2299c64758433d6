"""What every controller's kopf event handler and tick loop share (the controllers keep their own
bookkeeping; kopf timers are not used, since they put a finalizer on every object)."""

from __future__ import annotations

import asyncio
from typing import Any


def seen(event: dict[str, Any]) -> tuple[str, dict[str, Any] | None] | None:
    """(uid, the object) of a kopf watch event, the object None when it was deleted; None for an
    event without a uid."""
    obj = event.get("object") or {}
    uid = (obj.get("metadata") or {}).get("uid")
    if not uid:
        return None
    return str(uid), None if event.get("type") == "DELETED" else obj


def track(event: dict[str, Any], tracked: dict[str, dict[str, Any]], *derived: dict[str, Any]) -> bool:
    """Keep `tracked` (uid -> body) in step with a kopf watch event; a deleted object also leaves
    each of `derived` (what a controller keeps per uid). False for an event without a uid."""
    got = seen(event)
    if got is None:
        return False
    uid, obj = got
    if obj is None:
        tracked.pop(uid, None)
        for kept in derived:
            kept.pop(uid, None)
    else:
        tracked[uid] = obj
    return True


async def until_woken(wake: asyncio.Event, stop: asyncio.Event, timeout_s: float) -> None:
    """Sleep until `wake` or `stop` is set, or `timeout_s` passes (the next round of a tick loop)."""
    waker = asyncio.create_task(wake.wait())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({waker, stopper}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    waker.cancel()
    stopper.cancel()
