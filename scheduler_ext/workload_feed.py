"""The gateways' live workload, read for the GPU-mix optimizer (pure).

`parse_gateway_workload` reads one gateway's `GET /v1/workload` body; `sum_workloads` adds the
replicas of a gateway; `on_grid` maps a model's (prompt bucket, completion bucket) rates onto a
profile grid (`indexes` = [[output ticks], [input ticks]]) as the solver's distribution and total.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from brix.token_buckets import grid_index
from scheduler_ext.solvers.profiles import InputError

Cells = dict[tuple[int, int], float]  # (prompt tokens, completion tokens) -> requests/s


def parse_gateway_workload(doc: Any, where: str) -> dict[str, Cells]:
    """model -> cells from `{"models": {m: {"cells": [{"prompt_tokens", "completion_tokens", "rps"}]}}}`."""
    if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict):
        raise InputError(f"{where}: expected a JSON object with models (the gateway's GET /v1/workload)")
    out: dict[str, Cells] = {}
    for model, body in doc["models"].items():
        cells = body.get("cells") if isinstance(body, dict) else None
        if not isinstance(cells, list):
            raise InputError(f"{where}: models.{model}.cells must be a list")
        got: Cells = {}
        for k, cell in enumerate(cells):
            try:
                key = (int(cell["prompt_tokens"]), int(cell["completion_tokens"]))
                rps = float(cell["rps"])
            except (TypeError, KeyError, ValueError):
                raise InputError(f"{where}: models.{model}.cells[{k}] needs numeric prompt_tokens, "
                                 "completion_tokens and rps") from None
            if rps < 0:
                raise InputError(f"{where}: models.{model}.cells[{k}].rps is negative")
            got[key] = got.get(key, 0.0) + rps
        out[str(model)] = got
    return out


def sum_workloads(parts: Iterable[Mapping[str, Cells]]) -> dict[str, Cells]:
    """Several gateway replicas each see a share of the requests: their rates add up."""
    total: dict[str, Cells] = {}
    for part in parts:
        for model, cells in part.items():
            mine = total.setdefault(model, {})
            for key, rps in cells.items():
                mine[key] = mine.get(key, 0.0) + rps
    return total


def on_grid(cells: Mapping[tuple[int, int], float], indexes: list[list[int]]) -> tuple[list[list[float]], float]:
    """(rates[output bucket][input bucket], total requests/s) on the profile grid."""
    outputs, inputs = indexes
    grid = [[0.0] * len(inputs) for _ in outputs]
    for (prompt, completion), rps in cells.items():
        grid[grid_index(completion, outputs)][grid_index(prompt, inputs)] += rps
    return grid, sum(map(sum, grid))
