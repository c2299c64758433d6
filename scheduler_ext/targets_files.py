"""The files read at start into the GPU-mix targets: the `--profiles` folder of AIBrix-format
profiles and the `--workloads` file, each workload solved (Mélange) into its model's targets.
A file that cannot be used raises InputError, which `brix scheduler-ext` reports as a usage error.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from brix.files import FileError, read_yaml
from brix.logs import kv
from scheduler_ext.solvers import melange
from scheduler_ext.solvers.profiles import InputError, profile_from_doc
from scheduler_ext.targets import ProfileEntry, TargetStore

log = logging.getLogger(__name__)


def load_profiles(profiles_dir: Path | None) -> list[ProfileEntry]:
    if profiles_dir is None:
        return []
    if not profiles_dir.is_dir():
        raise InputError(f"--profiles {profiles_dir}: not a directory of AIBrix profile *.json files")
    out = []
    for path in sorted(profiles_dir.glob("*.json")):
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read the profile: {exc}") from None
        profile, indexes, model = profile_from_doc(raw, str(path))
        slos = raw.get("slos") if isinstance(raw.get("slos"), dict) else {}
        out.append(ProfileEntry(profile, indexes, model, slos))
    return out


def solve_workloads(targets: TargetStore, workloads_file: Path) -> None:
    try:
        docs = read_yaml(workloads_file, "--workloads") or []
    except FileError as exc:
        raise InputError(str(exc)) from None
    if not isinstance(docs, list):
        raise InputError(f"{workloads_file}: expected a list of workloads")
    for i, doc in enumerate(docs):
        where = f"{workloads_file}: item {i}"
        if not isinstance(doc, dict) or not isinstance(doc.get("model"), str):
            raise InputError(f"{where}: needs model (and namespace, rps, distribution)")
        ns, model = str(doc.get("namespace", "default")), doc["model"]
        problem = targets.problem_from_workload(model, doc)
        solution = melange.solve(problem)
        if not solution.feasible:
            raise InputError(f"{where}: {solution.reason}")
        target = targets.set_from_solution(ns, model, problem, solution)
        kv(log, "gpu mix targets", model=f"{ns}/{model}", replicas=target.replicas, cost=round(target.cost, 4))
