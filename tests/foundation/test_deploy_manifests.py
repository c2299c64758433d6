"""The manifests in deploy/ parse, and every `brix` command line in them is one the CLI accepts
(so a renamed flag cannot leave a DaemonSet that crash-loops)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from brix import cli

ROOT = Path(__file__).resolve().parent.parent.parent
MANIFESTS = sorted((ROOT / "deploy").rglob("*.yaml"))


def _containers(doc: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                found.extend(c for c in value if isinstance(c, dict))
            else:
                found.extend(_containers(value))
    elif isinstance(doc, list):
        for item in doc:
            found.extend(_containers(item))
    return found


def _brix_argv(container: dict[str, Any]) -> list[str] | None:
    image = str(container.get("image", ""))
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    if argv[:1] == ["brix"]:
        return argv[1:]
    if image.split("/")[-1].startswith("brix:") and not container.get("command"):
        return argv  # the image's entrypoint is `brix`
    return None


def test_there_are_manifests() -> None:
    assert MANIFESTS, "deploy/ holds no YAML"


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_manifest_parses_and_brix_commands_are_valid(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} is empty"
    parser, _ = cli.build_parser()
    for doc in docs:
        assert isinstance(doc, dict) and ("kind" in doc or "resources" in doc), f"{path}: not a Kubernetes object"
        for container in _containers(doc):
            argv = _brix_argv(container)
            if argv is None:
                continue
            assert argv, f"{path}: container {container.get('name')} runs bare `brix`"
            args, unknown = parser.parse_known_args(argv)
            assert not unknown, f"{path}: container {container.get('name')}: unknown flags {unknown}"
            assert getattr(args, "_command", None), f"{path}: {argv} names no brix subcommand"
