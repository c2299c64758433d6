"""What the node agent does as the kubelet of its pods, seen through the API: a deleted pod's
process stops within its grace period and the pod object goes; a crashing container is restarted
with back-off and says so; a container that is not Brix runs without a process."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.kube import KubeNamespace
from tests.kube.workloads import engine_pod

pytestmark = pytest.mark.kube


def get(kube: KubeNamespace, name: str) -> dict:
    return kube.get_json("pod", name)


def is_ready(p: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_deleting_a_pod_stops_its_process_within_the_grace_period(kube: KubeNamespace) -> None:
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(engine_pod("short-lived", "llama-del")))
    p = kube.wait_for("Ready", lambda: (lambda x: x if is_ready(x) else None)(get(kube, "short-lived")))
    pid = int(p["status"]["containerStatuses"][0]["containerID"].removeprefix("brix://"))
    assert alive(pid)
    started = time.monotonic()
    kube.kubectl("delete", "pod", "short-lived", "--grace-period=3", "--wait=true", "--timeout=30s")
    assert not alive(pid)
    assert time.monotonic() - started < 8  # engine-mock stops on SIGTERM well inside its 3 s
    assert kube.kubectl("get", "pod", "short-lived", check=False).returncode != 0


def test_a_crashing_container_is_restarted_with_back_off(kube: KubeNamespace) -> None:
    pod = engine_pod("crasher", "llama-crash")
    pod["spec"]["containers"][0]["args"].append("--max-num-seqs=0")  # refused at start: exit 2
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(pod))

    def restarted() -> dict | None:
        p = get(kube, "crasher")
        statuses = p["status"].get("containerStatuses", [])
        return p if statuses and statuses[0]["restartCount"] >= 1 else None
    p = kube.wait_for("a restart", restarted, 30)
    assert not is_ready(p)
    events = kube.get_json("events", "--field-selector", "involvedObject.name=crasher")["items"]
    assert any(e["reason"] == "BackOff" and "exited with 2" in e["message"] for e in events), events


def test_a_container_that_is_not_brix_runs_without_a_process(kube: KubeNamespace) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sidecar"},
           "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    p = kube.wait_for("Ready", lambda: (lambda x: x if is_ready(x) else None)(get(kube, "sidecar")))
    assert p["status"]["phase"] == "Running" and not p["status"]["containerStatuses"][0].get("containerID")
