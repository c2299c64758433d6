"""`brix nvml-mock show`: the simulated cards as a text table (pure rendering)."""

from __future__ import annotations

from collections.abc import Sequence

from nvml_mock.model import NodeConfig


def render(config: NodeConfig) -> str:
    lines = [f"node {config.node_name}: {len(config.gpus)} GPU(s), driver {config.driver_version}"
             + (f", nvmlInit fails with error {config.nvml_init_error}" if config.nvml_init_error else "")]
    pending: dict[int, list[str]] = {}
    for event in config.xid_events:
        pending.setdefault(event.gpu, []).append(f"xid{event.xid}#{event.seq}")
    rows = [("IDX", "UUID", "NAME", "PCI", "MEMORY MiB", "TEMP", "LINK", "NUMA", "NVLINK PEERS", "FAULTS")]
    for card in config.gpus:
        peers = ",".join(str(p) for p in sorted(set(card.nvlink_peers))) or "-"
        faults = card.faults() + pending.get(card.index, [])
        rows.append((str(card.index), card.uuid, card.device_name, card.pci_bus_id,
                     f"{card.memory_used_mib}/{card.memory_total_mib}", f"{card.temperature_c}C",
                     f"x{card.link_width_current}/x{card.link_width_max}", str(card.numa_node), peers,
                     " ".join(faults) or "healthy"))
    lines.extend(_table(rows))
    if config.ascend.card_count:
        lines.append("")
        lines.append(f"Ascend {config.ascend.chip_name}: {config.ascend.card_count} card(s)"
                     + (f", dcmi_init fails with {config.ascend.dcmi_init_error}" if config.ascend.dcmi_init_error
                        else ""))
        npu_rows = [("CARD", "DEVICE", "LOGIC ID", "HEALTH", "FAULT CODES")]
        for dev in config.ascend.devices:
            codes = " ".join(f"0x{c:08X}" for c in dev.fault_codes) or "-"
            npu_rows.append((str(dev.card), str(dev.device), str(dev.logic_id), str(dev.health_code), codes))
        lines.extend(_table(npu_rows))
    return "\n".join(lines) + "\n"


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
