"""The shipped scheduler configs point at verbs the extender serves; HTTPS with --tls-cert/--tls-key."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.scheduler_ext.conftest import args_names, http, node, pod

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "scheduler_ext"


def extender_entries() -> list[dict]:
    entries = yaml.safe_load((DEPLOY / "scheduler-config.yaml").read_text())["extenders"]
    for doc in yaml.safe_load_all((DEPLOY / "second-scheduler" / "scheduler.yaml").read_text()):
        if doc["kind"] == "ConfigMap":
            entries += yaml.safe_load(doc["data"]["config.yaml"])["extenders"]
    return entries


def test_scheduler_configs_use_the_served_verbs(start_ext):
    ext = start_ext([node("gpu-0", 8)])
    bodies = {"filterVerb": args_names(pod("p", 1), ["gpu-0"]), "prioritizeVerb": args_names(pod("p", 1), ["gpu-0"]),
              "preemptVerb": {"Pod": pod("p", 1), "NodeNameToMetaVictims": {}},
              "bindVerb": {"PodName": "p", "PodNamespace": "default", "PodUID": "uid-p", "Node": "gpu-0"}}
    for entry in extender_entries():
        assert entry["nodeCacheCapable"] is True and entry["weight"] > 0
        assert entry["urlPrefix"].endswith(":8888")
        assert {r["name"] for r in entry["managedResources"]} >= {"nvidia.com/gpu"}
        for key, body in bodies.items():
            status, _ = http("POST", f"{ext.url}/{entry[key]}", body)
            assert status == 200, (key, entry[key])


def test_deployment_args_are_real_flags():
    deployment = next(d for d in yaml.safe_load_all((DEPLOY / "extender" / "deployment.yaml").read_text()) if d["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    import argparse

    from brix.cli import load_commands
    command = next(c for c in load_commands() if c.name == args[0])
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    parsed = parser.parse_args(args[1:])
    assert parsed.kubernetes and parsed.port == 8888


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_tls(brix_process, free_port, tmp_path):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text(yaml.safe_dump(node("gpu-0", 8)))
    proc = brix_process("scheduler-ext", "scheduler-ext", "--nodes", str(nodes), "--port", str(free_port),
                        "--tls-cert", str(cert), "--tls-key", str(key), wait=False)
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    import time
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{free_port}/healthz", context=ctx, timeout=2) as resp:
                assert resp.status == 200
                break
        except OSError:
            assert proc.alive() and time.monotonic() < deadline
            time.sleep(0.1)


def test_example_nodes_file(brix_process, free_port):
    example = Path(__file__).resolve().parents[2] / "scheduler_ext" / "examples" / "nodes.yaml"
    url = f"http://127.0.0.1:{free_port}"
    brix_process("scheduler-ext", "scheduler-ext", "--nodes", str(example), "--port", str(free_port),
                 ready_url=f"{url}/readyz")
    names = ["mock-a100-0", "mock-a100-1", "mock-a40-0", "mock-a40-1"]
    status, doc = http("POST", f"{url}/filter", args_names(pod("p", 8), names))
    assert status == 200 and doc["NodeNames"] == ["mock-a100-0"]
    assert doc["FailedAndUnresolvableNodes"]["mock-a100-1"] == "needs 8 nvidia.com/gpu, node has 7 in total (1 unhealthy)"
