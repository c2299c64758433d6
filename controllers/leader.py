"""Leader election through a coordination.k8s.io/v1 Lease (the client-go protocol).

`next_lease` is pure: given the Lease's spec (or None), this replica's identity and `now`, it
says whether to create, renew, take over or stand by, and the spec to write. `Elector` does the
I/O: a write carries the resourceVersion it read, so when two replicas race one gets 409 and
stays a standby.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from brix.logs import kv
from controllers.settings import LeaderSettings

log = logging.getLogger(__name__)


def _ts(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(ts: Any) -> float | None:
    if ts is None:
        return None
    if isinstance(ts, dt.datetime):
        return (ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)).timestamp()
    try:
        return dt.datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def next_lease(spec: dict[str, Any] | None, me: str, now: float, duration_s: float) -> tuple[str, dict[str, Any] | None]:
    """("create" | "renew" | "acquire" | "standby", the spec to write or None)."""
    mine = {"holderIdentity": me, "leaseDurationSeconds": int(duration_s), "renewTime": _ts(now)}
    if spec is None:
        return "create", {**mine, "acquireTime": _ts(now), "leaseTransitions": 0}
    holder = spec.get("holderIdentity") or ""
    if holder == me:
        return "renew", {**spec, **mine}
    renewed = _parse(spec.get("renewTime")) or 0.0
    duration = float(spec.get("leaseDurationSeconds") or duration_s)
    if not holder or renewed + duration <= now:
        return "acquire", {**mine, "acquireTime": _ts(now),
                           "leaseTransitions": int(spec.get("leaseTransitions") or 0) + 1}
    return "standby", None


class Elector:
    def __init__(self, api_client: client.ApiClient, settings: LeaderSettings, identity: str,
                 clock: Callable[[], float]) -> None:
        self.api = client.CoordinationV1Api(api_client)
        self.s = settings
        self.identity = identity
        self.clock = clock
        self.leading = False
        self.last_ok: float | None = None       # when the API last answered (readiness)

    def _round(self) -> bool:
        """One read-and-write round; True when this replica holds the Lease afterwards."""
        ns, name = self.s.namespace, self.s.name
        try:
            lease = self.api.read_namespaced_lease(name, ns)
            spec = self.api.api_client.sanitize_for_serialization(lease.spec) or {}
            rv = lease.metadata.resource_version
        except ApiException as exc:
            if exc.status != 404:
                raise
            lease, spec, rv = None, None, None
        action, new = next_lease(spec, self.identity, self.clock(), self.s.lease_duration_s)
        self.last_ok = self.clock()
        if action == "standby":
            return False
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": ns, **({"resourceVersion": rv} if rv else {})}, "spec": new}
        try:
            if lease is None:
                self.api.create_namespaced_lease(ns, body)
            else:
                self.api.replace_namespaced_lease(name, ns, body)
        except ApiException as exc:
            if exc.status in (409, 422):   # another replica wrote first
                return False
            raise
        if action != "renew":
            kv(log, "leader elected", identity=self.identity, lease=f"{ns}/{name}", action=action)
        return True

    def release(self) -> None:
        """Give the Lease up (client-go's ReleaseOnCancel): a standby takes over at its next round
        instead of waiting for the lease to expire."""
        lease = self.api.read_namespaced_lease(self.s.name, self.s.namespace)
        if lease.spec is None or lease.spec.holder_identity != self.identity:
            return
        lease.spec.holder_identity = None
        lease.spec.renew_time = None
        self.api.replace_namespaced_lease(self.s.name, self.s.namespace, lease)
        kv(log, "lease released", identity=self.identity)

    async def run(self, lead: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        """Forever: stand by until the Lease is ours, run lead(stop) while we keep renewing it."""
        task: asyncio.Task[None] | None = None
        stop = asyncio.Event()
        last_renew = 0.0
        try:
            while True:
                try:
                    held = await asyncio.to_thread(self._round)
                    if held:
                        last_renew = self.clock()
                except Exception as exc:  # noqa: BLE001 - the API may come back; the lease expires meanwhile
                    kv(log, "lease round failed", logging.WARNING, error=f"{type(exc).__name__}: {exc}")
                    held = self.leading and self.clock() - last_renew < self.s.lease_duration_s
                if held and task is None:
                    self.leading, stop = True, asyncio.Event()
                    task = asyncio.create_task(lead(stop))
                elif not held and task is not None:
                    kv(log, "leadership lost; stopping", logging.WARNING, identity=self.identity)
                    stop.set()
                    await asyncio.gather(task, return_exceptions=True)
                    task, self.leading = None, False
                if task is not None and task.done():
                    task.result()   # the led work failed: let the process exit (and restart)
                await asyncio.sleep(self.s.renew_period_s)
        finally:
            if task is not None:
                stop.set()
                await asyncio.gather(task, return_exceptions=True)
            if self.leading:
                try:
                    await asyncio.to_thread(self.release)
                except Exception as exc:  # noqa: BLE001 - it expires on its own
                    kv(log, "lease release failed", logging.WARNING, error=f"{type(exc).__name__}: {exc}")
            self.leading = False
