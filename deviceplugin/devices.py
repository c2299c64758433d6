"""Devices the plugin advertises, and set operations over their ids (no I/O).

A `Device` is what the back-end discovered (NVML GPU or Ascend NPU) plus its current health,
the one place the plugin keeps it (`health_state`, folded by healthpolicy.observe).
`DeviceSet` is an id-keyed, ordered collection so that request validation and allocation read
like set algebra: `devices.unknown(ids)`, `devices.subset(ids)`, `devices.healthy_ids()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from deviceplugin.healthpolicy import DeviceHealth

HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"


@dataclass(frozen=True)
class Device:
    """One schedulable device as kubelet sees it."""

    id: str
    """The id on the wire: the GPU UUID (default), the index, or `Ascend910-N`."""
    index: int
    """Position in the back-end's enumeration (NVML index, Ascend logical id)."""
    uuid: str = ""
    name: str = ""
    """Model name, for example "NVIDIA A100-SXM4-80GB"."""
    pci_bus_id: str = ""
    minor: int | None = None
    """Device node number: /dev/nvidia<minor> or /dev/davinci<minor>."""
    numa_node: int | None = None
    health_state: DeviceHealth = DeviceHealth()

    @property
    def healthy(self) -> bool:
        return self.health_state.healthy

    @property
    def reason(self) -> str:
        """Why the device is unhealthy (or how it recovered); empty while it has always been healthy."""
        return self.health_state.reason

    @property
    def health(self) -> str:
        """As kubelet's API spells it."""
        return HEALTHY if self.health_state.healthy else UNHEALTHY


@dataclass(frozen=True)
class DeviceSet:
    """Devices keyed by id, in discovery order."""

    by_id: Mapping[str, Device] = field(default_factory=dict)

    @classmethod
    def of(cls, devices: Iterable[Device]) -> DeviceSet:
        ordered: dict[str, Device] = {}
        for device in devices:
            if device.id in ordered:
                raise ValueError(f"duplicate device id {device.id!r}")
            ordered[device.id] = device
        return cls(ordered)

    def __iter__(self) -> Iterator[Device]:
        return iter(self.by_id.values())

    def __len__(self) -> int:
        return len(self.by_id)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self.by_id

    def get(self, device_id: str) -> Device | None:
        return self.by_id.get(device_id)

    def ids(self) -> list[str]:
        return list(self.by_id)

    def healthy_ids(self) -> list[str]:
        return [d.id for d in self if d.healthy]

    def unknown(self, ids: Iterable[str]) -> list[str]:
        return [i for i in ids if i not in self.by_id]

    def unhealthy(self, ids: Iterable[str]) -> list[str]:
        return [i for i in ids if i in self.by_id and not self.by_id[i].healthy]

    def subset(self, ids: Iterable[str]) -> list[Device]:
        return [self.by_id[i] for i in ids if i in self.by_id]

    def difference(self, ids: Iterable[str]) -> list[Device]:
        excluded = set(ids)
        return [d for d in self if d.id not in excluded]

    def with_health(self, device_id: str, healthy: bool, reason: str) -> DeviceSet:
        """A copy with one device's health changed (unknown ids raise KeyError)."""
        device = self.by_id[device_id]
        return self.with_health_state(device_id, replace(device.health_state, healthy=healthy, reason=reason))

    def with_health_state(self, device_id: str, health: DeviceHealth) -> DeviceSet:
        updated = dict(self.by_id)
        updated[device_id] = replace(self.by_id[device_id], health_state=health)
        return DeviceSet(updated)


class InvalidRequest(ValueError):
    """An Allocate/PreStart request names devices the plugin cannot give out."""


def validate_request(devices: DeviceSet, ids: Iterable[str], resource: str) -> None:
    """Raise InvalidRequest naming every unknown or unhealthy id (kubelet shows it on the pod)."""
    ids = list(ids)
    if not ids:
        raise InvalidRequest(f"empty device list in request for {resource}")
    unknown = devices.unknown(ids)
    if unknown:
        raise InvalidRequest(
            f"unknown device id(s) {', '.join(unknown)} for {resource}; this plugin serves {', '.join(devices.ids())}"
        )
    unhealthy = devices.unhealthy(ids)
    if unhealthy:
        reasons = "; ".join(f"{i}: {devices.by_id[i].reason or 'unhealthy'}" for i in unhealthy)
        raise InvalidRequest(f"unhealthy device id(s) {', '.join(unhealthy)} for {resource} ({reasons})")
    if len(set(ids)) != len(ids):
        raise InvalidRequest(f"device id(s) repeated in request for {resource}: {', '.join(ids)}")
