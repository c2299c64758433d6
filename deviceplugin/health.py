"""Health watcher: folds NVML events and polls into the plugin's device health (PluginState).

Two coroutines fold into the one health store, PluginState (both run on the event loop, so no
locks), and report each Healthy/Unhealthy transition to `on_transition` (the /metrics gauge):
- the XID loop waits on the back-end's event set in a worker thread (nvmlEventSetWait blocks)
  and folds every counted XID in as a fault at once, so a fault reaches ListAndWatch in well
  under a second;
- the poll loop runs the polled checks (ECC, retired pages, row remapping, PCIe width) every
  `poll_interval` seconds in another worker thread; a clean poll is what lets a device recover
  after the quiet period (see healthpolicy.py for the policy).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from brix.logs import kv
from deviceplugin.backend import Backend
from deviceplugin.devices import Device
from deviceplugin.healthpolicy import HealthChecks, Transition
from deviceplugin.state import PluginState

log = logging.getLogger(__name__)


class HealthWatcher:
    def __init__(self, backend: Backend, devices: list[Device], checks: HealthChecks, state: PluginState,
                 on_transition: Callable[[str, Transition], None], *, quiet_period: float, poll_interval: float,
                 event_timeout: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self.devices = devices
        self.checks = checks
        self.state = state
        self.on_transition = on_transition
        self.quiet_period = quiet_period
        self.poll_interval = poll_interval
        self.event_timeout = event_timeout
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="health")

    async def run(self) -> None:
        if self.checks.all_disabled and not self.checks.enabled_xids:
            kv(log, "all health checks disabled (DP_DISABLE_HEALTHCHECKS=all)", logging.WARNING)
            await asyncio.Event().wait()  # nothing to watch; stay alive until cancelled
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(self._poll_loop(loop), name="health-poll")]
        if self.checks.watch_xids():
            events = await loop.run_in_executor(self._pool, self.backend.supports_events)
            if events:
                tasks.append(asyncio.create_task(self._xid_loop(loop), name="health-xid"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _fold(self, device_id: str, faults: list[str]) -> None:
        transition = self.state.observe(device_id, faults, self.clock(), self.quiet_period)
        if transition is not None:
            level = logging.INFO if transition.healthy else logging.WARNING
            kv(log, "device healthy" if transition.healthy else "device unhealthy", level,
               device=device_id, reason=transition.reason)
            self.on_transition(device_id, transition)

    async def poll_once(self) -> None:
        """One round of polled checks, so the first device list kubelet sees is already right."""
        if self.checks.all_disabled:
            return
        results = await asyncio.get_running_loop().run_in_executor(self._pool, self._poll_all,
                                                                   self.checks.disabled_polls)
        for device_id, faults in results.items():
            self._fold(device_id, faults)

    async def _xid_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            events = await loop.run_in_executor(self._pool, self.backend.wait_events, self.event_timeout)
            for event in events:
                if event.device_id is None:
                    # The event path itself failed: like NVIDIA, distrust every device.
                    for device in self.devices:
                        self._fold(device.id, [event.message])
                    continue
                if event.xid is None or event.device_id not in self.state.devices:
                    continue
                if self.checks.xid_counts(event.xid):
                    self._fold(event.device_id, [f"critical XID {event.xid}"])
                else:
                    kv(log, "XID ignored by policy", device=event.device_id, xid=event.xid)
            if any(e.device_id is None for e in events):
                await asyncio.sleep(self.event_timeout)  # a failing event path must not spin
            elif not events:
                await asyncio.sleep(0)

    async def _poll_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        disabled = self.checks.disabled_polls
        while True:
            if not self.checks.all_disabled:
                results = await loop.run_in_executor(self._pool, self._poll_all, disabled)
            else:
                results = {d.id: [] for d in self.devices}
            for device_id, faults in results.items():
                self._fold(device_id, faults)
            await asyncio.sleep(self.poll_interval)

    def _poll_all(self, disabled: frozenset[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for device in self.devices:
            try:
                out[device.id] = self.backend.poll(device, disabled)
            except Exception as exc:  # a broken device must not stop health checks of the others
                out[device.id] = [f"health poll failed: {exc}"]
        return out
