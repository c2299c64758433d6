"""Allocate responses, one small builder per response feature (pure; no gRPC types).

The servicer validates the request first (devices.validate_request), then calls `build` which
applies, in order, every builder the settings switch on. Each builder adds to one
`ContainerResponse`; server.py turns it into the proto message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from deviceplugin.devices import Device

NVIDIA_VISIBLE_DEVICES = "NVIDIA_VISIBLE_DEVICES"
ASCEND_VISIBLE_DEVICES = "ASCEND_VISIBLE_DEVICES"
VOLUME_MOUNT_ROOT = "/var/run/nvidia-container-devices"
CDI_ANNOTATION_KEY = "cdi.k8s.io/brix-device-plugin"
NVIDIA_CONTROL_DEVICES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")
ASCEND_CONTROL_DEVICES = ("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc")
DEVICE_LIST_STRATEGIES = ("envvar", "volume-mounts", "cdi-annotations", "cdi-cri")


@dataclass(frozen=True)
class AllocateOptions:
    backend: str = "nvml"
    """"nvml" or "ascend"."""
    device_list_strategies: tuple[str, ...] = ("envvar",)
    pass_device_specs: bool = False
    cdi_kind: str = "nvidia.com/gpu"
    dev_root: str = "/dev"
    """Host folder holding the device nodes (a mock node points this at a temp dir)."""


@dataclass
class Mount:
    container_path: str
    host_path: str
    read_only: bool = True


@dataclass
class DeviceSpec:
    container_path: str
    host_path: str
    permissions: str = "rw"


@dataclass
class ContainerResponse:
    envs: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    devices: list[DeviceSpec] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    cdi_devices: list[str] = field(default_factory=list)


Builder = Callable[[ContainerResponse, list[Device], AllocateOptions], None]


def for_envvar(resp: ContainerResponse, devices: list[Device], opts: AllocateOptions) -> None:
    if opts.backend == "ascend":
        resp.envs[ASCEND_VISIBLE_DEVICES] = ",".join(str(d.index) for d in devices)
    else:
        resp.envs[NVIDIA_VISIBLE_DEVICES] = ",".join(d.id for d in devices)


def for_volume_mounts(resp: ContainerResponse, devices: list[Device], opts: AllocateOptions) -> None:
    """NVIDIA's volume-mounts strategy: the device list is read from mounted /dev/null files."""
    resp.envs[NVIDIA_VISIBLE_DEVICES] = VOLUME_MOUNT_ROOT
    for d in devices:
        resp.mounts.append(Mount(f"{VOLUME_MOUNT_ROOT}/{d.id}", "/dev/null", True))


def for_cdi_annotations(resp: ContainerResponse, devices: list[Device], opts: AllocateOptions) -> None:
    resp.annotations[CDI_ANNOTATION_KEY] = ",".join(cdi_name(opts, d) for d in devices)


def for_cdi_cri(resp: ContainerResponse, devices: list[Device], opts: AllocateOptions) -> None:
    resp.cdi_devices.extend(cdi_name(opts, d) for d in devices)


def for_device_specs(resp: ContainerResponse, devices: list[Device], opts: AllocateOptions) -> None:
    root = opts.dev_root.rstrip("/")
    control: tuple[str, ...]
    if opts.backend == "ascend":
        control, prefix = ASCEND_CONTROL_DEVICES, "davinci"
    else:
        control, prefix = NVIDIA_CONTROL_DEVICES, "nvidia"
    for path in control:
        resp.devices.append(DeviceSpec(path, root + path.removeprefix("/dev"), "rw"))
    for d in devices:
        minor = d.minor if d.minor is not None else d.index
        resp.devices.append(DeviceSpec(f"/dev/{prefix}{minor}", f"{root}/{prefix}{minor}", "rw"))


def cdi_name(opts: AllocateOptions, device: Device) -> str:
    return f"{opts.cdi_kind}={device.id}"


STRATEGY_BUILDERS: dict[str, Builder] = {
    "envvar": for_envvar,
    "volume-mounts": for_volume_mounts,
    "cdi-annotations": for_cdi_annotations,
    "cdi-cri": for_cdi_cri,
}


def build(devices: list[Device], opts: AllocateOptions) -> ContainerResponse:
    resp = ContainerResponse()
    for strategy in opts.device_list_strategies:
        STRATEGY_BUILDERS[strategy](resp, devices, opts)
    if opts.pass_device_specs:
        for_device_specs(resp, devices, opts)
    return resp
