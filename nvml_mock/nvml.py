"""A pynvml-compatible NVML mock driven by a live TOML config (see README.md).

`open_mock(path)` returns an `NvmlMock` whose `nvml*` methods have pynvml's names, parameters,
return types (the same ctypes structures: nvmlPciInfo_t, c_nvmlMemory_t, c_nvmlEventData_t, ...)
and errors (pynvml's own NVMLError subclasses, raised as `pynvml.NVMLError(code)`), so code that
takes "an nvml module" runs unchanged with `pynvml` or with the mock:

    def probe(nvml):
        nvml.nvmlInit()
        handle = nvml.nvmlDeviceGetHandleByIndex(0)
        return nvml.nvmlDeviceGetUUID(handle)

Every pynvml constant and class is reachable on the mock too (`mock.NVML_TEMPERATURE_GPU`,
`mock.NVMLError_Timeout`); a pynvml function the mock does not simulate raises
NVMLError_NotSupported, as NVIDIA's own nvml-mock does for its unimplemented calls.

Device handles and event sets are real `pynvml.c_nvmlDevice_t` / `c_nvmlEventSet_t` pointers whose
addresses only encode an index: opaque tokens that must never be passed to the real library.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pynvml
from pynvml import NVMLError  # noqa: F401  (re-exported: `except nvml_mock.nvml.NVMLError`)

from nvml_mock.config import normalize_pci
from nvml_mock.events import EventSetState, next_xid
from nvml_mock.live import LiveConfig
from nvml_mock.model import COMPUTE_CAPABILITY, GpuCard, NodeConfig

_HANDLE_BASE = 0xB41D0000
_HANDLE_STEP = 0x100
_EVENT_SET_BASE = 0xE7E50000
_WHOLE_GPU = 0xFFFFFFFF
SUPPORTED_EVENT_TYPES = (pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypeSingleBitEccError
                         | pynvml.nvmlEventTypeDoubleBitEccError)
DEFAULT_POLL_INTERVAL_S = 0.02


def open_mock(config_path: str | Path, *, poll_interval_s: float = DEFAULT_POLL_INTERVAL_S) -> NvmlMock:
    """Load the config (ConfigError if it is bad) and return an uninitialised NVML mock."""
    return NvmlMock(LiveConfig(config_path), poll_interval_s=poll_interval_s)


def _error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


class NvmlMock:
    """One simulated NVML library instance (init refcount, handles, event sets)."""

    def __init__(self, live: LiveConfig, *, poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.live = live
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._refcount = 0
        self._handles: list[Any] = []
        self._event_sets: list[EventSetState] = []

    def __getattr__(self, name: str) -> Any:
        # Constants, structures and NVMLError classes come straight from pynvml.
        if name.startswith("_"):
            raise AttributeError(name)
        value = getattr(pynvml, name, None)
        if value is None:
            raise AttributeError(f"{type(self).__name__} (and pynvml) have no attribute {name!r}")
        if callable(value) and name.startswith("nvml"):
            def not_simulated(*_args: Any, **_kwargs: Any) -> Any:
                self._config()
                raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
            not_simulated.__name__ = name
            return not_simulated
        return value

    # ---- library ---------------------------------------------------------------------------
    def _config(self) -> NodeConfig:
        if self._refcount <= 0:
            raise _error(pynvml.NVML_ERROR_UNINITIALIZED)
        return self.live.current()

    def nvmlInitWithFlags(self, flags: int) -> None:
        config = self.live.current()
        if config.nvml_init_error:
            raise _error(config.nvml_init_error)
        with self._lock:
            self._refcount += 1

    def nvmlInit(self) -> None:
        self.nvmlInitWithFlags(0)

    def nvmlShutdown(self) -> None:
        self._config()
        with self._lock:
            self._refcount -= 1

    def nvmlErrorString(self, result: int) -> str:
        return str(_error(result))

    def nvmlSystemGetDriverVersion(self) -> str:
        return self._config().driver_version

    def nvmlSystemGetNVMLVersion(self) -> str:
        config = self._config()
        return f"{config.cuda_driver_version // 1000}.{config.driver_version}"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return self._config().cuda_driver_version

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        return self._config().cuda_driver_version

    # ---- handles ---------------------------------------------------------------------------
    def _handle(self, index: int) -> Any:
        with self._lock:
            while len(self._handles) <= index:
                address = _HANDLE_BASE + _HANDLE_STEP * (len(self._handles) + 1)
                self._handles.append(ctypes.cast(ctypes.c_void_p(address), pynvml.c_nvmlDevice_t))
            return self._handles[index]

    def _card(self, handle: Any) -> GpuCard:
        config = self._config()
        if not isinstance(handle, pynvml.c_nvmlDevice_t):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        offset = (ctypes.cast(handle, ctypes.c_void_p).value or 0) - _HANDLE_BASE
        index = offset // _HANDLE_STEP - 1
        if offset % _HANDLE_STEP or index < 0 or index >= len(self._handles):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if index >= len(config.gpus):
            raise _error(pynvml.NVML_ERROR_GPU_IS_LOST)  # the card left the config: fell off the bus
        return config.gpus[index]

    def nvmlDeviceGetCount(self) -> int:
        return len(self._config().gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        if not 0 <= index < len(self._config().gpus):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self._handle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> Any:
        wanted = uuid.decode() if isinstance(uuid, bytes) else uuid
        for card in self._config().gpus:
            if card.uuid == wanted:
                return self._handle(card.index)
        raise _error(pynvml.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetHandleByPciBusId(self, pciBusId: str | bytes) -> Any:
        text = pciBusId.decode() if isinstance(pciBusId, bytes) else pciBusId
        wanted = normalize_pci(text)
        config = self._config()
        if wanted is None:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        for card in config.gpus:
            if card.pci_bus_id == wanted:
                return self._handle(card.index)
        raise _error(pynvml.NVML_ERROR_NOT_FOUND)

    # ---- identity --------------------------------------------------------------------------
    def nvmlDeviceGetIndex(self, handle: Any) -> int:
        return self._card(handle).index

    def nvmlDeviceGetMinorNumber(self, handle: Any) -> int:
        return self._card(handle).index

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return self._card(handle).uuid

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return self._card(handle).device_name

    def nvmlDeviceGetSerial(self, handle: Any) -> str:
        return self._card(handle).serial

    def nvmlDeviceGetArchitecture(self, device: Any) -> int:
        return self._card(device).arch

    def nvmlDeviceGetCudaComputeCapability(self, handle: Any) -> tuple[int, int]:
        card = self._card(handle)
        if card.arch not in COMPUTE_CAPABILITY:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return COMPUTE_CAPABILITY[card.arch]

    def nvmlDeviceGetPciInfo_v3(self, handle: Any) -> Any:
        return _pci_info(self._card(handle))

    def nvmlDeviceGetPciInfo(self, handle: Any) -> Any:
        return self.nvmlDeviceGetPciInfo_v3(handle)

    def nvmlDeviceGetNumaNodeId(self, handle: Any) -> int:
        return self._card(handle).numa_node

    def nvmlDeviceGetMigMode(self, device: Any) -> list[int]:
        if self._card(device).arch < pynvml.NVML_DEVICE_ARCH_AMPERE:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return [pynvml.NVML_DEVICE_MIG_DISABLE, pynvml.NVML_DEVICE_MIG_DISABLE]

    def nvmlDeviceGetPersistenceMode(self, handle: Any) -> int:
        self._card(handle)
        return pynvml.NVML_FEATURE_ENABLED

    # ---- telemetry -------------------------------------------------------------------------
    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: int | None = None) -> Any:
        card = self._card(handle)
        total, used = card.memory_total_mib << 20, card.memory_used_mib << 20
        if not version:
            return pynvml.c_nvmlMemory_t(total=total, free=total - used, used=used)
        return pynvml.c_nvmlMemory_v2_t(version=version, total=total, reserved=0, free=total - used, used=used)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        card = self._card(handle)
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return card.temperature_c

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return self._card(handle).power_mw

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        self._card(handle)
        return pynvml.c_nvmlUtilization_t(gpu=0, memory=0)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]:
        self._card(handle)
        return []

    # ---- PCIe and NVLink -------------------------------------------------------------------
    def nvmlDeviceGetCurrPcieLinkGeneration(self, handle: Any) -> int:
        return self._card(handle).link_gen

    def nvmlDeviceGetMaxPcieLinkGeneration(self, handle: Any) -> int:
        return self._card(handle).link_gen

    def nvmlDeviceGetCurrPcieLinkWidth(self, handle: Any) -> int:
        return self._card(handle).link_width_current

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle: Any) -> int:
        return self._card(handle).link_width_max

    def _link(self, device: Any, link: int) -> GpuCard:
        card = self._card(device)
        if not 0 <= link < pynvml.NVML_NVLINK_MAX_LINKS:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if link >= len(card.nvlink_active):
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return card

    def nvmlDeviceGetNvLinkState(self, device: Any, link: int) -> int:
        card = self._link(device, link)
        return pynvml.NVML_FEATURE_ENABLED if card.nvlink_active[link] else pynvml.NVML_FEATURE_DISABLED

    def nvmlDeviceGetNvLinkRemotePciInfo(self, device: Any, link: int) -> Any:
        card = self._link(device, link)
        if link >= len(card.nvlink_peers):
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return _pci_info(self.live.current().gpus[card.nvlink_peers[link]])

    def nvmlDeviceGetFieldValues(self, handle: Any, fieldIds: list[Any]) -> Any:
        card = self._card(handle)
        values = (pynvml.c_nvmlFieldValue_t * len(fieldIds))()
        now_us = int(time.time() * 1e6)
        for i, field_id in enumerate(fieldIds):
            fid, scope = field_id if isinstance(field_id, tuple) else (field_id, 0)
            values[i].fieldId, values[i].scopeId, values[i].timestamp = fid, scope, now_us
            if fid == pynvml.NVML_FI_DEV_NVLINK_LINK_COUNT:
                values[i].valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
                values[i].value.uiVal = len(card.nvlink_active)
                values[i].nvmlReturn = pynvml.NVML_SUCCESS
            else:
                values[i].nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return values

    def nvmlDeviceGetTopologyCommonAncestor(self, device1: Any, device2: Any) -> int:
        return _common_ancestor(self._card(device1), self._card(device2))

    def nvmlDeviceGetTopologyNearestGpus(self, device: Any, level: int) -> list[Any]:
        card = self._card(device)
        return [self._handle(other.index) for other in self.live.current().gpus
                if other.index != card.index and _common_ancestor(card, other) <= level]

    # ---- memory health ---------------------------------------------------------------------
    def nvmlDeviceGetEccMode(self, handle: Any) -> list[int]:
        self._card(handle)
        return [pynvml.NVML_FEATURE_ENABLED, pynvml.NVML_FEATURE_ENABLED]

    def nvmlDeviceGetMemoryErrorCounter(self, handle: Any, errorType: int, counterType: int,
                                        locationType: int) -> int:
        card = self._card(handle)
        _check_ecc_args(errorType, counterType)
        uncorrected = errorType == pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
        aggregate = counterType == pynvml.NVML_AGGREGATE_ECC
        if locationType in (pynvml.NVML_MEMORY_LOCATION_DRAM, pynvml.NVML_MEMORY_LOCATION_DEVICE_MEMORY):
            return card.dram_ue if uncorrected else card.dram_ce
        if locationType == pynvml.NVML_MEMORY_LOCATION_SRAM:
            return card.sram_ue if uncorrected else card.sram_ce
        by_location = {pynvml.NVML_MEMORY_LOCATION_L1_CACHE: card.uncorrectable_agg_l1,
                       pynvml.NVML_MEMORY_LOCATION_L2_CACHE: card.uncorrectable_agg_l2,
                       pynvml.NVML_MEMORY_LOCATION_REGISTER_FILE: card.uncorrectable_agg_reg}
        if locationType in by_location:
            return by_location[locationType] if uncorrected and aggregate else 0
        if 0 <= locationType < pynvml.NVML_MEMORY_LOCATION_COUNT:
            return 0
        raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetTotalEccErrors(self, handle: Any, errorType: int, counterType: int) -> int:
        card = self._card(handle)
        _check_ecc_args(errorType, counterType)
        if errorType == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED:
            return card.dram_ce + card.sram_ce
        total = card.dram_ue + card.sram_ue
        if counterType == pynvml.NVML_AGGREGATE_ECC:
            total += card.uncorrectable_agg_l1 + card.uncorrectable_agg_l2 + card.uncorrectable_agg_reg
        return total

    def nvmlDeviceGetRemappedRows(self, device: Any) -> tuple[int, int, int, int]:
        card = self._card(device)
        if card.arch < pynvml.NVML_DEVICE_ARCH_AMPERE:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return (card.remapped_rows_correctable, card.remapped_rows_uncorrectable,
                int(card.remapping_pending), int(card.remapping_failure))

    def nvmlDeviceGetRetiredPages(self, device: Any, sourceFilter: int) -> list[int]:
        return [page["address"] for page in self.nvmlDeviceGetRetiredPages_v2(device, sourceFilter)]

    def nvmlDeviceGetRetiredPages_v2(self, device: Any, sourceFilter: int) -> list[dict[str, int]]:
        card = self._card(device)
        if sourceFilter == pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS:
            count = card.retired_page_sbe
        elif sourceFilter == pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR:
            count = card.retired_page_dbe
        else:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        base = 0x100000000 + sourceFilter * 0x10000000
        return [{"address": base + 0x1000 * i, "timestamp": 1700000000 + i} for i in range(count)]

    def nvmlDeviceGetRetiredPagesPendingStatus(self, device: Any) -> int:
        pending = self._card(device).retired_page_pending
        return pynvml.NVML_FEATURE_ENABLED if pending else pynvml.NVML_FEATURE_DISABLED

    # ---- events ----------------------------------------------------------------------------
    def nvmlDeviceGetSupportedEventTypes(self, handle: Any) -> int:
        self._card(handle)
        return SUPPORTED_EVENT_TYPES

    def nvmlEventSetCreate(self) -> Any:
        self._config()
        with self._lock:
            self._event_sets.append(EventSetState())
            address = _EVENT_SET_BASE + 0x10 * len(self._event_sets)
        return ctypes.cast(ctypes.c_void_p(address), pynvml.c_nvmlEventSet_t)

    def _event_set(self, eventSet: Any) -> EventSetState:
        if not isinstance(eventSet, pynvml.c_nvmlEventSet_t):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        offset = (ctypes.cast(eventSet, ctypes.c_void_p).value or 0) - _EVENT_SET_BASE
        number = offset // 0x10
        if offset % 0x10 or not 1 <= number <= len(self._event_sets) or self._event_sets[number - 1].freed:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self._event_sets[number - 1]

    def nvmlDeviceRegisterEvents(self, handle: Any, eventTypes: int, eventSet: Any) -> None:
        card = self._card(handle)
        event_set = self._event_set(eventSet)
        if eventTypes & ~SUPPORTED_EVENT_TYPES:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        with self._lock:
            event_set.register(card.index, eventTypes)

    def nvmlEventSetWait_v2(self, eventSet: Any, timeoutms: int) -> Any:
        deadline = self._clock() + max(0, timeoutms) / 1000.0
        while True:
            config = self._config()
            event_set = self._event_set(eventSet)
            with self._lock:
                found = next_xid(event_set, config)
            if found is not None:
                index, xid = found
                data = pynvml.c_nvmlEventData_t()
                data.device = self._handle(index)
                data.eventType = pynvml.nvmlEventTypeXidCriticalError
                data.eventData = xid
                data.gpuInstanceId = _WHOLE_GPU
                data.computeInstanceId = _WHOLE_GPU
                return data
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise _error(pynvml.NVML_ERROR_TIMEOUT)
            self._sleep(min(self.poll_interval_s, remaining))

    def nvmlEventSetWait(self, eventSet: Any, timeoutms: int) -> Any:
        return self.nvmlEventSetWait_v2(eventSet, timeoutms)

    def nvmlEventSetFree(self, eventSet: Any) -> None:
        self._config()
        event_set = self._event_set(eventSet)
        with self._lock:
            event_set.freed = True
            event_set.masks.clear()


def _pci_info(card: GpuCard) -> Any:
    domain, bus, rest = card.pci_bus_id.split(":")
    info = pynvml.nvmlPciInfo_t()
    info.busId = card.pci_bus_id.encode()
    info.busIdLegacy = f"{int(domain, 16):04X}:{bus}:{rest}".encode()
    info.domain, info.bus, info.device = int(domain, 16), int(bus, 16), int(rest.split(".")[0], 16)
    info.pciDeviceId = 0x20B210DE
    info.pciSubSystemId = 0x147F10DE
    return info


def _common_ancestor(a: GpuCard, b: GpuCard) -> int:
    if a.index == b.index:
        return pynvml.NVML_TOPOLOGY_INTERNAL
    if a.numa_node != b.numa_node:
        return pynvml.NVML_TOPOLOGY_SYSTEM
    if a.pcie_switch == b.pcie_switch:
        return pynvml.NVML_TOPOLOGY_SINGLE
    return pynvml.NVML_TOPOLOGY_NODE


def _check_ecc_args(error_type: int, counter_type: int) -> None:
    if error_type not in (pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED):
        raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
    if counter_type not in (pynvml.NVML_VOLATILE_ECC, pynvml.NVML_AGGREGATE_ECC):
        raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)


def __getattr__(name: str) -> Any:
    """Module-level access to pynvml's constants and classes: `nvml_mock.nvml.NVMLError_Timeout`."""
    if not name.startswith(("nvml", "_")) and hasattr(pynvml, name):
        return getattr(pynvml, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
