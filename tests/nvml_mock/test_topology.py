"""NVLink and PCIe/NUMA topology as the device plugin's preferred-allocation code reads it."""

from __future__ import annotations

from typing import Any

import pynvml
import pytest

from nvml_mock import builders
from nvml_mock.nvml import open_mock


def _peer_links(nvml: Any, handle: Any) -> dict[str, int]:
    """NVLink count per remote PCI bus id, the way go-gpuallocator builds its link matrix."""
    links: dict[str, int] = {}
    for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
        try:
            if nvml.nvmlDeviceGetNvLinkState(handle, link) != pynvml.NVML_FEATURE_ENABLED:
                continue
            bus = nvml.nvmlDeviceGetNvLinkRemotePciInfo(handle, link).busId  # str, as pynvml gives it
        except pynvml.NVMLError:
            continue
        links[bus] = links.get(bus, 0) + 1
    return links


def test_pairs_layout_links_each_card_to_its_partner_only(write_node: Any) -> None:
    path, config = write_node(gpus=4, nvlink="pairs")
    nvml = open_mock(path)
    nvml.nvmlInit()
    links = _peer_links(nvml, nvml.nvmlDeviceGetHandleByIndex(2))
    assert links == {config.gpus[3].pci_bus_id: 12}
    count = nvml.nvmlDeviceGetFieldValues(nvml.nvmlDeviceGetHandleByIndex(2), [pynvml.NVML_FI_DEV_NVLINK_LINK_COUNT])
    assert count[0].nvmlReturn == pynvml.NVML_SUCCESS and count[0].value.uiVal == 12


def test_all_layout_links_every_pair(write_node: Any) -> None:
    path, config = write_node(gpus=8, model="H100")
    nvml = open_mock(path)
    nvml.nvmlInit()
    links = _peer_links(nvml, nvml.nvmlDeviceGetHandleByIndex(0))
    assert links == {card.pci_bus_id: 2 for card in config.gpus[1:]}


def test_pcie_card_has_no_nvlink(write_node: Any) -> None:
    path, _ = write_node(gpus=2, model="L40S")
    nvml = open_mock(path)
    nvml.nvmlInit()
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetNvLinkState(nvml.nvmlDeviceGetHandleByIndex(0), 0)
    with pytest.raises(ValueError, match="no NVLink"):
        builders.node_config(gpus=2, model="L40S", nvlink="all")


def test_down_link_is_reported_inactive(write_node: Any) -> None:
    path, _ = write_node(gpus=2, nvlink="pairs", links_per_peer=2, faults={0: {"nvlink_active": [True, False]}})
    nvml = open_mock(path)
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    assert [nvml.nvmlDeviceGetNvLinkState(handle, i) for i in (0, 1)] == [1, 0]


def test_common_ancestor_and_nearest_gpus_follow_switch_and_numa(write_node: Any) -> None:
    path, _ = write_node(gpus=8, numa_nodes=2)
    nvml = open_mock(path)
    nvml.nvmlInit()
    h = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(8)]
    ancestor = nvml.nvmlDeviceGetTopologyCommonAncestor
    assert ancestor(h[0], h[0]) == pynvml.NVML_TOPOLOGY_INTERNAL
    assert ancestor(h[0], h[1]) == pynvml.NVML_TOPOLOGY_SINGLE  # same PCIe switch
    assert ancestor(h[0], h[2]) == pynvml.NVML_TOPOLOGY_NODE  # same NUMA node
    assert ancestor(h[0], h[5]) == pynvml.NVML_TOPOLOGY_SYSTEM  # across NUMA nodes
    nearest = nvml.nvmlDeviceGetTopologyNearestGpus(h[0], pynvml.NVML_TOPOLOGY_NODE)
    assert sorted(nvml.nvmlDeviceGetIndex(x) for x in nearest) == [1, 2, 3]
    assert [nvml.nvmlDeviceGetNumaNodeId(x) for x in h] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_builder_rejects_unknown_models_and_layouts() -> None:
    with pytest.raises(ValueError, match="unknown GPU model 'Z9'"):
        builders.node_config(model="Z9")
    with pytest.raises(ValueError, match="nvlink layout"):
        builders.node_config(nvlink="ring")
