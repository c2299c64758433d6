"""RBAC in deploy/ is what the code calls, no more and no less: each component runs against an
API server with its own bearer token, every request it makes is recorded, and the requests are
compared with the rules of the Role / ClusterRole that deploy/ binds to its ServiceAccount."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from brix import procs
from tests.foundation.test_deploy_manifests import DEPLOY, render
from tests.k8s_api import K8sApi
from tests.scheduler_ext.conftest import args_names, node, pod

Call = tuple[str, str, str, str | None, str | None]  # group, resource, verb, namespace, name


@pytest.fixture
def api() -> Iterator[K8sApi]:
    with K8sApi(crd_dir=None, request_log=100_000) as server:
        yield server


def kubeconfig(path: Path, url: str, token: str) -> str:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": url}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    return str(path)


def calls(api: K8sApi, token: str) -> set[Call]:
    """The API calls made with this bearer token, as RBAC sees them."""
    found: set[Call] = set()
    for request in list(api.kmock):
        if request.headers.get("Authorization") != f"Bearer {token}":
            continue
        parts = [p for p in request.url.path.split("/") if p]
        group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
        namespace = None
        if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
            namespace, rest = rest[1], rest[2:]
        resource, name = rest[0], (rest[1] if len(rest) > 1 else None)
        if len(rest) > 2:
            resource += "/" + rest[2]
        method = str(request.method).upper().rsplit(".", 1)[-1]
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method)
        if method == "GET":
            verb = "get" if name else ("watch" if request.params.get("watch") in ("true", "1") else "list")
        elif method == "DELETE":
            verb = "delete" if name else "deletecollection"
        found.add((group, resource, str(verb), namespace, name))
    return found


def rules_of(account: str, namespace: str, objects: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str | None]]:
    """(rule, namespace it applies in; None = cluster-wide) for every role bound to the account."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
             for o in objects if o["kind"] in ("Role", "ClusterRole")}
    found = []
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == account
                   and s.get("namespace", binding["metadata"].get("namespace")) in (namespace, None)
                   for s in binding["subjects"]):
            continue
        ref = binding["roleRef"]
        role_ns = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        role = roles[(ref["kind"], role_ns, ref["name"])]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        found.extend((rule, scope) for rule in role["rules"])
    return found


def allows(rule: dict[str, Any], scope: str | None, call: Call) -> bool:
    group, resource, verb, namespace, name = call
    return (group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
            and (scope is None or namespace == scope)
            and (not rule.get("resourceNames") or name in rule["resourceNames"]))


def compare(made: set[Call], rules: list[tuple[dict[str, Any], str | None]], who: str) -> None:
    assert rules, f"deploy/ binds no role to {who}"
    denied = sorted(c[:3] for c in made if not any(allows(rule, scope, c) for rule, scope in rules))
    assert not denied, f"{who} makes calls its role does not grant: {denied}"
    unused = []
    for rule, scope in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    if not any(c[:3] == (group, resource, verb) and allows(rule, scope, c) for c in made):
                        unused.append((group, resource, verb))
    assert not unused, f"the role of {who} grants what the code never calls: {unused}"


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def _strip(obj: dict[str, Any]) -> dict[str, Any]:
    obj = {k: v for k, v in obj.items() if k != "status"} if obj.get("kind") == "Pod" else obj
    obj["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "uid"}
    return obj


def test_the_extender_role_is_what_the_extender_calls(api: K8sApi, brix_process, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    core = api.core_v1()
    core.create_node(_strip(node("gpu-0", 8)))
    uid = core.create_namespaced_pod("default", _strip(pod("engine", 4))).metadata.uid
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}"
    token = "brix-scheduler-ext"
    brix_process("scheduler-ext", "scheduler-ext", "--kubernetes", "--port", str(port),
                 "--kubeconfig", kubeconfig(tmp_path / "kc", api.url, token), ready_url=f"{url}/readyz")
    bind = {"PodName": "engine", "PodNamespace": "default", "PodUID": uid, "Node": "gpu-0"}
    assert post(f"{url}/bind", bind) == {"Error": ""}
    assert post(f"{url}/filter", args_names(pod("p", 1), ["gpu-0"]))["NodeNames"] == ["gpu-0"]
    wait_for(lambda: {c[:3] for c in calls(api, token)} >= {("", "nodes", "watch"), ("", "pods", "watch")},
             "the extender's informers never started their watches")
    objects = list(render(DEPLOY / "scheduler_ext" / "extender"))
    compare(calls(api, token), rules_of("brix-scheduler-ext", "brix-system", objects), "brix scheduler-ext")


def test_the_gateway_role_is_what_the_gateway_calls(api: K8sApi, brix_process, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = procs.free_port()
    token = "brix-gateway"
    # deploy/gateway has no namespace of its own: it is applied into the models' namespace
    brix_process("gateway", "gateway", "--kubernetes", "--namespace", "default", "--port", str(port),
                 "--kubeconfig", kubeconfig(tmp_path / "kc", api.url, token),
                 ready_url=f"http://127.0.0.1:{port}/healthz")
    wait_for(lambda: {("", "pods", "watch"), ("discovery.k8s.io", "endpointslices", "watch")}
             <= {c[:3] for c in calls(api, token)}, "the gateway never watched pods and EndpointSlices")
    objects = [dict(o, metadata={**o["metadata"], "namespace": o["metadata"].get("namespace", "default")})
               if o["kind"] in ("Role", "RoleBinding", "ServiceAccount") else o for o in render(DEPLOY / "gateway")]
    compare(calls(api, token), rules_of("brix-gateway", "default", objects), "brix gateway")


def test_the_device_plugin_calls_no_api_and_mounts_no_token() -> None:
    for folder in (DEPLOY / "deviceplugin", DEPLOY / "deviceplugin" / "mock"):
        objects = list(render(folder))
        assert not [o for o in objects if o["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")]
        for ds in (o for o in objects if o["kind"] == "DaemonSet"):
            assert ds["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
