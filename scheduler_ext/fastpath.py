"""Vectorised filter and prioritize for the common call: NodeNames and a pod asking for one
managed resource. Same answers as filter.py / prioritize.py (tests compare them), computed over
the NodeIndex arrays and written straight to JSON from precomputed fragments; the reasons are
filter.py's (one function each). `slice_args` reads kube-scheduler's compact request without
parsing its NodeNames list again. Pure: no I/O."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from scheduler_ext.filter import (
    REASON_NOT_CACHED,
    reason_no_resource,
    reason_short,
    reason_too_few_total,
    reason_wrong_type,
)
from scheduler_ext.gpu import matches
from scheduler_ext.index import NodeIndex
from scheduler_ext.model import MAX_PRIORITY, parse_pod
from scheduler_ext.prioritize import CostView


def slice_args(body: bytes, index: NodeIndex) -> tuple[dict[str, Any], list[str], np.ndarray] | None:
    """(pod, names, slots) for a NodeNames request in Go's compact encoding, with the NodeNames
    list (always the last field) looked up by its raw bytes instead of parsed again; the Pod is
    validated here (model.parse_pod, WireError). None when the body does not have that shape: the
    caller then parses it the general way (model.parse_extender_args)."""
    k = body.rfind(b',"NodeNames":[')
    if k <= 0 or not body.endswith(b"]}"):
        return None
    key = body[k + 13:-1]
    try:
        head = json.loads(body[:k] + b"}")
    except ValueError:
        return None
    if not isinstance(head, dict):
        return None
    found = index.slots_for(key, None)
    if found is None:
        try:
            names = json.loads(key)
        except ValueError:
            return None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return None
        found = index.slots_for(key, names)
        assert found is not None
    return parse_pod(head), found[0], found[1]


def _columns(index: NodeIndex, slots: npt.NDArray[Any], resource: str
             ) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]:
    known = slots >= 0
    s = np.where(known, slots, 0)
    k = index.res_id[resource]
    has = index.has[k, s] & known
    alloc = index.alloc[k, s]
    free = alloc - index.used[k, s]
    return known, s, has, alloc, free


def _fragments(keys: npt.NDArray[Any], rows: npt.NDArray[Any], quoted: npt.NDArray[Any],
               reason_of: Callable[[tuple[int, ...]], str]) -> list[str]:
    """'"name":"reason"' per node, formatting each distinct reason once. `keys` is one int64 per
    node that is equal exactly when the reasons are; `rows` holds the values the reason is made of."""
    if len(keys) == 0:
        return []
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    texts = np.array([":" + json.dumps(reason_of(tuple(int(v) for v in rows[i]))) for i in first], dtype=object)
    fragments: list[str] = (quoted + texts[inverse.reshape(-1)]).tolist()
    return fragments


def filter_json(index: NodeIndex, names: list[str], slots: np.ndarray, resource: str, need: int,
                allowed: frozenset[str] | None, keep: int = 0, values: np.ndarray | None = None) -> bytes:
    """keep > 0 with `values` (scores(), per node): only the `keep` best fitting nodes pass
    (filter.best_of's rule)."""
    known, s, has, alloc, free = _columns(index, slots, resource)
    type_ok = index.type_mask(allowed)[index.types_of[s]]
    never = known & (~has | (alloc < need) | ~type_ok)
    ok = known & ~never & (free >= need)
    short = known & ~never & ~ok
    fitting = np.flatnonzero(ok)
    if keep > 0 and values is not None and len(fitting) > keep:
        fitting = fitting[np.argsort(-values[fitting], kind="stable")[:keep]]
    passing = index.quoted[s[fitting]].tolist()

    def short_reason(row: tuple[int, ...]) -> str:
        return reason_short(need, resource, row[0])

    short_free = free[short]
    failed = _fragments(short_free, short_free.reshape(-1, 1), index.quoted[s[short]], short_reason)
    failed += [json.dumps(names[i]) + ":" + json.dumps(REASON_NOT_CACHED) for i in np.flatnonzero(~known)]

    def never_reason(row: tuple[int, ...]) -> str:
        h, total, unhealthy, tid, _type_ok = row
        if not h:
            return reason_no_resource(resource)
        if total < need:
            return reason_too_few_total(need, resource, total, unhealthy)
        return reason_wrong_type(index.types[tid], allowed)

    ns = s[never]
    rows = np.stack([has[never].astype(np.int64), alloc[never], index.unhealthy[ns], index.types_of[ns],
                     type_ok[never].astype(np.int64)], axis=1)
    # one integer per distinct reason: a type's name only matters when the type is excluded
    type_key = np.where(rows[:, 4] == 1, -1, rows[:, 3])
    keys = (((rows[:, 0] * 2 + rows[:, 4]) * 2**16 + (type_key + 1)) * 2**24 + np.clip(rows[:, 1], 0, 2**24 - 1)) \
        * 2**12 + np.clip(rows[:, 2], 0, 2**12 - 1)
    unresolvable = _fragments(keys, rows, index.quoted[ns], never_reason)
    return ('{"Nodes":null,"NodeNames":[' + ",".join(passing) + '],"FailedNodes":{' + ",".join(failed)
            + '},"FailedAndUnresolvableNodes":{' + ",".join(unresolvable) + '},"Error":""}').encode()


def scores(index: NodeIndex, slots: np.ndarray, resource: str, need: int, policy: str,
           cost: CostView | None) -> np.ndarray:
    known, s, has, alloc, free = _columns(index, slots, resource)
    fits = known & has & (alloc > 0) & (free >= need)
    if policy == "cost" and cost is not None and cost.efficiency:
        best = max(cost.efficiency.values()) or 1.0
        table = np.zeros(len(index.types) or 1, dtype=np.int64)
        for tid, names in enumerate(index.type_names):
            for ptype, eff in cost.efficiency.items():
                if matches(ptype, names):
                    rel = eff / best
                    table[tid] = 5 + round(5 * rel) if cost.deficit.get(ptype, 0) > 0 else round(4 * rel)
                    break
        return np.where(fits, table[index.types_of[s]], 0)
    total = np.where(alloc > 0, alloc, 1)
    if policy == "spread":
        raw = (MAX_PRIORITY * (free - need) + total // 2) // total
    else:
        raw = (MAX_PRIORITY * (alloc - free + need) + total // 2) // total
    return np.where(fits, np.clip(raw, 0, MAX_PRIORITY), 0)


def scores_json(index: NodeIndex, names: list[str], slots: np.ndarray, values: np.ndarray) -> bytes:
    if len(slots) and slots.min() >= 0:
        return ("[" + ",".join(index.entries[slots, values].tolist()) + "]").encode()
    parts = [index.entries[s, v] if s >= 0 else '{"Host":' + json.dumps(n) + ',"Score":' + str(int(v)) + "}"
             for n, s, v in zip(names, slots.tolist(), values.tolist(), strict=True)]
    return ("[" + ",".join(parts) + "]").encode()
