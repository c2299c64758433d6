"""The Dockerfile's two images and deploy/ agree: each pod runs an image that has its command's
dependencies, as the user the manifests expect, and the node image's import closure needs nothing
beyond the base install of pyproject.toml."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from brix import cli
from tests.foundation.test_deploy_manifests import DEPLOY, ROOT, brix_argv, containers, pod_templates, render

NODE_COMMANDS = {"device-plugin", "diagnose", "nvml-mock"}
# distribution name in pyproject.toml -> the top-level module it installs
IMPORT_NAME = {"grpcio": "grpc", "protobuf": "google", "nvidia-ml-py": "pynvml", "prometheus-client": "prometheus_client",
               "pyyaml": "yaml", "aiohttp": "aiohttp"}
FIRST_PARTY = {"brix", "deviceplugin", "nvml_mock", "engine_mock", "gateway", "scheduler_ext", "controllers"}


def dockerfile_stages() -> dict[str, dict[str, Any]]:
    stages: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] = {}
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if match := re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I):
            current = {"from": match.group(1), "run": [], "user": None, "entrypoint": None}
            stages[match.group(2) or f"stage{len(stages)}"] = current
        elif line.upper().startswith("RUN "):
            current["run"].append(line[4:])
        elif line.upper().startswith("USER "):
            current["user"] = line.split()[1].split(":")[0]
        elif line.upper().startswith("ENTRYPOINT "):
            current["entrypoint"] = line.split(None, 1)[1]
        elif line.upper().startswith("COPY --FROM="):
            current["copy_from"] = line.split()[1].split("=", 1)[1]
    return stages


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


IMAGES = {"brix-node": "node", "brix": "full"}  # image name in deploy/ -> Dockerfile target


def test_the_dockerfile_builds_two_images_from_a_pinned_base() -> None:
    stages = dockerfile_stages()
    base = re.search(r"ARG BASE=(\S+)", (ROOT / "Dockerfile").read_text())
    assert base and re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1)), \
        "pin the base image to a patch release and a Debian release"
    for target in IMAGES.values():
        stage = stages[target]
        assert stage["entrypoint"] == '["brix"]', target
        installs = " ".join(stages[stage["copy_from"]]["run"])
        if target == "node":
            assert "[" not in installs, "the node image installs no extras"
        else:
            assert "[all]" in installs, "the full image installs brix[all]"
    assert stages["node"]["user"] == "0" and stages["full"]["user"] not in (None, "0", "root")


def test_every_pod_runs_an_image_that_has_its_command_as_the_user_it_expects() -> None:
    version = pyproject()["project"]["version"]
    stages = dockerfile_stages()
    checked = 0
    for name, template in pod_templates():
        spec = template["spec"]
        pod_sc = spec.get("securityContext") or {}
        for c in containers(spec):
            image, _, tag = c["image"].rpartition(":")
            if image not in IMAGES:
                continue
            checked += 1
            where = f"{name} container {c['name']} ({c['image']})"
            assert tag == version, f"{where}: tag it {version}, the version in pyproject.toml"
            sc = c.get("securityContext") or {}
            user = sc.get("runAsUser", pod_sc.get("runAsUser", int(stages[IMAGES[image]]["user"])))
            argv = brix_argv(c)
            command = argv[0] if argv else None
            if command in ("device-plugin", "nvml-mock") or (command is None and image == "brix-node"):
                assert image == "brix-node", f"{where}: GPU-node commands run from the brix-node image"
                assert user == 0, f"{where}: the device plugin runs as root (kubelet's folder is root's)"
            else:
                assert command not in NODE_COMMANDS or image == "brix-node", where
                assert image == "brix" or command in NODE_COMMANDS, f"{where}: brix-node lacks brix {command}"
                assert user != 0, f"{where}: only the device plugin runs as root"
            if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
                assert isinstance(user, int) and user != 0, f"{where}: runAsNonRoot needs a numeric non-root user"
    assert checked >= 5


def test_the_device_plugin_mounts_the_folder_it_is_told_to_use() -> None:
    for obj in render(DEPLOY / "deviceplugin") + render(DEPLOY / "deviceplugin" / "mock"):
        if obj["kind"] != "DaemonSet":
            continue
        spec = obj["spec"]["template"]["spec"]
        plugin = next(c for c in spec["containers"] if (brix_argv(c) or [""])[0] == "device-plugin")
        kubelet_dir = next(a.split("=", 1)[1] for a in plugin["args"] if a.startswith("--kubelet-dir="))
        mounts = {m["mountPath"]: m["name"] for m in plugin["volumeMounts"]}
        volume = next(v for v in spec["volumes"] if v["name"] == mounts[kubelet_dir])
        assert volume["hostPath"]["path"] == "/var/lib/kubelet/device-plugins"


def _module_path(module: str) -> Path | None:
    base = ROOT / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)  # `from pkg import module`
        elif isinstance(node, ast.If) and top_level_only:  # `if TYPE_CHECKING:` blocks are not run
            continue
    return found


def node_image_third_party_imports() -> dict[str, set[str]]:
    """Third-party top-level modules reachable from what the node image runs: `brix` startup
    (module-level imports of brix.cli and every component CLI) and, at any depth, the device
    plugin, diagnose and the NVML mock."""
    third: dict[str, set[str]] = {}
    seen: set[tuple[str, bool]] = set()
    todo = [("brix.cli", True)] + [(m, True) for m in cli.COMPONENT_CLIS] + [(str(p.relative_to(ROOT).with_suffix("")).replace(os.sep, "."), False)
                                    for pkg in ("deviceplugin", "nvml_mock") for p in (ROOT / pkg).rglob("*.py")]
    while todo:
        module, top_only = todo.pop()
        if (module, top_only) in seen:
            continue
        seen.add((module, top_only))
        path = _module_path(module)
        if path is None:
            continue
        deep = not top_only or module.split(".")[0] in ("deviceplugin", "nvml_mock")
        for name in _imports(path, module, top_level_only=not deep):
            root = name.split(".")[0]
            if root in FIRST_PARTY:
                todo.append((name.removesuffix(".__init__"), not deep))
            elif root and root not in sys.stdlib_module_names and root != "__future__":
                third.setdefault(root, set()).add(module)
    return third


def test_the_node_image_needs_only_the_base_install() -> None:
    base = {re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower() for d in pyproject()["project"]["dependencies"]}
    allowed = {IMPORT_NAME.get(d, d.replace("-", "_")) for d in base}
    missing = {mod: sorted(users) for mod, users in node_image_third_party_imports().items() if mod not in allowed}
    assert not missing, f"the node image (base install) would lack: {missing}"


def test_extras_hold_what_each_component_imports() -> None:
    extras = pyproject()["project"]["optional-dependencies"]
    assert "kopf" not in " ".join(pyproject()["project"]["dependencies"]), "kopf only in the controllers extra"
    assert any(d.startswith("kopf") for d in extras["controllers"])
    assert any(d.startswith("ortools") for d in extras["scheduler"])
    assert {d.split(">")[0].split("=")[0] for d in extras["gateway"]} >= {"kubernetes", "httptools", "redis"}
    assert set(extras["all"][0].split("[")[1].rstrip("]").split(",")) >= {"scheduler", "engine", "gateway",
                                                                          "controllers"}


def test_a_command_whose_extra_is_missing_says_which_extra_to_install() -> None:
    # sys.modules[name] = None is how Python itself marks a package as not importable
    code = "import sys; sys.modules['ortools'] = None; from brix.cli import main; sys.exit(main(sys.argv[1:]))"
    state = ROOT / "scheduler_ext" / "examples" / "lora-state.yaml"
    if not state.is_file():
        pytest.skip(f"{state} is absent")
    result = subprocess.run([sys.executable, "-c", code, "lora-plan", "--state", str(state)], capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert "pip install 'brix[scheduler]'" in result.stderr
