"""GPU facts of a node, from its allocatable resources and NVIDIA GPU Feature Discovery labels.

Allocatable (not capacity) is what counts: the device plugin lowers it when a GPU turns
unhealthy. GFD labels give the product name (`nvidia.com/gpu.product`), the memory per GPU in MiB
(`nvidia.com/gpu.memory`) and the count (`nvidia.com/gpu.count`, informational only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from scheduler_ext.model import parse_quantity

LABEL_PRODUCT = "nvidia.com/gpu.product"
LABEL_MEMORY = "nvidia.com/gpu.memory"
LABEL_COUNT = "nvidia.com/gpu.count"
LABEL_GPU_TYPE = "model.brix.dev/gpu-type"  # an explicit override, for hardware without GFD

_TOKEN = re.compile(r"[-_ /.]+")


def type_names(*names: str) -> frozenset[str]:
    """Every lowercase name a GPU type answers to: the full name and its dash-separated tokens.

    `NVIDIA-A100-SXM4-80GB` answers to `nvidia-a100-sxm4-80gb`, `a100`, `sxm4`, `80gb`, ...; a
    resource `huawei.com/Ascend910` answers to `ascend910`. Matching a wanted type (`A100`) is a
    set lookup.
    """
    out: set[str] = set()
    for name in names:
        if not name:
            continue
        low = name.lower()
        out.add(low)
        out.update(t for t in _TOKEN.split(low) if t)
    return frozenset(out)


def matches(wanted: str, names: frozenset[str]) -> bool:
    """Whether a GPU type name (`A100`, `simulator-llama2-7b-a100`) refers to a node's type."""
    low = wanted.lower()
    if low in names:
        return True
    return any(t in names for t in _TOKEN.split(low) if t and any(c.isdigit() for c in t) and len(t) >= 3)


@dataclass(frozen=True)
class NodeGpus:
    """Static GPU facts of one node."""

    name: str
    allocatable: dict[str, int]  # managed resource -> allocatable count (healthy devices)
    capacity: dict[str, int]
    gpu_type: str  # product label, override label, or the resource name's suffix
    memory_mib: int | None
    names: frozenset[str]

    @property
    def unhealthy(self) -> int:
        return sum(max(0, self.capacity.get(r, 0) - n) for r, n in self.allocatable.items())


def node_gpus(node: dict[str, Any], resources: frozenset[str]) -> NodeGpus:
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    labels = meta.get("labels") or {}
    alloc_raw = status.get("allocatable") or {}
    cap_raw = status.get("capacity") or {}
    allocatable: dict[str, int] = {}
    capacity: dict[str, int] = {}
    for res in resources:
        if res in alloc_raw:
            try:
                allocatable[res] = parse_quantity(alloc_raw[res])
            except ValueError:
                allocatable[res] = 0
        if res in cap_raw:
            try:
                capacity[res] = parse_quantity(cap_raw[res])
            except ValueError:
                capacity[res] = 0
    for res, n in allocatable.items():
        capacity.setdefault(res, n)
    product = str(labels.get(LABEL_GPU_TYPE) or labels.get(LABEL_PRODUCT) or "")
    if not product and allocatable:
        product = sorted(allocatable)[0].rpartition("/")[2]
    try:
        memory = int(labels[LABEL_MEMORY]) if LABEL_MEMORY in labels else None
    except ValueError:
        memory = None
    names = type_names(product, *(r.rpartition("/")[2] for r in allocatable))
    return NodeGpus(str(meta.get("name")), allocatable, capacity, product, memory, names)
