"""ModelAdapter on the real control plane (the `kube` fixture) with engine-mock pods: an adapter with
replicas 2 on 3 pods is loaded on two, served through the gateway (deploy/gateway) with the openai
client only by pods that have it, moved when its pod is deleted, reloaded after an engine restart,
unloaded on delete; a bad artifactURL ends Failed with the engine's message and no retry storm.
The operator runs as `brix controllers` with the admin kubeconfig. Times are printed, not asserted."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import openai
import pytest

from brix import procs
from brix.kube import manifests
from tests.kube import KubeNamespace
from tests.kube.test_gateway_and_restart import endpoints_used, start_gateway
from tests.kube.workloads import engine_pod

pytestmark = pytest.mark.kube
GROUP = "model.brix.dev"
MODEL = "llama-ma"


def engine(name: str) -> dict[str, Any]:
    pod = engine_pod(name, MODEL)
    pod["metadata"]["labels"]["app"] = MODEL
    pod["spec"]["containers"][0]["args"] += ["--check-lora-paths", "--max-loras=2"]
    return pod


def adapter(name: str, url: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "ModelAdapter", "metadata": {"name": name},
            "spec": {"baseModel": MODEL, "podSelector": {"matchLabels": {"app": MODEL}}, "artifactURL": url, **spec}}


def pods(kube: KubeNamespace) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in kube.get_json("pods", "-l", f"app={MODEL}")["items"]}


def loaded_on(kube: KubeNamespace, name: str) -> set[str]:
    """Pods whose engine lists the adapter in GET /v1/models (asked directly, not through the gateway)."""
    out = set()
    for pname, p in pods(kube).items():
        ip = p["status"].get("podIP")
        if not ip or p["metadata"].get("deletionTimestamp"):
            continue
        try:
            with urllib.request.urlopen(f"http://{ip}:8000/v1/models", timeout=2) as resp:
                if name in {m["id"] for m in json.load(resp)["data"]}:
                    out.add(pname)
        except OSError:
            pass
    return out


def status(kube: KubeNamespace, name: str) -> dict[str, Any]:
    return kube.get_json(f"modeladapters.{GROUP}/{name}").get("status") or {}


def url_of(kube: KubeNamespace, pod: str) -> str:
    return f"http://{pods(kube)[pod]['status']['podIP']}:8000"


def calls(metrics_port: int, name: str, action: str, result: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith("brix_modeladapter_engine_calls_total{") and f'name="{name}"' in line \
                and f'action="{action}"' in line and f'result="{result}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def routed_to(gateway: openai.OpenAI, model: str, want: set[str]) -> set[str] | None:
    used = endpoints_used(gateway, model, 10)
    return used if used == want else None


def test_modeladapter_places_serves_moves_repairs_and_unloads(kube: KubeNamespace, brix_process,  # type: ignore[no-untyped-def]
                                                             tmp_path: Path) -> None:
    kube.kubectl("apply", "-k", str(manifests.DEPLOY / "crds"))
    kube.kubectl("wait", "--for=condition=Established", f"crd/modeladapters.{GROUP}", "--timeout=60s")
    gateway = start_gateway(kube)
    for name in ("e0", "e1", "e2"):
        kube.kubectl("apply", "-f", "-", stdin=json.dumps(engine(name)))
    kube.wait_for("three engines Ready", lambda: all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        for p in pods(kube).values()) and len(pods(kube)) == 3, 90)
    port = procs.free_port()
    brix_process("controllers", "controllers", "--namespace", kube.namespace, "--no-leader-election",
                 "--kubeconfig", str(kube.kubeconfig), "--host", "127.0.0.1", "--metrics-port", str(port),
                 ready_url=f"http://127.0.0.1:{port}/readyz")
    artifact = tmp_path / "sql-adapter"
    artifact.mkdir()

    # create: loaded on two of the three pods, Running, routable through the gateway
    started = time.monotonic()
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(adapter("sql", f"file://{artifact}", replicas=2)))
    st = kube.wait_for("sql Running on 2 pods", lambda: (lambda s: s if s.get("phase") == "Running" else None)(
        status(kube, "sql")), 60, 0.1)
    t_ready = time.monotonic() - started
    instances = set(st["instances"])
    assert len(instances) == 2 and st["readyReplicas"] == 2 and st["desiredReplicas"] == 2
    assert loaded_on(kube, "sql") == instances
    want = {url_of(kube, p) for p in instances}
    kube.wait_for("the gateway to route sql to its two pods only", lambda: routed_to(gateway, "sql", want), 30, 0.05)
    t_routable = time.monotonic() - started
    print(f"\nModelAdapter create -> Running {t_ready:.2f} s, -> routed through the gateway {t_routable:.2f} s")
    # the base model still goes to all three; the Service and EndpointSlice are owned by the adapter
    assert len(endpoints_used(gateway, MODEL, 20)) == 3
    eps = kube.get_json("endpointslice/sql")
    assert {e["targetRef"]["name"] for e in eps["endpoints"]} == instances
    assert eps["metadata"]["ownerReferences"][0]["kind"] == "ModelAdapter"
    assert kube.get_json("service/sql")["metadata"]["ownerReferences"][0]["name"] == "sql"
    out = kube.kubectl("get", f"modeladapters.{GROUP}", "sql")
    assert "BASE MODEL" in out.stdout and MODEL in out.stdout and "Running" in out.stdout

    # engine restart (the container's process killed; the node agent restarts it empty): reloaded
    victim = sorted(instances)[0]
    pid = int(pods(kube)[victim]["status"]["containerStatuses"][0]["containerID"].removeprefix("brix://"))
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    kube.wait_for("the engine restarted", lambda: pods(kube)[victim]["status"]["containerStatuses"][0]
                  ["restartCount"] >= 1, 30, 0.1)
    kube.wait_for("sql reloaded on the restarted engine", lambda: victim in loaded_on(kube, "sql"), 30, 0.1)
    print(f"engine restart -> adapter loaded again {time.monotonic() - killed:.2f} s after the kill")
    assert loaded_on(kube, "sql") == instances and set(status(kube, "sql")["instances"]) == instances
    kube.wait_for("the gateway to route sql to both again", lambda: routed_to(gateway, "sql", want), 30, 0.05)

    # an instance pod deleted: sql moves to the spare pod, the other stays where it is
    spare = ({"e0", "e1", "e2"} - instances).pop()
    stay = (instances - {victim}).pop()
    deleted = time.monotonic()
    kube.kubectl("delete", "pod", victim, "--wait=false")
    kube.wait_for("sql moved to the spare pod", lambda: set(status(kube, "sql").get("instances", [])) == {stay, spare}
                  and status(kube, "sql").get("readyReplicas") == 2, 60, 0.1)
    print(f"instance pod deleted -> adapter Ready on the spare pod {time.monotonic() - deleted:.2f} s")
    assert loaded_on(kube, "sql") == {stay, spare}
    moved = {url_of(kube, stay), url_of(kube, spare)}
    kube.wait_for("the gateway to route sql to the new pair", lambda: routed_to(gateway, "sql", moved), 30, 0.05)

    # a bad artifactURL: Failed with the engine's message, one load attempt, no retry storm
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(adapter("bad", "/no/such/adapter", replicas=1)))
    st = kube.wait_for("bad Failed", lambda: (lambda s: s if s.get("phase") == "Failed" else None)(
        status(kube, "bad")), 60, 0.1)
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "LoadFailed" and "No adapter found for /no/such/adapter" in ready["message"]
    assert calls(port, "bad", "load", "permanent") == 1
    time.sleep(5)
    assert calls(port, "bad", "load", "permanent") == 1 and calls(port, "bad", "load", "retry") == 0
    with pytest.raises(openai.NotFoundError):
        gateway.completions.create(model="bad", prompt="x", max_tokens=1)

    # delete: unloaded everywhere, then gone (our finalizer), and never routed again
    removed = time.monotonic()
    kube.kubectl("delete", f"modeladapters.{GROUP}", "sql", "bad", "--timeout=60s", timeout=70)
    print(f"ModelAdapter delete -> unloaded and gone {time.monotonic() - removed:.2f} s")
    assert loaded_on(kube, "sql") == set()
    kube.wait_for("the gateway to stop serving sql", lambda: not endpoints_used(gateway, "sql", 3), 30, 0.1)
