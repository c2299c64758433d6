"""Parsing the AIBrix ai-accelerator-tool TOML format and the Brix extensions."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pynvml
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nvml_mock import builders
from nvml_mock.config import load_config, loads, parse_config, stable_uuid
from nvml_mock.model import ConfigError
from nvml_mock.tomlw import dumps

# The shape of AIBrix's hack/gpu_mock_conf.toml: node [gpus], cards as [gpus.N], Ascend tables.
AIBRIX_SAMPLE = """
version = "0.1.0"

[gpus]
card_count = 2

[gpus.0]
device_name = "NVIDIA A100-SXM4-80GB"
arch = 7
pci = "07:00"
uuid = "GPU-11111111-2222-3333-4444-555555555555"
link_gen = 4
link_width_current = 16
link_width_max = 16
nvlink_active = [true, true, false, true]
remapping_failure = false
remapping_pending = true
sram_ue = 0
dram_ue = 3
dram_ce = 7
retired_page_sbe = 1
retired_page_dbe = 2
retired_page_pending = true
uncorrectable_agg_l1 = 1
uncorrectable_agg_l2 = 2
uncorrectable_agg_reg = 3
crictl_xid = [79]

[gpus.1]
device_name = "NVIDIA A100-SXM4-80GB"
pci = "0f:00"
link_width_current = 8

[ascend_npus]
dcmi_init_error = 0
card_count = 2

[ascend_npus.1.0]
fault_codes = [0x80E01801, "0x80C98000"]
"""


def test_aibrix_sample_parses_every_key() -> None:
    config = loads(AIBRIX_SAMPLE, "sample.toml")
    first, second = config.gpus
    assert first.uuid == "GPU-11111111-2222-3333-4444-555555555555"
    assert first.pci_bus_id == "00000000:07:00.0"
    assert first.arch == pynvml.NVML_DEVICE_ARCH_AMPERE
    assert first.nvlink_active == (True, True, False, True)
    assert (first.dram_ue, first.dram_ce, first.retired_page_sbe, first.retired_page_dbe) == (3, 7, 1, 2)
    assert first.remapping_pending and not first.remapping_failure and first.retired_page_pending
    assert (first.uncorrectable_agg_l1, first.uncorrectable_agg_l2, first.uncorrectable_agg_reg) == (1, 2, 3)
    assert first.crictl_xid == (79,)
    assert second.pci_bus_id == "00000000:0F:00.0"
    assert (second.link_width_current, second.link_width_max) == (8, 16)
    assert [d.fault_codes for d in config.ascend.devices] == [(), (0x80E01801, 0x80C98000)]


def test_hyphen_and_dotted_card_tables_are_the_same_card() -> None:
    dotted = loads('[gpus]\ncard_count = 1\n[gpus.0]\ndram_ue = 4\n', "a.toml")
    hyphen = loads('[gpus]\ncard_count = 1\n[gpus-0]\ndram_ue = 4\n', "b.toml")
    assert dotted.gpus == hyphen.gpus


def test_card_defined_with_both_spellings_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"card 0 is defined twice"):
        loads('[gpus.0]\ndram_ue = 1\n[gpus-0]\ndram_ue = 2\n', "x.toml")


def test_missing_card_table_is_a_healthy_default_card() -> None:
    config = loads('node_name = "n1"\n[gpus]\ncard_count = 3\n[gpus-1]\ndram_ue = 1\n', "x.toml")
    default = config.gpus[2]
    assert default.faults() == []
    assert default.device_name == "NVIDIA A100-SXM4-80GB"
    assert default.link_width_current == default.link_width_max == 16
    assert default.memory_total_mib == 81920
    assert config.gpus[1].faults() == ["dram_ue=1"]


def test_uuid_is_stable_per_node_and_index() -> None:
    a = loads('node_name = "node-a"\n[gpus]\ncard_count = 2\n', "a.toml")
    again = loads('node_name = "node-a"\n[gpus]\ncard_count = 2\n', "a.toml")
    b = loads('node_name = "node-b"\n[gpus]\ncard_count = 2\n', "b.toml")
    assert [c.uuid for c in a.gpus] == [c.uuid for c in again.gpus] == [stable_uuid("node-a", i) for i in (0, 1)]
    assert a.gpus[0].uuid != a.gpus[1].uuid
    assert {c.uuid for c in a.gpus}.isdisjoint(c.uuid for c in b.gpus)
    assert a.gpus[0].uuid.startswith("GPU-")


def test_catalog_defaults_follow_device_name() -> None:
    config = loads('[gpus-0]\ndevice_name = "NVIDIA H100 80GB HBM3"\n', "x.toml")
    card = config.gpus[0]
    assert card.arch == pynvml.NVML_DEVICE_ARCH_HOPPER
    assert card.link_gen == 5 and card.memory_total_mib == 81559


@pytest.mark.parametrize(("text", "key", "fragment"), [
    ('[gpus-0]\ndram_eu = 1\n', "gpus-0.dram_eu", "did you mean 'dram_ue'"),
    ('[gpus.0]\ndram_ue = "many"\n', "gpus.0.dram_ue", "expected an integer, got string"),
    ('[gpus-0]\nnvlink_active = [1, 2]\n', "gpus-0.nvlink_active", "array of true/false"),
    ('[gpus-0]\nremapping_pending = "yes"\n', "gpus-0.remapping_pending", "true/false"),
    ('[gpus]\ncard_count = 1\nfoo = 2\n', "gpus.foo", "unknown key"),
    ('[gpus]\ncard_count = 1\n[gpus-3]\n', "gpus-3", "outside gpus.card_count=1"),
    ('[gpu-0]\n', "gpu-0", "unknown key"),
    ('[gpus-0]\npci = "zz"\n', "gpus-0.pci", "not a PCI address"),
    ('[gpus-0]\nlink_width_current = 32\n', "gpus-0.link_width_current", "link_width_max=16"),
    ('[gpus]\ncard_count = 2\n[gpus-0]\nnvlink_peers = [0]\n', "gpus-0.nvlink_peers", "another card"),
    ('[gpus]\ncard_count = 2\n[gpus-0]\npci = "07:00"\n[gpus-1]\npci = "0000:07:00.0"\n', "gpus-1.pci",
     "also used by card 0"),
    ('[gpus]\nnvml_init_error = "NO_SUCH_ERROR"\n', "gpus.nvml_init_error", "NVML error code"),
    ('[[xid_events]]\nseq = 1\ngpu = 0\nxid = 79\n', "xid_events[0].gpu", "does not exist"),
    ('[ascend_npus]\ncard_count = 1\n[ascend_npus.0.0]\nfault_codes = ["bad"]\n',
     "ascend_npus.0.0.fault_codes", "fault codes"),
    ('[ascend_npus]\ncard_count = 1\n[ascend_npus.0.0]\nfaults = []\n', "ascend_npus.0.0.faults", "unknown key"),
])
def test_bad_config_names_the_file_and_key(text: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads(text, "/etc/brix/node.toml")
    assert info.value.file == "/etc/brix/node.toml"
    assert info.value.key == key
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"/etc/brix/node.toml: {key}: ")


def test_invalid_toml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"bad.toml: invalid TOML"):
        loads("[gpus\n", "bad.toml")
    with pytest.raises(ConfigError, match=r"brix nvml-mock init"):
        load_config(tmp_path / "missing.toml")


def test_init_error_accepts_names_and_codes() -> None:
    by_name = loads('[gpus]\nnvml_init_error = "NVML_ERROR_DRIVER_NOT_LOADED"\n', "x.toml")
    short = loads('[gpus]\nnvml_init_error = "driver_not_loaded"\n', "x.toml")
    code = loads('[gpus]\nnvml_init_error = 9\n', "x.toml")
    assert by_name.nvml_init_error == short.nvml_init_error == code.nvml_init_error == 9


def test_inject_into_an_aibrix_file_keeps_its_dotted_tables(tmp_path: Path) -> None:
    from nvml_mock import faults
    from nvml_mock.live import update_config

    path = tmp_path / "aibrix.toml"
    path.write_text(AIBRIX_SAMPLE)
    update_config(path, lambda raw: faults.add_dram_ue(raw, 1, 2))
    update_config(path, lambda raw: faults.heal_gpu(raw, 0))
    text = path.read_text()
    assert "[gpus.1]" in text and "[gpus-1]" not in text
    config = load_config(path)
    assert config.gpus[1].dram_ue == 2
    assert config.gpus[0].faults() == []
    assert config.gpus[0].uuid == "GPU-11111111-2222-3333-4444-555555555555"  # heal keeps identity


@settings(max_examples=40, deadline=None)
@given(gpus=st.integers(0, 9), layout=st.sampled_from(["all", "pairs", "none"]),
       fault=st.fixed_dictionaries({}, optional={
           "dram_ue": st.integers(0, 2**40), "remapping_pending": st.booleans(), "temperature_c": st.integers(0, 120),
           "crictl_xid": st.lists(st.integers(1, 200), max_size=3), "serial": st.text(max_size=12)}))
def test_written_configs_read_back_unchanged(gpus: int, layout: str, fault: dict[str, Any]) -> None:
    raw = builders.node_config(gpus=gpus, nvlink=layout, faults={0: fault}, npus=1, npu_faults={(0, 0): [0x80E01801]})
    assert tomllib.loads(dumps(raw)) == raw
    assert loads(dumps(raw), "x.toml") == parse_config(raw, "x.toml")
