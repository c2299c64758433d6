"""Builders for mock configs, in the spirit of NVIDIA's resource-testing.go.

    raw = node_config(gpus=8, model="A100", nvlink="all", faults={3: {"dram_ue": 2}})
    config = write_config(tmp_path / "node.toml", raw)   # validated NodeConfig, file written
    config.gpus[3].uuid

They return the raw TOML dict (what `brix nvml-mock init` writes), so a test can still tweak it
before writing. Defaults describe a healthy node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nvml_mock.live import write_raw
from nvml_mock.model import DEFAULT_MODEL, MAX_NVLINKS, GpuModel, NodeConfig, find_model

NVLINK_LAYOUTS = ("all", "pairs", "none")


def gpu_model(name: str) -> GpuModel:
    model = find_model(name)
    if model is None:
        from nvml_mock.model import GPU_MODELS
        known = ", ".join(m.alias for m in GPU_MODELS)
        raise ValueError(f"unknown GPU model {name!r}; known models: {known} (or A100, H100)")
    return model


def full_gpu(model: str = DEFAULT_MODEL.alias, **overrides: Any) -> dict[str, Any]:
    """One card table: the catalog model's name, plus any card keys to override."""
    return {"device_name": gpu_model(model).device_name, **overrides}


def nvlink_peers(gpus: int, layout: str, links_per_peer: int = 1) -> list[list[int]]:
    """Per card, the peer of each NVLink: 'all' (every pair linked), 'pairs' (0-1, 2-3, ...), 'none'."""
    if layout not in NVLINK_LAYOUTS:
        raise ValueError(f"nvlink layout must be one of {', '.join(NVLINK_LAYOUTS)}, got {layout!r}")
    if layout == "none":
        return [[] for _ in range(gpus)]
    if layout == "pairs":
        peers: list[list[int]] = []
        for i in range(gpus):
            partner = i ^ 1
            peers.append([partner] * links_per_peer if partner < gpus else [])
        return peers
    if (gpus - 1) * links_per_peer > MAX_NVLINKS:
        raise ValueError(f"nvlink='all' needs {(gpus - 1) * links_per_peer} links per card; NVML allows "
                         f"{MAX_NVLINKS}. Use fewer GPUs, links_per_peer=1 or nvlink='pairs'")
    return [[j for j in range(gpus) if j != i for _ in range(links_per_peer)] for i in range(gpus)]


def node_config(gpus: int = 8, model: str = DEFAULT_MODEL.alias, nvlink: str | None = None, *,
                node_name: str = "mock-node", numa_nodes: int = 2, links_per_peer: int | None = None,
                faults: dict[int, dict[str, Any]] | None = None, npus: int = 0, npu_devices_per_card: int = 1,
                npu_faults: dict[tuple[int, int], list[int]] | None = None) -> dict[str, Any]:
    """A whole node: `gpus` cards of one model, NVLink layout, NUMA split, optional faults and NPUs.

    nvlink defaults to 'all' for NVLink models (A100/H100/H200/V100) and 'none' for PCIe ones.
    NUMA: cards are split evenly over `numa_nodes`; two cards share each PCIe switch.
    `faults` maps a card index to card keys (for example {3: {"dram_ue": 1}}).
    """
    spec = gpu_model(model)
    layout = nvlink or ("all" if spec.nvlinks else "none")
    if layout != "none" and not spec.nvlinks:
        raise ValueError(f"{spec.alias} has no NVLink; use nvlink='none'")
    if links_per_peer is None:
        usable = min(spec.nvlinks, MAX_NVLINKS)
        links_per_peer = max(1, usable // max(1, gpus - 1)) if layout == "all" else max(1, usable)
    peers = nvlink_peers(gpus, layout, links_per_peer)
    per_numa = max(1, -(-gpus // max(1, numa_nodes)))
    raw: dict[str, Any] = {"version": "0.1.0", "node_name": node_name, "gpus": {"card_count": gpus}}
    for i in range(gpus):
        table: dict[str, Any] = {"device_name": spec.device_name, "numa_node": i // per_numa,
                                 "pcie_switch": i // 2}
        if peers[i]:
            table["nvlink_peers"] = peers[i]
        table.update((faults or {}).get(i, {}))
        raw[f"gpus-{i}"] = table
    if npus:
        ascend: dict[str, Any] = {"card_count": npus, "devices_per_card": npu_devices_per_card}
        for (card, device), codes in (npu_faults or {}).items():
            ascend.setdefault(str(card), {})[str(device)] = {"fault_codes": [f"0x{c:08X}" for c in codes]}
        raw["ascend_npus"] = ascend
    return raw


def write_config(path: str | Path, raw: dict[str, Any]) -> NodeConfig:
    """Validate and write `raw` atomically (ConfigError if invalid); returns the parsed config."""
    return write_raw(path, raw)
