"""Components stay independent of each other (DESIGN.md: one package per component).

Allowed: every component may use the shared helpers in `brix`; `deviceplugin` may use
`nvml_mock` (the mock is its NVML back-end). Only `brix` (the CLI and `brix up`) wires the
components together. This is import-linter's `independence` contract, checked with `ast`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
COMPONENTS = ("scheduler_ext", "deviceplugin", "nvml_mock", "engine_mock", "gateway")
ALLOWED = {"deviceplugin": {"nvml_mock"}}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("component", COMPONENTS)
def test_component_imports_no_other_component(component: str) -> None:
    offenders = {}
    for path in sorted((ROOT / component).rglob("*.py")):
        bad = (imported_packages(path) & set(COMPONENTS)) - {component} - ALLOWED.get(component, set())
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, f"{component} imports other components: {offenders}"


def test_shared_helpers_import_no_component() -> None:
    for name in ("cli", "commands", "files", "logs", "procs", "tokenizer", "prefix"):
        assert not imported_packages(ROOT / "brix" / f"{name}.py") & set(COMPONENTS), name
