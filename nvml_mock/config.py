"""Parse the mock TOML (AIBrix ai-accelerator-tool format + Brix extensions) into a NodeConfig.

Pure: `parse_config(data, source)` takes the dict that tomllib produced and the file name used in
error messages; `loads`/`load_config` add the TOML step. Every problem raises ConfigError naming
the file and the key.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pynvml

from nvml_mock.model import (
    DEFAULT_CUDA_DRIVER_VERSION,
    DEFAULT_DRIVER_VERSION,
    DEFAULT_MODEL,
    DEFAULT_NODE_NAME,
    MAX_NVLINKS,
    AscendConfig,
    ConfigError,
    GpuCard,
    NodeConfig,
    NpuDevice,
    XidEvent,
    find_model,
)

UUID_NAMESPACE = uuid.UUID("5b1c3d4e-8f60-4b7a-9c2d-b41d0e0a11a5")
MAX_CARDS = 64
TOP_KEYS = ("version", "node_name", "gpus", "ascend_npus", "xid_events")
NODE_GPU_KEYS = {"card_count": "int", "nvml_init_error": "error", "driver_version": "str",
                 "cuda_driver_version": "int", "xid_seq": "int"}
CARD_KEYS = {
    # AIBrix ai-accelerator-tool keys
    "device_name": "str", "arch": "int", "pci": "str", "uuid": "str", "link_gen": "int",
    "link_width_current": "int", "link_width_max": "int", "nvlink_active": "bool_list",
    "remapping_failure": "flag", "remapping_pending": "flag", "sram_ue": "int", "dram_ue": "int",
    "dram_ce": "int", "retired_page_sbe": "int", "retired_page_dbe": "int", "retired_page_pending": "flag",
    "uncorrectable_agg_l1": "int", "uncorrectable_agg_l2": "int", "uncorrectable_agg_reg": "int",
    "crictl_xid": "int_list",
    # Brix extensions
    "memory_total_mib": "int", "memory_used_mib": "int", "temperature_c": "int", "power_mw": "int",
    "numa_node": "int", "pcie_switch": "int", "nvlink_peers": "int_list", "sram_ce": "int",
    "remapped_rows_correctable": "int", "remapped_rows_uncorrectable": "int", "serial": "str",
}
XID_EVENT_KEYS = {"seq": "int", "gpu": "int", "xid": "int", "time": "number"}
ASCEND_NODE_KEYS = {"card_count": "int", "dcmi_init_error": "int", "devices_per_card": "int", "chip_name": "str"}
NPU_KEYS = {"fault_codes": "code_list", "health": "int"}
_CARD_TABLE = re.compile(r"^gpus-(\d+)$")
_PCI = re.compile(r"^(?:(?P<domain>[0-9a-fA-F]{4,8}):)?(?P<bus>[0-9a-fA-F]{1,2}):(?P<dev>[0-9a-fA-F]{1,2})"
                  r"(?:\.(?P<fn>[0-7]))?$")


def load_config(path: str | Path) -> NodeConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read the file ({exc.strerror}); "
                          "create one with `brix nvml-mock init --config FILE`") from exc
    return loads(text, str(path))


def loads(text: str, source: str = "<config>") -> NodeConfig:
    return parse_config(parse_toml(text, source), source)


def parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"invalid TOML: {exc}") from exc


def stable_uuid(node_name: str, index: int) -> str:
    """The uuid a card gets when the config has none: same node name + index, same uuid."""
    return "GPU-" + str(uuid.uuid5(UUID_NAMESPACE, f"{node_name}/gpu/{index}"))


def default_pci(index: int) -> str:
    return f"{index // 32:08X}:{0x18 + 4 * (index % 32):02X}:00.0"


def normalize_pci(text: str) -> str | None:
    """'07:00', '0000:07:00.0' or '00000000:07:00.0' -> '00000000:07:00.0'; None if malformed."""
    m = _PCI.match(text.strip())
    if not m:
        return None
    domain = int(m.group("domain") or "0", 16)
    return f"{domain:08X}:{int(m.group('bus'), 16):02X}:{int(m.group('dev'), 16):02X}.{m.group('fn') or 0}"


def card_tables(data: Mapping[str, Any], source: str) -> dict[int, tuple[str, Mapping[str, Any]]]:
    """Card index -> (key path for messages, table), from both `[gpus-N]` and `[gpus.N]`."""
    found: dict[int, tuple[str, Mapping[str, Any]]] = {}

    def add(index: int, key: str, table: Any) -> None:
        if not isinstance(table, Mapping):
            raise ConfigError(source, key, f"expected a table [{key}], got {_kind(table)}")
        if index in found:
            raise ConfigError(source, key, f"card {index} is defined twice ([{found[index][0]}] and [{key}]); "
                              "keep one of the two spellings")
        found[index] = (key, table)

    for key, value in data.items():
        m = _CARD_TABLE.match(key)
        if m:
            add(int(m.group(1)), key, value)
    gpus = data.get("gpus", {})
    if isinstance(gpus, Mapping):
        for key, value in gpus.items():
            if key.isdigit():
                add(int(key), f"gpus.{key}", value)
    return found


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> NodeConfig:
    for key in data:
        if key not in TOP_KEYS and not _CARD_TABLE.match(key):
            raise ConfigError(source, key, _unknown(key, [*TOP_KEYS, "gpus-N"]))
    node_name = _get(data, "node_name", "str", source, "node_name", DEFAULT_NODE_NAME)
    _get(data, "version", "str", source, "version", "0.1.0")
    gpus_node = data.get("gpus", {})
    if not isinstance(gpus_node, Mapping):
        raise ConfigError(source, "gpus", f"expected a table [gpus], got {_kind(gpus_node)}")
    for key in gpus_node:
        if not key.isdigit() and key not in NODE_GPU_KEYS:
            raise ConfigError(source, f"gpus.{key}", _unknown(key, list(NODE_GPU_KEYS)))
    tables = card_tables(data, source)
    default_count = max(tables) + 1 if tables else 0
    count = _get(gpus_node, "card_count", "int", source, "gpus.card_count", default_count)
    if not 0 <= count <= MAX_CARDS:
        raise ConfigError(source, "gpus.card_count", f"must be between 0 and {MAX_CARDS}, got {count}")
    for index, (key, _) in tables.items():
        if index >= count:
            raise ConfigError(source, key, f"card {index} is outside gpus.card_count={count}; "
                              f"raise card_count to {index + 1} or remove the table")
    cards = tuple(_card(index, tables.get(index, (f"gpus-{index}", {})), node_name, count, source)
                  for index in range(count))
    _check_unique(cards, source)
    events = _xid_events(data.get("xid_events", []), count, source)
    xid_seq = _get(gpus_node, "xid_seq", "int", source, "gpus.xid_seq", 0)
    xid_seq = max([xid_seq, *(e.seq for e in events)])
    return NodeConfig(
        node_name=node_name,
        nvml_init_error=_get(gpus_node, "nvml_init_error", "error", source, "gpus.nvml_init_error", 0),
        driver_version=_get(gpus_node, "driver_version", "str", source, "gpus.driver_version",
                            DEFAULT_DRIVER_VERSION),
        cuda_driver_version=_get(gpus_node, "cuda_driver_version", "int", source, "gpus.cuda_driver_version",
                                 DEFAULT_CUDA_DRIVER_VERSION),
        xid_seq=xid_seq,
        gpus=cards,
        xid_events=events,
        ascend=_ascend(data.get("ascend_npus", {}), source),
    )


def _card(index: int, entry: tuple[str, Mapping[str, Any]], node_name: str, count: int, source: str) -> GpuCard:
    key, table = entry
    for name in table:
        if name not in CARD_KEYS:
            raise ConfigError(source, f"{key}.{name}", _unknown(name, list(CARD_KEYS)))
    values: dict[str, Any] = {name: _get(table, name, kind, source, f"{key}.{name}", None)
                              for name, kind in CARD_KEYS.items() if name in table}
    model = find_model(values.get("device_name", DEFAULT_MODEL.device_name)) or DEFAULT_MODEL
    device_name = values.pop("device_name", model.device_name)
    pci_text = values.pop("pci", None)
    pci = default_pci(index) if pci_text is None else normalize_pci(pci_text)
    if pci is None:
        raise ConfigError(source, f"{key}.pci", f"{pci_text!r} is not a PCI address; write 'BB:DD' "
                          "(bus:device, hex) or 'DDDD:BB:DD.F'")
    width_max = values.pop("link_width_max", model.link_width_max)
    width = values.pop("link_width_current", width_max)
    if not 0 <= width <= width_max:
        raise ConfigError(source, f"{key}.link_width_current",
                          f"{width} must be between 0 and link_width_max={width_max}")
    peers = tuple(values.pop("nvlink_peers", ()))
    for peer in peers:
        if not 0 <= peer < count or peer == index:
            raise ConfigError(source, f"{key}.nvlink_peers", f"peer {peer} must be another card index "
                              f"below card_count={count}")
    active = tuple(values.pop("nvlink_active", (True,) * len(peers)))
    if len(peers) > len(active):
        raise ConfigError(source, f"{key}.nvlink_active", f"lists {len(active)} links but nvlink_peers "
                          f"names {len(peers)}; give one entry per link")
    if len(active) > MAX_NVLINKS:
        raise ConfigError(source, f"{key}.nvlink_active", f"at most {MAX_NVLINKS} links (NVML_NVLINK_MAX_LINKS)")
    total = values.pop("memory_total_mib", model.memory_total_mib)
    used = values.get("memory_used_mib", 0)
    if not 0 <= used <= total:
        raise ConfigError(source, f"{key}.memory_used_mib", f"{used} must be between 0 and memory_total_mib={total}")
    for name, value in values.items():
        if CARD_KEYS[name] == "int" and value < 0 and name != "numa_node":
            raise ConfigError(source, f"{key}.{name}", f"must not be negative, got {value}")
    values.setdefault("uuid", stable_uuid(node_name, index))
    values.setdefault("arch", model.arch)
    values.setdefault("link_gen", model.link_gen)
    values.setdefault("power_mw", model.power_mw)
    values.setdefault("numa_node", 0)
    values.setdefault("serial", f"{1320000000000 + index:013d}")
    values["crictl_xid"] = tuple(values.get("crictl_xid", ()))
    return GpuCard(index=index, device_name=device_name, pci_bus_id=pci, link_width_current=width,
                   link_width_max=width_max, nvlink_active=active, nvlink_peers=peers,
                   memory_total_mib=total, **values)


def _check_unique(cards: tuple[GpuCard, ...], source: str) -> None:
    for attr, name in (("uuid", "uuid"), ("pci_bus_id", "pci")):
        seen: dict[str, int] = {}
        for card in cards:
            value = getattr(card, attr)
            if value in seen:
                raise ConfigError(source, f"gpus-{card.index}.{name}",
                                  f"{value} is also used by card {seen[value]}; every card needs its own {name}")
            seen[value] = card.index


def _xid_events(raw: Any, count: int, source: str) -> tuple[XidEvent, ...]:
    if not isinstance(raw, list):
        raise ConfigError(source, "xid_events", f"expected an array of tables [[xid_events]], got {_kind(raw)}")
    events: list[XidEvent] = []
    seqs: set[int] = set()
    for i, item in enumerate(raw):
        key = f"xid_events[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(source, key, f"expected a table with seq, gpu, xid, got {_kind(item)}")
        for name in item:
            if name not in XID_EVENT_KEYS:
                raise ConfigError(source, f"{key}.{name}", _unknown(name, list(XID_EVENT_KEYS)))
        for name in ("seq", "gpu", "xid"):
            if name not in item:
                raise ConfigError(source, f"{key}.{name}", "missing; every XID event needs seq, gpu and xid")
        seq = _get(item, "seq", "int", source, f"{key}.seq", 0)
        gpu = _get(item, "gpu", "int", source, f"{key}.gpu", 0)
        xid = _get(item, "xid", "int", source, f"{key}.xid", 0)
        if seq <= 0 or seq in seqs:
            raise ConfigError(source, f"{key}.seq", f"{seq} must be a positive number not used by another event")
        if not 0 <= gpu < count:
            raise ConfigError(source, f"{key}.gpu", f"card {gpu} does not exist (card_count={count})")
        if xid <= 0:
            raise ConfigError(source, f"{key}.xid", f"XID must be positive, got {xid}")
        seqs.add(seq)
        events.append(XidEvent(seq=seq, gpu=gpu, xid=xid,
                               time=float(_get(item, "time", "number", source, f"{key}.time", 0.0))))
    return tuple(sorted(events, key=lambda e: e.seq))


def _ascend(raw: Any, source: str) -> AscendConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError(source, "ascend_npus", f"expected a table [ascend_npus], got {_kind(raw)}")
    card_keys = [k for k in raw if k.isdigit()]
    for key in raw:
        if not key.isdigit() and key not in ASCEND_NODE_KEYS:
            raise ConfigError(source, f"ascend_npus.{key}", _unknown(key, [*ASCEND_NODE_KEYS, "<card>.<device>"]))
    per_card = _get(raw, "devices_per_card", "int", source, "ascend_npus.devices_per_card", 1)
    default_count = max(map(int, card_keys)) + 1 if card_keys else 0
    count = _get(raw, "card_count", "int", source, "ascend_npus.card_count", default_count)
    if not 0 <= count <= MAX_CARDS or not 1 <= per_card <= 8:
        raise ConfigError(source, "ascend_npus", f"card_count must be 0..{MAX_CARDS} and devices_per_card 1..8")
    tables: dict[tuple[int, int], Mapping[str, Any]] = {}
    for card_key in card_keys:
        card_table = raw[card_key]
        if not isinstance(card_table, Mapping):
            raise ConfigError(source, f"ascend_npus.{card_key}", "expected tables [ascend_npus.<card>.<device>]")
        for dev_key, dev_table in card_table.items():
            key = f"ascend_npus.{card_key}.{dev_key}"
            if not dev_key.isdigit() or not isinstance(dev_table, Mapping):
                raise ConfigError(source, key, "expected a table [ascend_npus.<card>.<device>] with fault_codes")
            card, dev = int(card_key), int(dev_key)
            if card >= count or dev >= per_card:
                raise ConfigError(source, key, f"card {card} device {dev} is outside card_count={count}, "
                                  f"devices_per_card={per_card}")
            for name in dev_table:
                if name not in NPU_KEYS:
                    raise ConfigError(source, f"{key}.{name}", _unknown(name, list(NPU_KEYS)))
            tables[(card, dev)] = dev_table
    devices = []
    for card in range(count):
        for dev in range(per_card):
            table = tables.get((card, dev), {})
            key = f"ascend_npus.{card}.{dev}"
            devices.append(NpuDevice(
                card=card, device=dev, logic_id=card * per_card + dev,
                fault_codes=tuple(_get(table, "fault_codes", "code_list", source, f"{key}.fault_codes", [])),
                health=_get(table, "health", "int", source, f"{key}.health", None)))
    return AscendConfig(card_count=count, devices_per_card=per_card,
                        dcmi_init_error=_get(raw, "dcmi_init_error", "int", source, "ascend_npus.dcmi_init_error", 0),
                        chip_name=_get(raw, "chip_name", "str", source, "ascend_npus.chip_name", "910B"),
                        devices=tuple(devices))


_KIND_TEXT = {"int": "an integer", "str": "a string", "flag": "true/false (or 0/1)", "number": "a number",
              "bool_list": "an array of true/false", "int_list": "an array of integers",
              "code_list": "an array of fault codes (integers such as 0x80E01801, or hex strings)",
              "error": "an NVML error code (integer, or a name such as NVML_ERROR_DRIVER_NOT_LOADED)"}


def _get(table: Mapping[str, Any], name: str, kind: str, source: str, key: str, default: Any) -> Any:
    if name not in table:
        return default
    value = table[name]
    converted = _convert(value, kind)
    if converted is _BAD:
        raise ConfigError(source, key, f"expected {_KIND_TEXT[kind]}, got {_kind(value)} {value!r}")
    return converted


_BAD = object()


def _convert(value: Any, kind: str) -> Any:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind == "code":
        return _convert_code(value)
    if kind == "int":
        return value if is_int else _BAD
    if kind == "number":
        return float(value) if is_int or isinstance(value, float) else _BAD
    if kind == "str":
        return value if isinstance(value, str) else _BAD
    if kind == "flag":
        if isinstance(value, bool):
            return value
        return bool(value) if is_int and value in (0, 1) else _BAD
    if kind == "error":
        if is_int:
            return value
        if isinstance(value, str):
            name = value.strip().upper()
            name = name if name.startswith("NVML_ERROR_") else "NVML_ERROR_" + name
            code = getattr(pynvml, name, None)
            return code if isinstance(code, int) else _BAD
        return _BAD
    if not isinstance(value, list):
        return _BAD
    items = [_convert(v, {"bool_list": "flag", "int_list": "int", "code_list": "code"}[kind]) for v in value]
    return _BAD if any(v is _BAD for v in items) else items


def _convert_code(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            return _BAD
    return _BAD


def _unknown(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown key; {hint}known keys: {', '.join(known)}"


def _kind(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)
