"""The plugin's device state, shared by the gRPC servicer, the health consumer and /metrics.

It outlives gRPC server restarts (kubelet restarts), so device health is never lost.
"""

from __future__ import annotations

import asyncio

from deviceplugin.allocate import Topology
from deviceplugin.devices import DeviceSet


class PluginState:
    def __init__(self, devices: DeviceSet, topology: Topology) -> None:
        self.devices = devices
        self.topology = topology
        self.version = 0
        self._changed = asyncio.Event()
        self.registered = False

    def set_health(self, device_id: str, healthy: bool, reason: str) -> bool:
        """Apply a health change; returns True when it changed what kubelet sees."""
        current = self.devices.get(device_id)
        if current is None:
            return False
        changed = current.healthy != healthy
        self.devices = self.devices.with_health(device_id, healthy, reason)
        if changed:
            self._bump()
        return changed

    def _bump(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_change(self, seen_version: int) -> int:
        """Wait until the state is newer than `seen_version`; returns the new version."""
        while self.version == seen_version:
            await self._changed.wait()
        return self.version
