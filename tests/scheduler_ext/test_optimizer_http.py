"""GPU-mix targets through the extender: POST a workload, GET the Prometheus gauge, and the cost policy."""

from __future__ import annotations

import json
from pathlib import Path

from tests.scheduler_ext.conftest import args_names, http, node, pod

TOY = (("A10G", 1.01, [[2, 1], [5, 2]]), ("A100", 3.67, [[20, 20], [40, 20]]))
WORKLOAD = {"indexes": [[64, 128], [256, 512]], "distribution": [[0.2, 0.1], [0.5, 0.2]], "rps": 30,
            "slice_factor": 1}


def profiles_dir(tmp_path: Path) -> str:
    folder = tmp_path / "profiles"
    folder.mkdir()
    for name, cost, tputs in TOY:
        (folder / f"{name}.json").write_text(json.dumps({"gpu": name, "cost": cost, "tputs": tputs,
                                                         "indexes": WORKLOAD["indexes"]}))
    return str(folder)


def test_targets_and_cost_policy(start_ext, tmp_path):
    ext = start_ext([node("a10g-0", 4, product="NVIDIA-A10G"), node("a100-0", 8)], "--profiles", profiles_dir(tmp_path))
    status, text = http("GET", f"{ext.url}/v1/optimizer/targets/default/llama")
    assert status == 404 and "POST /v1/optimizer/workload/default/llama" in text

    status, doc = http("POST", f"{ext.url}/v1/optimizer/workload/default/llama", WORKLOAD)
    assert status == 200, doc
    assert doc["replicas"] == {"A10G": 3, "A100": 1}
    status, text = http("GET", f"{ext.url}/v1/optimizer/targets/default/llama")
    assert status == 200
    assert 'brix_optimizer_target_replicas{namespace="default",model="llama",gpu_type="A100"} 1' in text
    assert 'brix_optimizer_target_replicas{namespace="default",model="llama",gpu_type="A10G"} 3' in text

    names = ["a10g-0", "a100-0"]
    engine = pod("llama-0", 1, uid="u0", labels={"model.brix.dev/name": "llama"})
    scores = {h["Host"]: h["Score"] for h in ext.post("prioritize", args_names(engine, names))}
    assert scores["a100-0"] == 10 and 5 <= scores["a10g-0"] < 10  # A100 is the more cost-efficient type here

    # once the A100 target (1 replica) is met, the next replica of the model goes to an A10G
    assert ext.post("filter", args_names(engine, ["a100-0"]))["NodeNames"] == ["a100-0"]
    assert ext.post("bind", {"PodName": "llama-0", "PodNamespace": "default", "PodUID": "u0",
                             "Node": "a100-0"}) == {"Error": ""}
    nxt = pod("llama-1", 1, uid="u1", labels={"model.brix.dev/name": "llama"})
    scores = {h["Host"]: h["Score"] for h in ext.post("prioritize", args_names(nxt, names))}
    assert scores["a10g-0"] > scores["a100-0"]

    # a pod of another model, or one that asks for binpack, is not scored by cost
    other = pod("x", 1, labels={"model.brix.dev/name": "other"})
    assert [h["Score"] for h in ext.post("prioritize", args_names(other, names))] == [3, 3]


def test_workload_errors(start_ext, tmp_path):
    ext = start_ext([node("a100-0", 8)], "--profiles", profiles_dir(tmp_path))
    status, doc = http("POST", f"{ext.url}/v1/optimizer/workload/default/llama", {**WORKLOAD, "rps": "lots"})
    assert status == 400 and "rps" in doc["error"]
    status, doc = http("POST", f"{ext.url}/v1/optimizer/workload/default/llama", {**WORKLOAD, "indexes": [[1], [2]]})
    assert status == 400 and "bucket grid" in doc["error"]
    status, doc = http("POST", f"{ext.url}/v1/optimizer/workload/default/llama", {**WORKLOAD, "max": {"A10G": 0, "A100": 0}})
    assert status == 422 and "no allocation" in doc["error"]
    status, doc = http("PUT", f"{ext.url}/v1/optimizer/targets/default/llama", {"replicas": {"A100": 2}})
    assert status == 200 and doc["cost"] == 7.34
