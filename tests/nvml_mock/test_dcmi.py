"""The Ascend DCMI mock: init errors, card/device enumeration, health from fault codes, live faults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from brix.cli import main
from nvml_mock import builders
from nvml_mock.dcmi import DCMI_ERR_CODE_INNER_ERR, DCMI_ERR_CODE_INVALID_DEVICE_ID, DcmiError, open_mock


def test_enumeration_and_logic_ids(write_node: Any) -> None:
    path, _ = write_node(gpus=0, npus=2, npu_devices_per_card=2)
    dcmi = open_mock(path)
    dcmi.dcmi_init()
    assert dcmi.dcmi_get_card_num_list() == (2, [0, 1])
    assert dcmi.dcmi_get_card_list() == (2, [0, 1])
    assert dcmi.dcmi_get_device_num_in_card(1) == 2
    assert [dcmi.dcmi_get_device_logic_id(c, d) for c in (0, 1) for d in (0, 1)] == [0, 1, 2, 3]
    assert dcmi.dcmi_get_device_chip_info(0, 0).chip_name == "910B"
    with pytest.raises(DcmiError) as info:
        dcmi.dcmi_get_device_health(0, 5)
    assert info.value.code == DCMI_ERR_CODE_INVALID_DEVICE_ID


def test_calls_before_init_and_configured_init_error(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    raw = builders.node_config(gpus=0, npus=1)
    raw["ascend_npus"]["dcmi_init_error"] = -8005
    builders.write_config(path, raw)
    dcmi = open_mock(path)
    with pytest.raises(DcmiError) as info:
        dcmi.dcmi_get_card_num_list()
    assert info.value.code == DCMI_ERR_CODE_INNER_ERR
    with pytest.raises(DcmiError) as info:
        dcmi.dcmi_init()
    assert info.value.code == -8005 and "dcmi_init" in str(info.value)


def test_fault_codes_make_a_device_unhealthy_and_heal_restores_it(write_node: Any,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = write_node(gpus=0, npus=2, npu_faults={(0, 0): [0x80C98000]})
    dcmi = open_mock(path)
    dcmi.dcmi_init()
    assert dcmi.dcmi_get_device_health(0, 0) != 0
    assert dcmi.dcmi_get_device_errorcode_v2(0, 0) == (1, [0x80C98000])
    assert dcmi.dcmi_get_device_health(1, 0) == 0
    assert dcmi.dcmi_get_device_errorcode_v2(1, 0) == (0, [])

    assert main(["nvml-mock", "inject", "--config", str(path), "--npu", "1", "--fault-code", "0x80E01801"]) == 0
    assert dcmi.dcmi_get_device_health(1, 0) != 0  # the live mock sees the rewrite
    assert dcmi.dcmi_get_device_errorcode_v2(1, 0) == (1, [0x80E01801])
    assert main(["nvml-mock", "inject", "--config", str(path), "--npu", "1", "--heal"]) == 0
    assert dcmi.dcmi_get_device_health(1, 0) == 0
    out = capsys.readouterr().out
    assert "fault codes now 0x80E01801" in out and "healed" in out


def test_show_lists_npus(write_node: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = write_node(gpus=1, npus=2, npu_faults={(1, 0): [0x80E01801]})
    assert main(["nvml-mock", "show", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Ascend 910B: 2 card(s)" in out
    assert "0x80E01801" in out.splitlines()[-1]
