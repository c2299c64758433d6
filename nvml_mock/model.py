"""Typed model of one mock node: GPU cards, XID events and Ascend NPUs (plain frozen data).

The TOML file (see README.md) is parsed into these by `nvml_mock.config`; the NVML and DCMI
mocks only ever read them. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pynvml

DEFAULT_NODE_NAME = "mock-node"
DEFAULT_DRIVER_VERSION = "550.54.15"
DEFAULT_CUDA_DRIVER_VERSION = 12040
# pynvml has NVML_NVLINK_MAX_LINKS; a card cannot have more links than NVML can address.
MAX_NVLINKS = pynvml.NVML_NVLINK_MAX_LINKS


class ConfigError(Exception):
    """A bad mock config: names the file and the key, says what is wrong and how to fix it."""

    def __init__(self, file: str, key: str, message: str) -> None:
        self.file = file
        self.key = key
        self.message = message
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class GpuModel:
    """Catalog defaults for one GPU product; a card table only needs to say what differs."""

    alias: str
    device_name: str
    arch: int
    memory_total_mib: int
    link_gen: int
    link_width_max: int
    nvlinks: int
    power_mw: int


GPU_MODELS: tuple[GpuModel, ...] = (
    GpuModel("A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB", pynvml.NVML_DEVICE_ARCH_AMPERE, 81920, 4, 16, 12, 65000),
    GpuModel("A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB", pynvml.NVML_DEVICE_ARCH_AMPERE, 40960, 4, 16, 12, 60000),
    GpuModel("H100-SXM5-80GB", "NVIDIA H100 80GB HBM3", pynvml.NVML_DEVICE_ARCH_HOPPER, 81559, 5, 16, 18, 70000),
    GpuModel("H200", "NVIDIA H200", pynvml.NVML_DEVICE_ARCH_HOPPER, 143771, 5, 16, 18, 75000),
    GpuModel("L40S", "NVIDIA L40S", pynvml.NVML_DEVICE_ARCH_ADA, 46068, 4, 16, 0, 35000),
    GpuModel("A10", "NVIDIA A10", pynvml.NVML_DEVICE_ARCH_AMPERE, 23028, 4, 16, 0, 30000),
    GpuModel("T4", "Tesla T4", pynvml.NVML_DEVICE_ARCH_TURING, 15360, 3, 16, 0, 12000),
    GpuModel("V100-SXM2-32GB", "Tesla V100-SXM2-32GB", pynvml.NVML_DEVICE_ARCH_VOLTA, 32768, 3, 16, 6, 45000),
)
DEFAULT_MODEL = GPU_MODELS[0]
MODEL_SHORT_NAMES = {"A100": "A100-SXM4-80GB", "H100": "H100-SXM5-80GB"}

# CUDA compute capability by architecture (what nvmlDeviceGetCudaComputeCapability returns).
COMPUTE_CAPABILITY = {
    pynvml.NVML_DEVICE_ARCH_PASCAL: (6, 0),
    pynvml.NVML_DEVICE_ARCH_VOLTA: (7, 0),
    pynvml.NVML_DEVICE_ARCH_TURING: (7, 5),
    pynvml.NVML_DEVICE_ARCH_AMPERE: (8, 0),
    pynvml.NVML_DEVICE_ARCH_ADA: (8, 9),
    pynvml.NVML_DEVICE_ARCH_HOPPER: (9, 0),
    pynvml.NVML_DEVICE_ARCH_BLACKWELL: (10, 0),
}


def find_model(name: str) -> GpuModel | None:
    """Look a product up by alias ("A100", "H100-SXM5-80GB") or by NVML device name."""
    wanted = MODEL_SHORT_NAMES.get(name.upper(), name).lower()
    for model in GPU_MODELS:
        if wanted in (model.alias.lower(), model.device_name.lower()):
            return model
    return None


@dataclass(frozen=True)
class GpuCard:
    """One simulated GPU; AIBrix ai-accelerator-tool keys plus Brix extensions (README.md)."""

    index: int
    uuid: str
    device_name: str
    arch: int
    pci_bus_id: str  # NVML form "00000000:07:00.0"
    link_gen: int
    link_width_current: int
    link_width_max: int
    nvlink_active: tuple[bool, ...]
    nvlink_peers: tuple[int, ...]  # link i goes to card nvlink_peers[i]
    remapping_failure: bool = False
    remapping_pending: bool = False
    remapped_rows_correctable: int = 0
    remapped_rows_uncorrectable: int = 0
    sram_ue: int = 0
    sram_ce: int = 0
    dram_ue: int = 0
    dram_ce: int = 0
    retired_page_sbe: int = 0
    retired_page_dbe: int = 0
    retired_page_pending: bool = False
    uncorrectable_agg_l1: int = 0
    uncorrectable_agg_l2: int = 0
    uncorrectable_agg_reg: int = 0
    crictl_xid: tuple[int, ...] = ()
    memory_total_mib: int = DEFAULT_MODEL.memory_total_mib
    memory_used_mib: int = 0
    temperature_c: int = 35
    power_mw: int = DEFAULT_MODEL.power_mw
    numa_node: int = 0
    pcie_switch: int = 0
    serial: str = ""

    def faults(self) -> list[str]:
        """Health-relevant faults, as short `key=value` strings (empty list: healthy)."""
        out: list[str] = []
        for name in ("dram_ue", "sram_ue", "dram_ce", "sram_ce", "retired_page_sbe", "retired_page_dbe",
                     "uncorrectable_agg_l1", "uncorrectable_agg_l2", "uncorrectable_agg_reg"):
            value = getattr(self, name)
            if value:
                out.append(f"{name}={value}")
        for name in ("retired_page_pending", "remapping_pending", "remapping_failure"):
            if getattr(self, name):
                out.append(name)
        if self.link_width_current < self.link_width_max:
            out.append(f"link_width={self.link_width_current}/{self.link_width_max}")
        if self.crictl_xid:
            out.append("crictl_xid=" + ",".join(map(str, self.crictl_xid)))
        down = [i for i, up in enumerate(self.nvlink_active) if not up]
        if down:
            out.append("nvlink_down=" + ",".join(map(str, down)))
        return out


@dataclass(frozen=True)
class XidEvent:
    """One injected XID (Brix extension `[[xid_events]]`); seq is unique and only grows."""

    seq: int
    gpu: int
    xid: int
    time: float = 0.0


@dataclass(frozen=True)
class NpuDevice:
    """One Ascend chip (DCMI device `device` on card `card`)."""

    card: int
    device: int
    logic_id: int
    fault_codes: tuple[int, ...] = ()
    health: int | None = None  # explicit dcmi health; None = derived from fault_codes

    @property
    def health_code(self) -> int:
        """dcmi_get_device_health: 0 healthy, 2 (major alarm) when fault codes are present."""
        if self.health is not None:
            return self.health
        return 2 if self.fault_codes else 0


@dataclass(frozen=True)
class AscendConfig:
    card_count: int = 0
    devices_per_card: int = 1
    dcmi_init_error: int = 0
    chip_name: str = "910B"
    devices: tuple[NpuDevice, ...] = ()

    def device(self, card: int, device: int) -> NpuDevice | None:
        for dev in self.devices:
            if dev.card == card and dev.device == device:
                return dev
        return None


@dataclass(frozen=True)
class NodeConfig:
    node_name: str = DEFAULT_NODE_NAME
    nvml_init_error: int = 0
    driver_version: str = DEFAULT_DRIVER_VERSION
    cuda_driver_version: int = DEFAULT_CUDA_DRIVER_VERSION
    xid_seq: int = 0
    gpus: tuple[GpuCard, ...] = ()
    xid_events: tuple[XidEvent, ...] = ()
    ascend: AscendConfig = field(default_factory=AscendConfig)
