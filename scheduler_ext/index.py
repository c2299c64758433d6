"""Column store of per-node GPU facts for the hot path: numpy arrays indexed by node slot.

The NodeCache keeps it in step with its NodeStates (every node upsert and every pod accounted
updates one slot), so a filter or prioritize call for N names is a few vectorised numpy
operations plus joins of precomputed JSON fragments. Also remembers recent NodeNames lists:
kube-scheduler sends the same list over and over, so its slot array is computed once.
"""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np

from scheduler_ext.gpu import NodeGpus, matches
from scheduler_ext.model import MAX_PRIORITY

SCORES = MAX_PRIORITY + 1


class NodeIndex:
    def __init__(self, resources: frozenset[str], capacity: int = 1024) -> None:
        self.resources = sorted(resources)
        self.res_id = {r: i for i, r in enumerate(self.resources)}
        self.slot: dict[str, int] = {}
        self.free_slots: list[int] = []
        self.version = 0
        self.size = 0
        self._alloc(capacity)
        self.types: list[str] = []
        self.type_names: list[frozenset[str]] = []
        self.type_id: dict[tuple[str, frozenset[str]], int] = {}
        self.name_lists: OrderedDict[bytes, tuple[int, list[str], np.ndarray]] = OrderedDict()

    def _alloc(self, capacity: int) -> None:
        r = len(self.resources)
        self.capacity = capacity
        self.alloc = np.zeros((r, capacity), dtype=np.int64)
        self.has = np.zeros((r, capacity), dtype=bool)
        self.used = np.zeros((r, capacity), dtype=np.int64)
        self.unhealthy = np.zeros(capacity, dtype=np.int64)
        self.types_of = np.zeros(capacity, dtype=np.int64)
        self.quoted = np.empty(capacity, dtype=object)  # '"name"'
        self.entries = np.empty((capacity, SCORES), dtype=object)  # '{"Host":"name","Score":s}'

    def _grow(self) -> None:
        old = (self.alloc, self.has, self.used, self.unhealthy, self.types_of, self.quoted, self.entries)
        n = self.capacity
        self._alloc(n * 2)
        self.alloc[:, :n], self.has[:, :n], self.used[:, :n] = old[0], old[1], old[2]
        self.unhealthy[:n], self.types_of[:n], self.quoted[:n], self.entries[:n] = old[3], old[4], old[5], old[6]

    def _type(self, gpus: NodeGpus) -> int:
        key = (gpus.gpu_type, gpus.names)
        tid = self.type_id.get(key)
        if tid is None:
            tid = len(self.types)
            self.types.append(gpus.gpu_type)
            self.type_names.append(gpus.names)
            self.type_id[key] = tid
        return tid

    # ------------------------------------------------------------------ updates
    def upsert(self, gpus: NodeGpus, used: dict[str, int]) -> None:
        i = self.slot.get(gpus.name)
        if i is None:
            if self.free_slots:
                i = self.free_slots.pop()
            else:
                if self.size == self.capacity:
                    self._grow()
                i = self.size
                self.size += 1
            self.slot[gpus.name] = i
            quoted = json.dumps(gpus.name)
            self.quoted[i] = quoted
            for s in range(SCORES):
                self.entries[i, s] = '{"Host":' + quoted + ',"Score":' + str(s) + "}"
            self.version += 1
        for r, k in self.res_id.items():
            self.has[k, i] = r in gpus.allocatable
            self.alloc[k, i] = gpus.allocatable.get(r, 0)
            self.used[k, i] = used.get(r, 0)
        self.unhealthy[i] = gpus.unhealthy
        self.types_of[i] = self._type(gpus)

    def set_used(self, name: str, resource: str, value: int) -> None:
        i = self.slot.get(name)
        k = self.res_id.get(resource)
        if i is not None and k is not None:
            self.used[k, i] = value

    def delete(self, name: str) -> None:
        i = self.slot.pop(name, None)
        if i is None:
            return
        self.has[:, i] = False
        self.alloc[:, i] = 0
        self.used[:, i] = 0
        self.free_slots.append(i)
        self.version += 1

    # ------------------------------------------------------------------ lookups
    def slots_for(self, key: bytes | None, names: list[str] | None) -> tuple[list[str], np.ndarray] | None:
        """(names, slots) for a NodeNames list; slot -1 for a name not in the cache.

        `key` is the raw bytes of the NodeNames array; a list seen before is not parsed again.
        """
        if key is not None:
            hit = self.name_lists.get(key)
            if hit is not None:
                version, cached_names, slots = hit
                if version != self.version:
                    slots = self._slots(cached_names)
                    self.name_lists[key] = (self.version, cached_names, slots)
                self.name_lists.move_to_end(key)
                return cached_names, slots
        if names is None:
            return None
        slots = self._slots(names)
        if key is not None:
            self.name_lists[key] = (self.version, names, slots)
            while len(self.name_lists) > 8:
                self.name_lists.popitem(last=False)
        return names, slots

    def _slots(self, names: list[str]) -> np.ndarray:
        get = self.slot.get
        return np.fromiter((get(n, -1) for n in names), dtype=np.int64, count=len(names))

    def type_mask(self, allowed: frozenset[str] | None) -> np.ndarray:
        """Per type id: allowed by the pod's scheduling.brix.dev/gpu-types."""
        if allowed is None:
            return np.ones(len(self.types) or 1, dtype=bool)
        return np.array([any(matches(t, names) for t in allowed) for names in self.type_names] or [False],
                        dtype=bool)
