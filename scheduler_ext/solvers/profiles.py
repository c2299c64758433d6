"""Loading AIBrix-format GPU profiles and workload files, with errors that name the file and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scheduler_ext.solvers.melange import GpuProfile


class InputError(ValueError):
    """A profile or workload file is unreadable or malformed."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from None


def _matrix(value: Any, where: str) -> list[list[float]]:
    if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
        raise InputError(f"{where}: expected a matrix (list of lists of numbers)")
    try:
        return [[float(v) for v in row] for row in value]
    except (TypeError, ValueError):
        raise InputError(f"{where}: every cell must be a number") from None


def profile_from_doc(doc: Any, where: str) -> tuple[GpuProfile, list[list[int]] | None, str | None]:
    """(profile, indexes, model). The GPU type is `gpu_type` when present, else `gpu`."""
    if not isinstance(doc, dict):
        raise InputError(f"{where}: a profile must be a JSON object with gpu, cost, tputs, indexes")
    name = doc.get("gpu_type") or doc.get("gpu")
    if not isinstance(name, str) or not name:
        raise InputError(f"{where}: field gpu (the GPU type or deployment name) is missing")
    cost = doc.get("cost")
    if not isinstance(cost, (int, float)) or isinstance(cost, bool) or cost < 0:
        raise InputError(f"{where}: field cost must be a non-negative number (cost per replica per hour)")
    tputs = _matrix(doc.get("tputs"), f"{where}: field tputs")
    indexes = doc.get("indexes")
    model = doc.get("model") if isinstance(doc.get("model"), str) else None
    return GpuProfile(name, float(cost), tputs), indexes, model


def load_profile(path: Path) -> tuple[GpuProfile, list[list[int]] | None, str | None]:
    return profile_from_doc(_read_json(path), str(path))


def load_profiles_dir(directory: Path) -> list[tuple[GpuProfile, list[list[int]] | None, str | None]]:
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory of profile *.json files")
    return [load_profile(p) for p in sorted(directory.glob("*.json"))]


def workload_from_doc(doc: Any, where: str) -> tuple[list[list[float]], list[list[int]] | None]:
    if not isinstance(doc, dict):
        raise InputError(f"{where}: a workload must be an object with indexes and distribution")
    return _matrix(doc.get("distribution"), f"{where}: field distribution"), doc.get("indexes")


def load_workload(path: Path) -> tuple[list[list[float]], list[list[int]] | None]:
    return workload_from_doc(_read_json(path), str(path))


def check_grid(profile_indexes: list[list[int]] | None, workload_indexes: list[list[int]] | None,
               where: str) -> None:
    if profile_indexes is not None and workload_indexes is not None and profile_indexes != workload_indexes:
        raise InputError(f"{where}: indexes {workload_indexes} differ from the profiles' {profile_indexes}; "
                         "the workload must use the profiles' output x input bucket grid")
