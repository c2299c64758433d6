"""Ascend back-end: NPUs through DCMI-shaped calls (`nvml_mock.dcmi.open_mock` on mock nodes).

Device ids are `Ascend910-<logic id>`, as Huawei's plugin names whole chips. Health is
`dcmi_get_device_health` (0 normal and 1 general alarm are healthy; 2 major and 3 critical
alarms are not) plus the fault codes of `dcmi_get_device_errorcode_v2`, named in the reason.
There is no event path, so faults are found by polling (every --health-poll-interval).
"""

from __future__ import annotations

from typing import Any

from deviceplugin.allocate import Topology
from deviceplugin.backend import BackendError, DeviceEvent, Inventory, MockConfigError
from deviceplugin.devices import Device

HEALTHY_CODES = (0, 1)
ID_PREFIX = "Ascend910-"


def _dcmi_errors(dcmi: Any) -> tuple[type[BaseException], ...]:
    error = getattr(dcmi, "DcmiError", None)
    if error is None:
        from nvml_mock.dcmi import DcmiError

        error = DcmiError
    return (error,)


class AscendBackend:
    kind = "ascend"

    def __init__(self, dcmi: Any) -> None:
        self.dcmi = dcmi
        self.errors = _dcmi_errors(dcmi)
        self._where: dict[str, tuple[int, int]] = {}
        try:
            dcmi.dcmi_init()
        except self.errors as exc:
            raise BackendError(f"DCMI init failed: {exc}") from exc

    def discover(self, id_strategy: str) -> Inventory:
        dcmi = self.dcmi
        devices: list[Device] = []
        try:
            _count, cards = dcmi.dcmi_get_card_num_list()
            for card in cards:
                for dev in range(dcmi.dcmi_get_device_num_in_card(card)):
                    logic = int(dcmi.dcmi_get_device_logic_id(card, dev))
                    device_id = f"{ID_PREFIX}{logic}"
                    self._where[device_id] = (card, dev)
                    devices.append(Device(id=device_id, index=logic, name="Ascend910", minor=logic))
        except self.errors as exc:
            raise BackendError(f"DCMI device discovery failed: {exc}") from exc
        devices.sort(key=lambda d: d.index)
        return Inventory(devices, Topology(order={d.id: d.index for d in devices}), "dcmi")

    def poll(self, device: Device, disabled: frozenset[str]) -> list[str]:
        card, dev = self._where[device.id]
        try:
            health = int(self.dcmi.dcmi_get_device_health(card, dev))
            _n, codes = self.dcmi.dcmi_get_device_errorcode_v2(card, dev)
        except self.errors as exc:
            return [f"DCMI error: {exc}"]
        if health in HEALTHY_CODES:
            return []
        listed = ", ".join(f"0x{c:08X}" for c in codes) or "none listed"
        return [f"DCMI health {health} (fault codes: {listed})"]

    def supports_events(self) -> bool:
        return False

    def wait_events(self, timeout_s: float) -> list[DeviceEvent]:
        return []

    def close(self) -> None:
        return None


def open_dcmi(mock_config: str | None) -> Any:
    if not mock_config:
        raise BackendError("no DCMI Python binding for real Ascend hardware is bundled; "
                           "run with --mock-config FILE (nvml_mock) or use --backend nvml")
    from nvml_mock.dcmi import open_mock
    from nvml_mock.model import ConfigError

    try:
        return open_mock(mock_config)
    except ConfigError as exc:
        raise MockConfigError(str(exc)) from exc
