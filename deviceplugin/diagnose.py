"""`brix diagnose`: one pass of AIBrix ai-accelerator-tool's GPU checks, through NVML.

Output: JSON keyed by GPU UUID (plus "OVERALL" for node-level checks); every check is
{"Name", "IsHealthy", "Message"}. Node level: gpu_driver_status, gpu_card_count. Per GPU:
gpu_driver_status (the card answers NVML), gpu_link_status (PCIe width current == max),
gpu_vram_unrecoverable_errors (uncorrected ECC, double-bit retired pages, pending retirement),
gpu_vram_recoverable_errors (corrected ECC, single-bit retired pages; zero tolerance as AIBrix),
gpu_row_remapping (failure or pending), gpu_xid_events (critical XIDs pending in the event
set, with the same ignore rules as the plugin: DP_DISABLE_HEALTHCHECKS / DP_ENABLE_HEALTHCHECKS).
Exit code: 0 all healthy, 1 something unhealthy, 2 cannot run (NVML init failed).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any

import pynvml

from deviceplugin.healthpolicy import PolicyError, parse_checks
from deviceplugin.nvml_backend import in_container_hint, open_nvml, text
from nvml_mock.protocol import NvmlLike

Check = dict[str, Any]


def check(name: str, healthy: bool, message: str) -> Check:
    return {"Name": name, "IsHealthy": bool(healthy), "Message": message}


def _guard(name: str, fn: Callable[[], Check]) -> Check:
    try:
        return fn()
    except pynvml.NVMLError_NotSupported:
        return check(name, True, "not supported on this GPU")
    except pynvml.NVMLError as exc:
        return check(name, False, f"NVML error: {exc}")


def _link(nvml: NvmlLike, h: Any) -> Check:
    cur, top = nvml.nvmlDeviceGetCurrPcieLinkWidth(h), nvml.nvmlDeviceGetMaxPcieLinkWidth(h)
    return check("gpu_link_status", cur == top, f"PCIe link width x{cur} of max x{top}")


def _ecc(nvml: NvmlLike, h: Any, error_type: int) -> int:
    try:
        return int(nvml.nvmlDeviceGetTotalEccErrors(h, error_type, pynvml.NVML_VOLATILE_ECC))
    except pynvml.NVMLError_NotSupported:
        return 0


def _pages(nvml: NvmlLike, h: Any, cause: int) -> int:
    try:
        return len(nvml.nvmlDeviceGetRetiredPages(h, cause))
    except pynvml.NVMLError_NotSupported:
        return 0


def _unrecoverable(nvml: NvmlLike, h: Any) -> Check:
    ue = _ecc(nvml, h, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)
    dbe = _pages(nvml, h, pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)
    try:
        pending = nvml.nvmlDeviceGetRetiredPagesPendingStatus(h) == pynvml.NVML_FEATURE_ENABLED
    except pynvml.NVMLError_NotSupported:
        pending = False
    msg = f"uncorrected ECC (volatile) {ue}, double-bit retired pages {dbe}, retirement pending {pending}"
    return check("gpu_vram_unrecoverable_errors", not (ue or dbe or pending), msg)


def _recoverable(nvml: NvmlLike, h: Any) -> Check:
    ce = _ecc(nvml, h, pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED)
    sbe = _pages(nvml, h, pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS)
    return check("gpu_vram_recoverable_errors", not (ce or sbe),
                 f"corrected ECC (volatile) {ce}, single-bit retired pages {sbe}")


def _remapping(nvml: NvmlLike, h: Any) -> Check:
    corr, unc, pending, failure = nvml.nvmlDeviceGetRemappedRows(h)
    return check("gpu_row_remapping", not (pending or failure),
                 f"remapped rows correctable {corr}, uncorrectable {unc}, pending {bool(pending)}, "
                 f"failure {bool(failure)}")


def _collect_xids(nvml: NvmlLike, handles: list[Any], wait_s: float) -> dict[str, list[int]]:
    """Drain the XID events NVML delivers within wait_s, by GPU UUID."""
    seen: dict[str, list[int]] = {}
    event_set = nvml.nvmlEventSetCreate()
    try:
        for h in handles:
            try:
                nvml.nvmlDeviceRegisterEvents(h, pynvml.nvmlEventTypeXidCriticalError, event_set)
            except pynvml.NVMLError_NotSupported:
                continue
        deadline = time.monotonic() + wait_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                data = nvml.nvmlEventSetWait_v2(event_set, max(0, int(remaining * 1000)))
            except pynvml.NVMLError_Timeout:
                break
            if data.eventType == pynvml.nvmlEventTypeXidCriticalError:
                seen.setdefault(text(nvml.nvmlDeviceGetUUID(data.device)), []).append(int(data.eventData))
            if remaining <= 0:
                break
    finally:
        nvml.nvmlEventSetFree(event_set)
    return seen


def diagnose(mock_config: str | None, expect_count: int | None, xid_wait_s: float = 0.2
             ) -> tuple[dict[str, dict[str, Check]], int]:
    """Run every check once; returns (report, exit code)."""
    try:
        checks_policy = parse_checks(os.environ.get("DP_DISABLE_HEALTHCHECKS"), os.environ.get("DP_ENABLE_HEALTHCHECKS"))
    except PolicyError as exc:
        return {"OVERALL": {"gpu_driver_status": check("gpu_driver_status", False, str(exc))}}, 2
    try:
        nvml = open_nvml(mock_config)
        nvml.nvmlInit()
    except pynvml.NVMLError as exc:
        hint = "" if mock_config else in_container_hint()
        return {"OVERALL": {"gpu_driver_status": check("gpu_driver_status", False,
                                                       f"NVML init failed: {exc}{hint}")}}, 2
    except Exception as exc:  # a malformed mock config: nvml_mock names the file and key
        return {"OVERALL": {"gpu_driver_status": check("gpu_driver_status", False, str(exc))}}, 2
    try:
        report = _run_checks(nvml, expect_count, xid_wait_s, checks_policy)
    finally:
        try:
            nvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
    healthy = all(c["IsHealthy"] for checks in report.values() for c in checks.values())
    return report, 0 if healthy else 1


def _run_checks(nvml: NvmlLike, expect_count: int | None, xid_wait_s: float, policy: Any) -> dict[str, dict[str, Check]]:
    overall: dict[str, Check] = {}
    report: dict[str, dict[str, Check]] = {"OVERALL": overall}
    try:
        driver = text(nvml.nvmlSystemGetDriverVersion())
        count = int(nvml.nvmlDeviceGetCount())
    except pynvml.NVMLError as exc:
        overall["gpu_driver_status"] = check("gpu_driver_status", False, f"NVML query failed: {exc}")
        return report
    overall["gpu_driver_status"] = check("gpu_driver_status", True, f"driver {driver}, {count} GPU(s)")
    if expect_count is None:
        overall["gpu_card_count"] = check("gpu_card_count", count > 0, f"{count} GPU(s) found, no count expected")
    else:
        overall["gpu_card_count"] = check("gpu_card_count", count == expect_count,
                                          f"{count} GPU(s) found, {expect_count} expected")
    handles: list[Any] = []
    for index in range(count):
        try:
            h = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = text(nvml.nvmlDeviceGetUUID(h))
            name = text(nvml.nvmlDeviceGetName(h))
        except pynvml.NVMLError as exc:
            report[f"GPU-index-{index}"] = {"gpu_driver_status": check("gpu_driver_status", False,
                                                                         f"GPU {index} does not answer: {exc}")}
            continue
        handles.append(h)
        report[uuid] = {
            "gpu_driver_status": check("gpu_driver_status", True, f"GPU {index} {name}"),
            "gpu_link_status": _guard("gpu_link_status", functools.partial(_link, nvml, h)),
            "gpu_vram_unrecoverable_errors": _guard("gpu_vram_unrecoverable_errors",
                                                    functools.partial(_unrecoverable, nvml, h)),
            "gpu_vram_recoverable_errors": _guard("gpu_vram_recoverable_errors",
                                                  functools.partial(_recoverable, nvml, h)),
            "gpu_row_remapping": _guard("gpu_row_remapping", functools.partial(_remapping, nvml, h)),
        }
    try:
        xids = _collect_xids(nvml, handles, xid_wait_s)
        xid_error = ""
    except pynvml.NVMLError as exc:
        xids, xid_error = {}, f"XID events unavailable: {exc}"
    for uuid, checks in report.items():
        if uuid == "OVERALL" or "gpu_link_status" not in checks:
            continue
        seen = xids.get(uuid, [])
        critical = [x for x in seen if policy.xid_counts(x)]
        if xid_error:
            checks["gpu_xid_events"] = check("gpu_xid_events", True, xid_error)
        elif critical:
            checks["gpu_xid_events"] = check("gpu_xid_events", False,
                                             f"critical XID(s) {', '.join(map(str, critical))}")
        else:
            ignored = f" (ignored: {', '.join(map(str, seen))})" if seen else ""
            checks["gpu_xid_events"] = check("gpu_xid_events", True, f"no critical XID{ignored}")
    return report
