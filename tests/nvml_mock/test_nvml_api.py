"""The mock answers like pynvml: same names, parameters, return types and NVMLError classes."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pynvml
import pytest

from nvml_mock import builders
from nvml_mock.nvml import NvmlMock, open_mock

# The 21 calls AIBrix's injectiond.so hijacks, by the pynvml name that reaches each C symbol
# (pynvml's nvmlInit calls nvmlInitWithFlags; GetCount/GetHandleByIndex call the _v2 symbols).
AIBRIX_HIJACKED = {
    "nvmlInit_v2": "nvmlInit", "nvmlInitWithFlags": "nvmlInitWithFlags", "nvmlDeviceGetCount": "nvmlDeviceGetCount",
    "nvmlDeviceGetCount_v2": "nvmlDeviceGetCount", "nvmlDeviceGetHandleByIndex": "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetHandleByIndex_v2": "nvmlDeviceGetHandleByIndex", "nvmlDeviceGetIndex": "nvmlDeviceGetIndex",
    "nvmlDeviceGetName": "nvmlDeviceGetName", "nvmlDeviceGetArchitecture": "nvmlDeviceGetArchitecture",
    "nvmlDeviceGetUUID": "nvmlDeviceGetUUID", "nvmlDeviceGetPciInfo_v3": "nvmlDeviceGetPciInfo_v3",
    "nvmlDeviceGetMaxPcieLinkGeneration": "nvmlDeviceGetMaxPcieLinkGeneration",
    "nvmlDeviceGetMaxPcieLinkWidth": "nvmlDeviceGetMaxPcieLinkWidth",
    "nvmlDeviceGetCurrPcieLinkWidth": "nvmlDeviceGetCurrPcieLinkWidth",
    "nvmlDeviceGetMemoryErrorCounter": "nvmlDeviceGetMemoryErrorCounter",
    "nvmlDeviceGetRemappedRows": "nvmlDeviceGetRemappedRows", "nvmlDeviceGetRetiredPages": "nvmlDeviceGetRetiredPages",
    "nvmlDeviceGetRetiredPagesPendingStatus": "nvmlDeviceGetRetiredPagesPendingStatus",
    "nvmlDeviceGetNvLinkState": "nvmlDeviceGetNvLinkState", "nvmlDeviceGetFieldValues": "nvmlDeviceGetFieldValues",
    "nvmlEventSetWait_v2": "nvmlEventSetWait_v2",
}


def _mock_api() -> dict[str, Any]:
    return {name: value for name, value in vars(NvmlMock).items() if name.startswith("nvml") and callable(value)}


def test_every_mock_call_exists_in_pynvml_with_the_same_parameters() -> None:
    api = _mock_api()
    assert len(api) >= 50
    for name, method in api.items():
        real = getattr(pynvml, name, None)
        assert real is not None, f"{name} is not a pynvml function: the mock drifted from nvidia-ml-py"
        mock_params = list(inspect.signature(method).parameters)[1:]  # drop self
        real_params = list(inspect.signature(real).parameters)
        assert mock_params == real_params, f"{name}{mock_params} != pynvml.{name}{real_params}"


def test_the_21_aibrix_hijacked_calls_are_simulated() -> None:
    api = _mock_api()
    assert len(AIBRIX_HIJACKED) == 21
    assert set(AIBRIX_HIJACKED.values()) <= set(api)


def probe(nvml: Any) -> dict[str, Any]:
    """Written against pynvml; runs unchanged on the real module or on the mock."""
    nvml.nvmlInit()
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(0)
        uuid = nvml.nvmlDeviceGetUUID(handle)
        pci = nvml.nvmlDeviceGetPciInfo(handle)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        try:
            rows = nvml.nvmlDeviceGetRemappedRows(handle)
        except nvml.NVMLError_NotSupported:
            rows = None
        event_set = nvml.nvmlEventSetCreate()
        nvml.nvmlDeviceRegisterEvents(handle, nvml.nvmlEventTypeXidCriticalError, event_set)
        try:
            nvml.nvmlEventSetWait_v2(event_set, 1)
            timed_out = False
        except pynvml.NVMLError_Timeout:
            timed_out = True
        nvml.nvmlEventSetFree(event_set)
        return {
            "count": nvml.nvmlDeviceGetCount(),
            "uuid": uuid,
            "same_handle": nvml.nvmlDeviceGetIndex(nvml.nvmlDeviceGetHandleByUUID(uuid)),
            "by_pci": nvml.nvmlDeviceGetIndex(nvml.nvmlDeviceGetHandleByPciBusId(pci.busId)),
            "name": nvml.nvmlDeviceGetName(handle),
            "pci_type": type(pci),
            "memory_type": type(memory),
            "rows": rows,
            "temperature": nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
            "driver": nvml.nvmlSystemGetDriverVersion(),
            "timed_out": timed_out,
        }
    finally:
        nvml.nvmlShutdown()


def _real_gpu_present() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    try:
        return pynvml.nvmlDeviceGetCount() > 0
    finally:
        pynvml.nvmlShutdown()


def test_probe_against_real_pynvml() -> None:
    if not _real_gpu_present():
        pytest.skip("no NVIDIA driver/GPU on this machine: the probe runs against the mock only")
    result = probe(pynvml)
    assert result["count"] >= 1 and result["same_handle"] == 0 == result["by_pci"]
    assert result["pci_type"] is pynvml.nvmlPciInfo_t and result["memory_type"] is pynvml.c_nvmlMemory_t


def test_probe_against_the_mock(write_node: Any) -> None:
    path, config = write_node(gpus=2)
    result = probe(open_mock(path))
    assert result["count"] == 2
    assert result["uuid"] == config.gpus[0].uuid
    assert result["same_handle"] == 0 == result["by_pci"]
    assert result["name"] == "NVIDIA A100-SXM4-80GB"
    assert result["pci_type"] is pynvml.nvmlPciInfo_t and result["memory_type"] is pynvml.c_nvmlMemory_t
    assert result["rows"] == (0, 0, 0, 0)
    assert isinstance(result["temperature"], int) and isinstance(result["driver"], str)
    assert result["timed_out"]


def test_calls_before_init_and_after_shutdown_raise_uninitialized(write_node: Any) -> None:
    path, _ = write_node()
    nvml = open_mock(path)
    with pytest.raises(pynvml.NVMLError_Uninitialized) as info:
        nvml.nvmlDeviceGetCount()
    assert info.value.value == pynvml.NVML_ERROR_UNINITIALIZED
    nvml.nvmlInit()
    nvml.nvmlInit()
    nvml.nvmlShutdown()
    assert nvml.nvmlDeviceGetCount() == 4  # refcounted like the real library
    nvml.nvmlShutdown()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlShutdown()


def test_configured_init_error_is_raised_and_clears_live(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    raw = builders.node_config(gpus=1)
    raw["gpus"]["nvml_init_error"] = "DRIVER_NOT_LOADED"
    builders.write_config(path, raw)
    nvml = open_mock(path)
    with pytest.raises(pynvml.NVMLError) as info:
        nvml.nvmlInit()
    assert type(info.value) is pynvml.NVMLError_DriverNotLoaded
    assert info.value.value == pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    del raw["gpus"]["nvml_init_error"]
    builders.write_config(path, raw)
    nvml.nvmlInit()
    assert nvml.nvmlDeviceGetCount() == 1


def test_lookup_errors_use_nvml_codes(write_node: Any) -> None:
    path, _ = write_node(gpus=2)
    nvml = open_mock(path)
    nvml.nvmlInit()
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetHandleByIndex(2)
    with pytest.raises(pynvml.NVMLError_NotFound):
        nvml.nvmlDeviceGetHandleByUUID("GPU-00000000-0000-0000-0000-000000000000")
    with pytest.raises(pynvml.NVMLError_NotFound):
        nvml.nvmlDeviceGetHandleByPciBusId("0000:99:00.0")
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetUUID(None)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetTemperature(handle, 99)
    with pytest.raises(pynvml.NVMLError_NotSupported):  # a pynvml call the mock does not simulate
        nvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)
    assert nvml.NVML_TEMPERATURE_GPU == pynvml.NVML_TEMPERATURE_GPU
    assert nvml.NVMLError is pynvml.NVMLError


def test_card_removed_from_config_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    builders.write_config(path, builders.node_config(gpus=2))
    nvml = open_mock(path)
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(1)
    builders.write_config(path, builders.node_config(gpus=1))
    assert nvml.nvmlDeviceGetCount() == 1
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        nvml.nvmlDeviceGetUUID(handle)


def test_memory_health_counters_by_location(write_node: Any) -> None:
    path, _ = write_node(gpus=2, faults={1: {
        "dram_ue": 3, "dram_ce": 5, "sram_ue": 1, "uncorrectable_agg_l2": 2, "retired_page_dbe": 2,
        "retired_page_pending": True, "remapping_pending": True, "remapping_failure": True}})
    nvml = open_mock(path)
    nvml.nvmlInit()
    healthy, faulty = nvml.nvmlDeviceGetHandleByIndex(0), nvml.nvmlDeviceGetHandleByIndex(1)
    ue, ce = pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED
    vol, agg = pynvml.NVML_VOLATILE_ECC, pynvml.NVML_AGGREGATE_ECC
    counter = nvml.nvmlDeviceGetMemoryErrorCounter
    assert counter(faulty, ue, vol, pynvml.NVML_MEMORY_LOCATION_DRAM) == 3
    assert counter(faulty, ce, vol, pynvml.NVML_MEMORY_LOCATION_DRAM) == 5
    assert counter(faulty, ue, vol, pynvml.NVML_MEMORY_LOCATION_SRAM) == 1
    assert counter(faulty, ue, agg, pynvml.NVML_MEMORY_LOCATION_L2_CACHE) == 2
    assert counter(healthy, ue, vol, pynvml.NVML_MEMORY_LOCATION_DRAM) == 0
    assert nvml.nvmlDeviceGetTotalEccErrors(faulty, ue, vol) == 4
    assert nvml.nvmlDeviceGetTotalEccErrors(faulty, ue, agg) == 6
    assert nvml.nvmlDeviceGetRemappedRows(faulty) == (0, 0, 1, 1)
    dbe = pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR
    assert len(nvml.nvmlDeviceGetRetiredPages(faulty, dbe)) == 2
    assert nvml.nvmlDeviceGetRetiredPages(healthy, dbe) == []
    assert nvml.nvmlDeviceGetRetiredPagesPendingStatus(faulty) == pynvml.NVML_FEATURE_ENABLED
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        counter(faulty, ue, vol, 99)


def test_pre_ampere_cards_do_not_support_row_remapping(write_node: Any) -> None:
    path, _ = write_node(gpus=1, model="V100-SXM2-32GB", nvlink="none")
    nvml = open_mock(path)
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetRemappedRows(handle)
    assert nvml.nvmlDeviceGetCudaComputeCapability(handle) == (7, 0)


def test_identity_and_telemetry(write_node: Any) -> None:
    path, config = write_node(gpus=2, model="H100", faults={1: {"temperature_c": 71, "memory_used_mib": 1024,
                                                                 "power_mw": 350000, "link_width_current": 8}})
    nvml = open_mock(path)
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByUUID(config.gpus[1].uuid)
    assert nvml.nvmlDeviceGetIndex(handle) == nvml.nvmlDeviceGetMinorNumber(handle) == 1
    assert nvml.nvmlDeviceGetArchitecture(handle) == pynvml.NVML_DEVICE_ARCH_HOPPER
    assert nvml.nvmlDeviceGetCudaComputeCapability(handle) == (9, 0)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    assert (memory.used, memory.total - memory.free) == (1024 << 20, 1024 << 20)
    assert nvml.nvmlDeviceGetMemoryInfo(handle, pynvml.nvmlMemory_v2).used == 1024 << 20
    assert nvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU) == 71
    assert nvml.nvmlDeviceGetPowerUsage(handle) == 350000
    assert (nvml.nvmlDeviceGetCurrPcieLinkWidth(handle), nvml.nvmlDeviceGetMaxPcieLinkWidth(handle)) == (8, 16)
    assert nvml.nvmlDeviceGetCurrPcieLinkGeneration(handle) == nvml.nvmlDeviceGetMaxPcieLinkGeneration(handle) == 5
    assert nvml.nvmlDeviceGetMigMode(handle) == [pynvml.NVML_DEVICE_MIG_DISABLE] * 2
    pci = nvml.nvmlDeviceGetPciInfo_v3(handle)
    assert pci.busId == config.gpus[1].pci_bus_id  # pynvml structures decode char arrays to str
    assert nvml.nvmlSystemGetCudaDriverVersion() == 12040
    assert nvml.nvmlSystemGetNVMLVersion().endswith(nvml.nvmlSystemGetDriverVersion())


def test_protocol_names_are_simulated_and_exist_in_pynvml() -> None:
    from nvml_mock.protocol import NvmlLike

    names = {n for n in vars(NvmlLike) if n.startswith("nvml")}
    assert names <= set(_mock_api())
    for name in names:
        real = list(inspect.signature(getattr(pynvml, name)).parameters)
        declared = list(inspect.signature(getattr(NvmlLike, name)).parameters)[1:]
        assert declared == real, name
