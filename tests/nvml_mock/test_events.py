"""XID events: nvmlEventSetWait_v2 delivers each injected XID once per event set, promptly."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pynvml
import pytest

from brix.procs import brix_argv
from nvml_mock import faults
from nvml_mock.live import update_config
from nvml_mock.nvml import open_mock


def _inject(path: Path, gpu: int, xid: int) -> int:
    seq, _ = update_config(path, lambda raw: faults.inject_xid(raw, gpu, xid, now=0.0))
    return seq


def _drain(nvml: Any, event_set: Any) -> list[tuple[int, int]]:
    got = []
    while True:
        try:
            data = nvml.nvmlEventSetWait_v2(event_set, 0)
        except pynvml.NVMLError_Timeout:
            return got
        got.append((nvml.nvmlDeviceGetIndex(data.device), data.eventData))


def _xid_set(nvml: Any, *indexes: int) -> Any:
    event_set = nvml.nvmlEventSetCreate()
    for index in indexes:
        nvml.nvmlDeviceRegisterEvents(nvml.nvmlDeviceGetHandleByIndex(index), pynvml.nvmlEventTypeXidCriticalError,
                                      event_set)
    return event_set


def test_each_event_is_delivered_once_per_event_set(write_node: Any) -> None:
    path, _ = write_node(gpus=4)
    nvml = open_mock(path)
    nvml.nvmlInit()
    first, second = _xid_set(nvml, 0, 1, 2, 3), _xid_set(nvml, 2)
    _inject(path, 2, 79)
    _inject(path, 0, 48)
    _inject(path, 2, 94)
    assert _drain(nvml, first) == [(2, 79), (0, 48), (2, 94)]
    assert _drain(nvml, first) == []
    assert _drain(nvml, second) == [(2, 79), (2, 94)]


def test_event_data_looks_like_c_nvmlEventData_t(write_node: Any) -> None:
    path, config = write_node(gpus=2)
    nvml = open_mock(path)
    nvml.nvmlInit()
    event_set = _xid_set(nvml, 1)
    _inject(path, 1, 79)
    data = nvml.nvmlEventSetWait(event_set, 1000)
    assert isinstance(data, pynvml.c_nvmlEventData_t)
    assert data.eventType == pynvml.nvmlEventTypeXidCriticalError
    assert data.eventData == 79
    assert data.gpuInstanceId == data.computeInstanceId == 0xFFFFFFFF  # the whole GPU, not a MIG slice
    assert nvml.nvmlDeviceGetUUID(data.device) == config.gpus[1].uuid


def test_static_crictl_xid_is_delivered_once(write_node: Any) -> None:
    path, _ = write_node(gpus=2, faults={1: {"crictl_xid": [79, 63]}})
    nvml = open_mock(path)
    nvml.nvmlInit()
    event_set = _xid_set(nvml, 0, 1)
    assert _drain(nvml, event_set) == [(1, 79), (1, 63)]


def test_wait_times_out_with_nvml_timeout(write_node: Any) -> None:
    path, _ = write_node(gpus=1)
    nvml = open_mock(path)
    nvml.nvmlInit()
    event_set = _xid_set(nvml, 0)
    with pytest.raises(pynvml.NVMLError_Timeout) as info:
        nvml.nvmlEventSetWait_v2(event_set, 50)
    assert info.value.value == pynvml.NVML_ERROR_TIMEOUT


def test_sets_without_the_xid_mask_or_other_cards_get_nothing(write_node: Any) -> None:
    path, _ = write_node(gpus=2)
    nvml = open_mock(path)
    nvml.nvmlInit()
    ecc_only = nvml.nvmlEventSetCreate()
    nvml.nvmlDeviceRegisterEvents(nvml.nvmlDeviceGetHandleByIndex(0), pynvml.nvmlEventTypeDoubleBitEccError, ecc_only)
    other_card = _xid_set(nvml, 1)
    _inject(path, 0, 79)
    assert _drain(nvml, ecc_only) == []
    assert _drain(nvml, other_card) == []


def test_unsupported_event_types_and_freed_sets_are_errors(write_node: Any) -> None:
    path, _ = write_node(gpus=1)
    nvml = open_mock(path)
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    event_set = nvml.nvmlEventSetCreate()
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeClock, event_set)
    supported = nvml.nvmlDeviceGetSupportedEventTypes(handle)
    nvml.nvmlDeviceRegisterEvents(handle, supported, event_set)  # NVIDIA's plugin registers this way
    nvml.nvmlEventSetFree(event_set)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlEventSetWait_v2(event_set, 0)


def test_heal_clears_xids_not_yet_delivered(write_node: Any) -> None:
    path, _ = write_node(gpus=2)
    nvml = open_mock(path)
    nvml.nvmlInit()
    event_set = _xid_set(nvml, 0, 1)
    _inject(path, 0, 79)
    _inject(path, 1, 79)
    update_config(path, lambda raw: faults.heal_gpu(raw, 0))
    assert _drain(nvml, event_set) == [(1, 79)]
    assert _inject(path, 0, 48) == 3  # sequence numbers keep growing after a heal
    assert _drain(nvml, event_set) == [(0, 48)]


def test_xid_injected_by_the_cli_in_another_process_wakes_a_waiting_set(write_node: Any) -> None:
    path, config = write_node(gpus=4)
    nvml = open_mock(path)
    nvml.nvmlInit()
    event_set = _xid_set(nvml, 3)
    results: dict[str, Any] = {}

    def inject() -> None:
        time.sleep(0.2)  # let the main thread block in nvmlEventSetWait_v2 first
        results["cli"] = subprocess.run(
            [*brix_argv(), "nvml-mock", "inject", "--config", str(path), "--gpu", "3", "--xid", "79"],
            capture_output=True, text=True, timeout=60)

    thread = threading.Thread(target=inject)
    thread.start()
    data = nvml.nvmlEventSetWait_v2(event_set, 30_000)
    thread.join()
    assert results["cli"].returncode == 0, results["cli"].stderr
    assert "XID 79 queued" in results["cli"].stdout
    assert (nvml.nvmlDeviceGetUUID(data.device), data.eventData) == (config.gpus[3].uuid, 79)
    assert _drain(nvml, event_set) == []

