"""Standalone mode follows its --nodes file: when a device plugin marks a GPU unhealthy and the
node's allocatable drops (brix up rewrites the file), the extender's answers change; bindings
made through /bind survive the reload, and a broken rewrite keeps the last good nodes."""

from __future__ import annotations

import time

import yaml

from tests.scheduler_ext.conftest import args_names, node, pod


def _rewrite(path, nodes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": nodes}))
    tmp.replace(path)


def _poll_filter(ext, body, predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        doc = ext.post("filter", body)
        if predicate(doc) or time.monotonic() > deadline:
            return doc
        time.sleep(0.1)


def test_lowered_allocatable_in_the_file_is_seen_without_restart(start_ext, tmp_path):
    ext = start_ext([node("n0", 4), node("n1", 4)])
    nodes_path = tmp_path / "nodes.yaml"
    ext.post("filter", args_names(pod("two", 2, uid="u-two"), ["n1"]))
    assert ext.post("bind", {"PodName": "two", "PodNamespace": "default", "PodUID": "u-two", "Node": "n1"})["Error"] == ""

    _rewrite(nodes_path, [node("n0", 3, capacity=4), node("n1", 4)])  # one GPU of n0 went unhealthy
    doc = _poll_filter(ext, args_names(pod("p", 4), ["n0", "n1"]),
                       lambda d: "n0" in (d["FailedAndUnresolvableNodes"] or {}))
    assert doc["FailedAndUnresolvableNodes"]["n0"] == "needs 4 nvidia.com/gpu, node has 3 in total (1 unhealthy)"
    assert doc["FailedNodes"]["n1"] == "needs 4 nvidia.com/gpu, 2 free"  # the /bind survived the reload

    nodes_path.write_text("items: [: not yaml")
    time.sleep(0.6)
    doc = ext.post("filter", args_names(pod("p", 3), ["n0", "n1"]))
    assert doc["NodeNames"] == ["n0"]  # last good content still in force
