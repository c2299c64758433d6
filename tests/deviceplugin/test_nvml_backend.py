"""The NVML back-end against nvml_mock in-process: discovery, topology and polled checks."""

from __future__ import annotations

from deviceplugin.nvml_backend import NvmlBackend
from nvml_mock import builders
from nvml_mock.nvml import open_mock


def test_discovery_reads_ids_numa_minor_and_nvlink_topology(tmp_path):
    path = tmp_path / "node.toml"
    node = builders.write_config(path, builders.node_config(gpus=4, nvlink="pairs", links_per_peer=3))
    backend = NvmlBackend(open_mock(path))
    try:
        inv = backend.discover("uuid")
        assert [d.id for d in inv.devices] == [g.uuid for g in node.gpus]
        assert [d.numa_node for d in inv.devices] == [0, 0, 1, 1]
        a, b, c, d = (dev.id for dev in inv.devices)
        assert inv.topology.nvlinks[frozenset((a, b))] == 3  # counted once per link, not from both ends
        assert frozenset((a, c)) not in inv.topology.nvlinks
        assert inv.topology.pcie[frozenset((a, b))] == "single"
        assert inv.topology.pcie[frozenset((a, c))] == "system"
        assert inv.driver
        assert backend.discover("index").devices[2].id == "2"
    finally:
        backend.close()


def test_polled_checks_name_each_fault_and_can_be_switched_off(tmp_path):
    path = tmp_path / "node.toml"
    faults = {0: {"dram_ue": 2, "remapping_pending": True, "link_width_current": 8, "retired_page_dbe": 1}}
    builders.write_config(path, builders.node_config(gpus=2, nvlink="none", faults=faults))
    backend = NvmlBackend(open_mock(path))
    try:
        sick, well = backend.discover("uuid").devices
        found = backend.poll(sick, frozenset())
        assert any("uncorrectable ECC errors: 2" in f for f in found)
        assert any("row remapping pending" in f for f in found)
        assert any("PCIe link width x8 below max x16" in f for f in found)
        assert any("double-bit" in f for f in found)
        assert backend.poll(well, frozenset()) == []
        assert backend.poll(sick, frozenset({"ecc", "remapped_rows", "pcie_link", "retired_pages"})) == []
    finally:
        backend.close()
