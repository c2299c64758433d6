"""NVML back-end: discovery, polled health checks and XID events through a pynvml-like module.

`nvml` is `pynvml` itself on a GPU node, or `nvml_mock.nvml.open_mock(path)` on a mock node;
only pynvml's function names, constants and NVMLError classes are used, so both behave alike.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pynvml

from brix.logs import kv
from deviceplugin.allocate import Topology
from deviceplugin.backend import BackendError, DeviceEvent, Inventory, MockConfigError
from deviceplugin.devices import Device
from nvml_mock.protocol import NvmlLike

log = logging.getLogger(__name__)

_PCIE_LEVEL = {
    pynvml.NVML_TOPOLOGY_INTERNAL: "internal",
    pynvml.NVML_TOPOLOGY_SINGLE: "single",
    pynvml.NVML_TOPOLOGY_MULTIPLE: "multiple",
    pynvml.NVML_TOPOLOGY_HOSTBRIDGE: "hostbridge",
    pynvml.NVML_TOPOLOGY_NODE: "node",
    pynvml.NVML_TOPOLOGY_SYSTEM: "system",
}


def text(value: Any) -> str:
    """NVML strings come back as bytes from some pynvml versions and str from others."""
    return value.decode() if isinstance(value, bytes) else str(value)


def bus_id(nvml: NvmlLike, handle: Any) -> str:
    return text(nvml.nvmlDeviceGetPciInfo(handle).busId).lower()


def _short_bus(bus: str) -> str:
    """NVML "00000000:07:00.0" and sysfs "0000:07:00.0" name the same PCI function."""
    return bus[-12:] if len(bus) > 12 else bus


class NvmlBackend:
    kind = "nvml"

    def __init__(self, nvml: NvmlLike) -> None:
        self.nvml = nvml
        self._handles: dict[str, Any] = {}
        self._id_by_uuid: dict[str, str] = {}
        self._event_set: Any = None
        self._events_ok = False
        try:
            nvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise BackendError(f"NVML init failed: {exc}") from exc

    # -- discovery -------------------------------------------------------------------------
    def discover(self, id_strategy: str) -> Inventory:
        nvml = self.nvml
        try:
            count = nvml.nvmlDeviceGetCount()
            devices: list[Device] = []
            bus_ids: list[str] = []
            for index in range(count):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                uuid = text(nvml.nvmlDeviceGetUUID(handle))
                bus = bus_id(nvml, handle)
                device_id = uuid if id_strategy == "uuid" else str(index)
                devices.append(Device(
                    id=device_id, index=index, uuid=uuid, name=text(nvml.nvmlDeviceGetName(handle)),
                    pci_bus_id=bus, minor=self._minor(handle, index), numa_node=self._numa(handle, bus),
                ))
                bus_ids.append(bus)
                self._handles[device_id] = handle
                self._id_by_uuid[uuid] = device_id
            driver = self._driver()
        except pynvml.NVMLError as exc:
            raise BackendError(f"NVML device discovery failed: {exc}") from exc
        return Inventory(devices, self._topology(devices, bus_ids), driver)

    def _driver(self) -> str:
        try:
            return text(self.nvml.nvmlSystemGetDriverVersion())
        except (pynvml.NVMLError, AttributeError):
            return ""

    def _minor(self, handle: Any, index: int) -> int:
        try:
            return int(self.nvml.nvmlDeviceGetMinorNumber(handle))
        except (pynvml.NVMLError, AttributeError):
            return index

    def _numa(self, handle: Any, bus: str) -> int | None:
        try:
            node = int(self.nvml.nvmlDeviceGetNumaNodeId(handle))
            return node if node >= 0 else None
        except (pynvml.NVMLError, AttributeError):
            pass
        path = Path("/sys/bus/pci/devices") / _short_bus(bus) / "numa_node"
        try:
            node = int(path.read_text().strip())
        except (OSError, ValueError):
            return None
        return node if node >= 0 else None

    def _topology(self, devices: list[Device], bus_ids: list[str]) -> Topology:
        nvml = self.nvml
        by_bus = {_short_bus(b): d.id for b, d in zip(bus_ids, devices, strict=True)}
        nvlinks: dict[frozenset[str], int] = {}
        pcie: dict[frozenset[str], str] = {}
        for device in devices:
            handle = self._handles[device.id]
            for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
                try:
                    if nvml.nvmlDeviceGetNvLinkState(handle, link) != pynvml.NVML_FEATURE_ENABLED:
                        continue
                    remote = _short_bus(bus_id_of(nvml.nvmlDeviceGetNvLinkRemotePciInfo(handle, link)))
                except pynvml.NVMLError:
                    break  # NOT_SUPPORTED / INVALID_ARGUMENT: no (more) links on this GPU
                peer = by_bus.get(remote)
                if peer is not None and peer != device.id:
                    key = frozenset((device.id, peer))
                    nvlinks[key] = nvlinks.get(key, 0) + 1
        # each link was counted from both ends
        nvlinks = {k: (v + 1) // 2 for k, v in nvlinks.items()}
        for i, a in enumerate(devices):
            for b in devices[i + 1:]:
                try:
                    level = nvml.nvmlDeviceGetTopologyCommonAncestor(self._handles[a.id], self._handles[b.id])
                except pynvml.NVMLError:
                    continue
                pcie[frozenset((a.id, b.id))] = _PCIE_LEVEL.get(int(level), "")
        return Topology(nvlinks, pcie, {d.id: d.index for d in devices})

    # -- polled checks ---------------------------------------------------------------------
    def poll(self, device: Device, disabled: frozenset[str]) -> list[str]:
        handle = self._handles[device.id]
        faults: list[str] = []
        checks = (("ecc", self._ecc), ("retired_pages", self._retired), ("remapped_rows", self._remapped),
                  ("pcie_link", self._pcie))
        for name, check in checks:
            if name in disabled:
                continue
            try:
                faults.extend(check(handle))
            except pynvml.NVMLError_NotSupported:
                continue
            except pynvml.NVMLError as exc:
                faults.append(f"NVML error in {name} check: {exc}")
        return faults

    def _ecc(self, handle: Any) -> list[str]:
        n = self.nvml.nvmlDeviceGetTotalEccErrors(
            handle, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC)
        return [f"uncorrectable ECC errors: {n}"] if n else []

    def _retired(self, handle: Any) -> list[str]:
        out = []
        dbe = self.nvml.nvmlDeviceGetRetiredPages(handle, pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)
        if len(dbe):
            out.append(f"pages retired for double-bit ECC: {len(dbe)}")
        if self.nvml.nvmlDeviceGetRetiredPagesPendingStatus(handle) == pynvml.NVML_FEATURE_ENABLED:
            out.append("page retirement pending (GPU reset needed)")
        return out

    def _remapped(self, handle: Any) -> list[str]:
        _corr, _unc, pending, failure = self.nvml.nvmlDeviceGetRemappedRows(handle)
        out = []
        if failure:
            out.append("row remapping failure")
        if pending:
            out.append("row remapping pending (GPU reset needed)")
        return out

    def _pcie(self, handle: Any) -> list[str]:
        cur = self.nvml.nvmlDeviceGetCurrPcieLinkWidth(handle)
        top = self.nvml.nvmlDeviceGetMaxPcieLinkWidth(handle)
        return [f"PCIe link width x{cur} below max x{top}"] if cur < top else []

    # -- XID events ------------------------------------------------------------------------
    def supports_events(self) -> bool:
        nvml = self.nvml
        if self._event_set is not None:
            return self._events_ok
        try:
            self._event_set = nvml.nvmlEventSetCreate()
        except pynvml.NVMLError as exc:
            kv(log, "NVML event set unavailable; XID health checks off", logging.WARNING, error=str(exc))
            return False
        for device_id, handle in self._handles.items():
            try:
                nvml.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, self._event_set)
                self._events_ok = True
            except pynvml.NVMLError_NotSupported:
                kv(log, "GPU too old for XID events; its XID check is off", logging.WARNING, device=device_id)
            except pynvml.NVMLError as exc:
                kv(log, "registering XID events failed", logging.WARNING, device=device_id, error=str(exc))
        return self._events_ok

    def wait_events(self, timeout_s: float) -> list[DeviceEvent]:
        nvml = self.nvml
        try:
            data = nvml.nvmlEventSetWait_v2(self._event_set, int(timeout_s * 1000))
        except pynvml.NVMLError_Timeout:
            return []
        except pynvml.NVMLError as exc:
            return [DeviceEvent(None, None, f"NVML event wait failed: {exc}")]
        if data.eventType != pynvml.nvmlEventTypeXidCriticalError:
            return []
        try:
            uuid = text(nvml.nvmlDeviceGetUUID(data.device))
        except pynvml.NVMLError as exc:
            return [DeviceEvent(None, int(data.eventData), f"XID {data.eventData} on an unknown GPU: {exc}")]
        device_id = self._id_by_uuid.get(uuid)
        return [DeviceEvent(device_id, int(data.eventData), "")]

    def close(self) -> None:
        nvml = self.nvml
        if self._event_set is not None:
            try:
                nvml.nvmlEventSetFree(self._event_set)
            except pynvml.NVMLError:
                pass
            self._event_set = None
        try:
            nvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def bus_id_of(pci_info: Any) -> str:
    return text(pci_info.busId).lower()


def open_nvml(mock_config: str | None) -> NvmlLike:
    """The pynvml-like module: the real one, or the mock reading `mock_config` (MockConfigError
    when the mock's config is malformed)."""
    if mock_config:
        from nvml_mock.model import ConfigError
        from nvml_mock.nvml import open_mock

        try:
            return open_mock(mock_config)
        except ConfigError as exc:
            raise MockConfigError(str(exc)) from exc
    return pynvml


def in_container_hint() -> str:
    """A hint for the init-failure message on a node without a driver."""
    if not os.path.exists("/dev/nvidiactl"):
        return " (no /dev/nvidiactl here: is the NVIDIA driver installed, or did you mean --mock-config?)"
    return ""
