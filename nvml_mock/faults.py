"""Fault injection and healing as pure changes to the raw TOML dict of a mock config.

`live.update_config(path, lambda raw: inject_xid(raw, 3, 79, now))` applies one atomically.
Each function validates its own arguments against the card count and raises ValueError with a
message meant for a person.

Heal (`heal_gpu`) means: the card is as good as new. Every ECC counter (sram/dram ue/ce, the
aggregate l1/l2/register counts) and retired-page count goes to 0, retired-page pending, row
remapping pending and failure are cleared, remapped-row counts go to 0, the PCIe link width goes
back to link_width_max (the key is removed), every NVLink is active again, `crictl_xid` is
removed and the card's `[[xid_events]]` are deleted (pending XIDs are considered cleared: an
event set that has not yet received them never will). Identity, memory, temperature, power and
topology are kept. `xid_seq` keeps growing, so a later XID is always new.
"""

from __future__ import annotations

from typing import Any

from nvml_mock.config import card_tables

_ZEROED = ("sram_ue", "sram_ce", "dram_ue", "dram_ce", "retired_page_sbe", "retired_page_dbe",
           "uncorrectable_agg_l1", "uncorrectable_agg_l2", "uncorrectable_agg_reg",
           "remapped_rows_correctable", "remapped_rows_uncorrectable")
_CLEARED = ("retired_page_pending", "remapping_pending", "remapping_failure")


def gpu_count(raw: dict[str, Any]) -> int:
    tables = card_tables(raw, "<config>")
    gpus = raw.get("gpus", {})
    count = gpus.get("card_count") if isinstance(gpus, dict) else None
    return count if isinstance(count, int) else (max(tables) + 1 if tables else 0)


def card_table(raw: dict[str, Any], index: int) -> dict[str, Any]:
    """The raw table of card `index`, created as `[gpus-N]` when the card had none."""
    count = gpu_count(raw)
    if not 0 <= index < count:
        raise ValueError(f"GPU {index} does not exist: the config has {count} cards (0..{count - 1})")
    tables = card_tables(raw, "<config>")
    if index in tables:
        return tables[index][1]  # type: ignore[return-value]  # card_tables hands back the tables of `raw` itself, mutable
    table: dict[str, Any] = {}
    raw[f"gpus-{index}"] = table
    return table


def inject_xid(raw: dict[str, Any], index: int, xid: int, now: float) -> int:
    """Append an XID event for card `index`; returns its sequence number."""
    card_table(raw, index)
    if xid <= 0:
        raise ValueError(f"XID must be a positive number, got {xid}")
    gpus = raw.setdefault("gpus", {})
    events = raw.setdefault("xid_events", [])
    seq = max([int(gpus.get("xid_seq", 0)), *(int(e.get("seq", 0)) for e in events)]) + 1
    gpus["xid_seq"] = seq
    events.append({"seq": seq, "gpu": index, "xid": xid, "time": round(now, 3)})
    return seq


def add_dram_ue(raw: dict[str, Any], index: int, count: int) -> int:
    """Add `count` uncorrectable DRAM ECC errors to card `index`; returns the new total."""
    if count <= 0:
        raise ValueError(f"--dram-ue needs a positive count, got {count}")
    table = card_table(raw, index)
    table["dram_ue"] = int(table.get("dram_ue", 0)) + count
    return int(table["dram_ue"])


def set_remapping_pending(raw: dict[str, Any], index: int) -> None:
    card_table(raw, index)["remapping_pending"] = True


def set_link_width(raw: dict[str, Any], index: int, width: int) -> None:
    """Set the current PCIe link width (the parser checks 0 <= width <= link_width_max)."""
    card_table(raw, index)["link_width_current"] = width


def heal_gpu(raw: dict[str, Any], index: int) -> int:
    """Clear every fault of card `index` (see the module docstring); returns XID events removed."""
    table = card_table(raw, index)
    for key in _ZEROED:
        if key in table:
            table[key] = 0
    for key in _CLEARED:
        if key in table:
            table[key] = False
    table.pop("link_width_current", None)
    table.pop("crictl_xid", None)
    if "nvlink_active" in table:
        table["nvlink_active"] = [True] * len(table["nvlink_active"])
    events = raw.get("xid_events", [])
    kept = [e for e in events if e.get("gpu") != index]
    if events:
        raw["xid_events"] = kept
    return len(events) - len(kept)


def _npu_table(raw: dict[str, Any], card: int, device: int) -> dict[str, Any]:
    npus = raw.setdefault("ascend_npus", {})
    count = npus.get("card_count")
    if not isinstance(count, int):
        count = max([int(k) + 1 for k in npus if k.isdigit()] or [0])
    per_card = npus.get("devices_per_card", 1)
    if not 0 <= card < count or not 0 <= device < per_card:
        raise ValueError(f"NPU card {card} device {device} does not exist: the config has {count} cards "
                         f"with {per_card} device(s) each")
    table: dict[str, Any] = npus.setdefault(str(card), {}).setdefault(str(device), {})
    return table


def inject_npu_fault(raw: dict[str, Any], card: int, device: int, code: int) -> list[int]:
    """Add a DCMI fault code to an Ascend device (no duplicates); returns its fault codes."""
    table = _npu_table(raw, card, device)
    codes = [int(c, 0) if isinstance(c, str) else int(c) for c in table.get("fault_codes", [])]
    if code not in codes:
        codes.append(code)
    table["fault_codes"] = [f"0x{c:08X}" for c in codes]  # hex strings: readable in the file
    return codes


def heal_npu(raw: dict[str, Any], card: int, device: int) -> None:
    """Clear an Ascend device: no fault codes, health derived again (explicit `health` removed)."""
    table = _npu_table(raw, card, device)
    table["fault_codes"] = []
    table.pop("health", None)
