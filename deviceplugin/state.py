"""The plugin's device state, shared by the gRPC servicer, the health watcher and /metrics.

Device health lives here and only here (each Device's health_state); the watcher folds what it
observes into it. It outlives gRPC server restarts (kubelet restarts), so health is never lost.
"""

from __future__ import annotations

import asyncio

from deviceplugin.allocate import Topology
from deviceplugin.devices import DeviceSet
from deviceplugin.healthpolicy import Transition, observe


class PluginState:
    def __init__(self, devices: DeviceSet, topology: Topology) -> None:
        self.devices = devices
        self.topology = topology
        self.version = 0
        self._changed = asyncio.Event()
        self.registered = False

    def observe(self, device_id: str, faults: list[str], now: float, quiet_period: float) -> Transition | None:
        """Fold one observation of a device (faults seen now; [] = a clean poll) into its health
        (healthpolicy.observe); returns the transition when what kubelet sees changed."""
        current = self.devices.get(device_id)
        if current is None:
            return None
        new, transition = observe(current.health_state, faults, now, quiet_period)
        if new != current.health_state:
            self.devices = self.devices.with_health_state(device_id, new)
        if transition is not None:
            self._bump()
        return transition

    def _bump(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_change(self, seen_version: int) -> int:
        """Wait until the state is newer than `seen_version`; returns the new version."""
        while self.version == seen_version:
            await self._changed.wait()
        return self.version
