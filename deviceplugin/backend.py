"""The seam between the plugin and the accelerator library (no gRPC here).

A `Backend` discovers devices, reports faults seen by polling, and waits for XID-like events.
Its methods block (NVML calls, nvmlEventSetWait), so the health watcher calls them from worker
threads. Two back-ends exist: `NvmlBackend` (real `pynvml` or `nvml_mock.nvml.open_mock`, the
same API) and `AscendBackend` (DCMI calls, `nvml_mock.dcmi.open_mock`); backends.open_backend
opens one. This module imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from deviceplugin.allocate import Topology
from deviceplugin.devices import Device


class BackendError(RuntimeError):
    """The accelerator library cannot be used (init failed, no devices, bad mock config)."""


@dataclass(frozen=True)
class Inventory:
    """What discovery found: devices in order, and the topology between them."""

    devices: list[Device]
    topology: Topology = field(default_factory=Topology)
    driver: str = ""


@dataclass(frozen=True)
class DeviceEvent:
    """An asynchronous fault report (an NVML XID event), or a failure of the event path itself."""

    device_id: str | None
    """None: the event path failed for every device (NVIDIA marks all devices unhealthy)."""
    xid: int | None
    message: str = ""


class Backend(Protocol):
    kind: str
    """"nvml" or "ascend"."""

    def discover(self, id_strategy: str) -> Inventory: ...

    def poll(self, device: Device, disabled: frozenset[str]) -> list[str]:
        """Faults seen now on one device ([] = clean). `disabled` names polled checks to skip."""
        ...

    def supports_events(self) -> bool: ...

    def wait_events(self, timeout_s: float) -> list[DeviceEvent]:
        """Block up to timeout_s for events; [] on timeout."""
        ...

    def close(self) -> None: ...


class MockConfigError(BackendError):
    """The nvml_mock TOML is malformed (the message names the file and the key)."""
