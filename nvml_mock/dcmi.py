"""An Ascend DCMI mock with Python bindings shaped like Huawei's DCMI C API (see README.md).

Each C function `int dcmi_x(in..., *out...)` becomes a method `dcmi_x(in...)` that returns the
out-parameters (one value, or a tuple in C order) and raises `DcmiError(code)` where C returns a
non-zero code — the same shape pynvml gives NVML. It reads the `[ascend_npus]` part of the mock
config and re-reads it live, like the NVML mock.

Error codes follow DCMI's negative `DCMI_ERR_CODE_*` values as far as they are public (ascend
device plugin sources and user reports: -8005 init/inner failure, -8255 not supported); the
others here are the documented names with values as recalled, to be checked on real hardware.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nvml_mock.live import LiveConfig
from nvml_mock.model import AscendConfig, NpuDevice

DCMI_OK = 0
DCMI_ERR_CODE_INVALID_PARAMETER = -8001
DCMI_ERR_CODE_INNER_ERR = -8005
DCMI_ERR_CODE_INVALID_DEVICE_ID = -8007
DCMI_ERR_CODE_DEVICE_NOT_EXIST = -8008
DCMI_ERR_CODE_NOT_SUPPORT = -8255

HEALTH_NORMAL = 0
HEALTH_GENERAL_ALARM = 1
HEALTH_MAJOR_ALARM = 2
HEALTH_CRITICAL_ALARM = 3

_NAMES = {DCMI_ERR_CODE_INVALID_PARAMETER: "invalid parameter", DCMI_ERR_CODE_INNER_ERR: "inner error / not initialised",
          DCMI_ERR_CODE_INVALID_DEVICE_ID: "invalid device id", DCMI_ERR_CODE_DEVICE_NOT_EXIST: "device does not exist",
          DCMI_ERR_CODE_NOT_SUPPORT: "not supported"}


class DcmiError(Exception):
    """A non-zero DCMI return code; `.code` holds it (for example -8005)."""

    def __init__(self, code: int, function: str = "") -> None:
        self.code = code
        self.function = function
        text = _NAMES.get(code, "error")
        super().__init__(f"{function + ': ' if function else ''}DCMI error {code} ({text})")


@dataclass(frozen=True)
class DcmiChipInfo:
    """dcmi_get_device_chip_info's `struct dcmi_chip_info`."""

    chip_type: str
    chip_name: str
    chip_ver: str
    aicore_cnt: int


def open_mock(config_path: str | Path) -> DcmiMock:
    """Load the config (ConfigError if it is bad) and return an uninitialised DCMI mock."""
    return DcmiMock(LiveConfig(config_path))


class DcmiMock:
    def __init__(self, live: LiveConfig) -> None:
        self.live = live
        self._initialized = False

    def _config(self, function: str) -> AscendConfig:
        if not self._initialized:
            raise DcmiError(DCMI_ERR_CODE_INNER_ERR, function)
        return self.live.current().ascend

    def _device(self, function: str, card_id: int, device_id: int) -> NpuDevice:
        config = self._config(function)
        if not 0 <= card_id < config.card_count:
            raise DcmiError(DCMI_ERR_CODE_INVALID_PARAMETER, function)
        device = config.device(card_id, device_id)
        if device is None:
            raise DcmiError(DCMI_ERR_CODE_INVALID_DEVICE_ID, function)
        return device

    def dcmi_init(self) -> None:
        error = self.live.current().ascend.dcmi_init_error
        if error:
            raise DcmiError(error, "dcmi_init")
        self._initialized = True

    def dcmi_get_card_num_list(self) -> tuple[int, list[int]]:
        """C: dcmi_get_card_num_list(int *card_num, int *card_list, int list_len)."""
        config = self._config("dcmi_get_card_num_list")
        return config.card_count, list(range(config.card_count))

    def dcmi_get_card_list(self) -> tuple[int, list[int]]:
        """C: dcmi_get_card_list(int *card_num, int *card_list, int list_len) (older name)."""
        return self.dcmi_get_card_num_list()

    def dcmi_get_device_num_in_card(self, card_id: int) -> int:
        """C: dcmi_get_device_num_in_card(int card_id, int *device_num)."""
        config = self._config("dcmi_get_device_num_in_card")
        if not 0 <= card_id < config.card_count:
            raise DcmiError(DCMI_ERR_CODE_INVALID_PARAMETER, "dcmi_get_device_num_in_card")
        return config.devices_per_card

    def dcmi_get_device_id_in_card(self, card_id: int) -> tuple[int, int, int]:
        """C: dcmi_get_device_id_in_card(int card_id, int *device_id_max, int *mcu_id, int *cpu_id)."""
        return self.dcmi_get_device_num_in_card(card_id), -1, -1

    def dcmi_get_device_logic_id(self, card_id: int, device_id: int) -> int:
        """C: dcmi_get_device_logic_id(int *device_logic_id, int card_id, int device_id)."""
        return self._device("dcmi_get_device_logic_id", card_id, device_id).logic_id

    def dcmi_get_device_health(self, card_id: int, device_id: int) -> int:
        """C: dcmi_get_device_health(int card_id, int device_id, unsigned int *health); 0 = healthy."""
        return self._device("dcmi_get_device_health", card_id, device_id).health_code

    def dcmi_get_device_errorcode_v2(self, card_id: int, device_id: int) -> tuple[int, list[int]]:
        """C: dcmi_get_device_errorcode_v2(card_id, device_id, int *error_count,
        unsigned int *error_code_list, unsigned int list_len)."""
        codes = self._device("dcmi_get_device_errorcode_v2", card_id, device_id).fault_codes
        return len(codes), list(codes)

    def dcmi_get_device_errorcode(self, card_id: int, device_id: int) -> tuple[int, list[int]]:
        """Older name of dcmi_get_device_errorcode_v2 (same out-parameters)."""
        return self.dcmi_get_device_errorcode_v2(card_id, device_id)

    def dcmi_get_device_errorcode_string(self, card_id: int, device_id: int, error_code: int) -> str:
        """C: dcmi_get_device_errorcode_string(card_id, device_id, error_code, char *buf, int size)."""
        self._device("dcmi_get_device_errorcode_string", card_id, device_id)
        return f"mock fault code 0x{error_code:08X}"

    def dcmi_get_device_chip_info(self, card_id: int, device_id: int) -> DcmiChipInfo:
        """C: dcmi_get_device_chip_info(card_id, device_id, struct dcmi_chip_info *chip_info)."""
        self._device("dcmi_get_device_chip_info", card_id, device_id)
        config = self.live.current().ascend
        return DcmiChipInfo(chip_type="Ascend", chip_name=config.chip_name, chip_ver="V1", aicore_cnt=24)

    def dcmi_get_device_logicid_from_phyid(self, phyid: int) -> int:
        """C: dcmi_get_device_logicid_from_phyid(unsigned int phyid, unsigned int *logicid)."""
        config = self._config("dcmi_get_device_logicid_from_phyid")
        if not 0 <= phyid < len(config.devices):
            raise DcmiError(DCMI_ERR_CODE_INVALID_DEVICE_ID, "dcmi_get_device_logicid_from_phyid")
        return config.devices[phyid].logic_id
