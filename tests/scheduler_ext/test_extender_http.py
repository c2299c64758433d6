"""The extender over HTTP with kube-scheduler's exact JSON, against `brix scheduler-ext --nodes FILE`."""

from __future__ import annotations

from tests.scheduler_ext.conftest import args_names, args_nodes, http, node, pod

NODES = [
    node("a100-0", 8),
    node("a100-1", 8),
    node("a40-0", 3, product="NVIDIA-A40", capacity=4),  # one GPU unhealthy: allocatable lowered
    node("cpu-0", 0, product=""),
]
NAMES = [n["metadata"]["name"] for n in NODES]


def test_filter_reasons_in_node_cache_mode(start_ext):
    ext = start_ext(NODES, pods=[pod("busy", 7, node_name="a100-1")])
    doc = ext.post("filter", args_names(pod("p", 4), NAMES + ["ghost"]))
    assert set(doc) == {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}
    assert doc["Error"] == ""
    assert doc["NodeNames"] == ["a100-0"]
    assert doc["FailedNodes"]["a100-1"] == "needs 4 nvidia.com/gpu, 1 free"
    assert doc["FailedAndUnresolvableNodes"]["a40-0"] == "needs 4 nvidia.com/gpu, node has 3 in total (1 unhealthy)"
    assert doc["FailedAndUnresolvableNodes"]["cpu-0"] == "node has no nvidia.com/gpu"
    assert "ghost" in doc["FailedNodes"]


def test_filter_with_full_nodes_answers_nodes(start_ext):
    ext = start_ext(NODES)
    doc = ext.post("filter", args_nodes(pod("p", 4), NODES))
    assert doc["NodeNames"] is None
    assert [n["metadata"]["name"] for n in doc["Nodes"]["items"]] == ["a100-0", "a100-1"]
    assert set(doc["FailedAndUnresolvableNodes"]) == {"a40-0", "cpu-0"}


def test_pod_without_gpus_passes_through(start_ext):
    ext = start_ext(NODES)
    doc = ext.post("filter", args_names(pod("web"), NAMES))
    assert doc["NodeNames"] == NAMES and doc["FailedNodes"] == {} and doc["FailedAndUnresolvableNodes"] == {}


def test_gpu_type_annotation_excludes_nodes_for_good(start_ext):
    ext = start_ext(NODES)
    p = pod("p", 2, annotations={"scheduling.brix.dev/gpu-types": "A40, H100"})
    doc = ext.post("filter", args_names(p, NAMES))
    assert doc["NodeNames"] == ["a40-0"]
    assert "not among the pod's allowed types (a40, h100)" in doc["FailedAndUnresolvableNodes"]["a100-0"]


def test_bad_slo_annotation_is_reported_on_every_node(start_ext):
    ext = start_ext(NODES)
    p = pod("p", 1, annotations={"scheduling.brix.dev/slo": "ttft_p99=fast"})
    doc = ext.post("filter", args_names(p, NAMES))
    assert doc["NodeNames"] == []
    assert all("bad duration 'fast' for ttft_p99" in r for r in doc["FailedAndUnresolvableNodes"].values())


def test_prioritize_binpack_spread_and_annotation_override(start_ext):
    ext = start_ext(NODES, pods=[pod("busy", 6, node_name="a100-1")])
    names = ["a100-0", "a100-1", "cpu-0"]
    doc = ext.post("prioritize", args_names(pod("p", 2), names))
    assert doc == [{"Host": "a100-0", "Score": 3}, {"Host": "a100-1", "Score": 10}, {"Host": "cpu-0", "Score": 0}]
    spread = pod("p", 2, annotations={"scheduling.brix.dev/policy": "spread"})
    doc = ext.post("prioritize", args_names(spread, names))
    assert [h["Score"] for h in doc] == [8, 0, 0]
    assert all(0 <= h["Score"] <= 10 for h in doc)


def test_default_policy_flag(start_ext):
    ext = start_ext(NODES, "--default-policy", "spread", pods=[pod("busy", 6, node_name="a100-1")])
    doc = ext.post("prioritize", args_names(pod("p", 1), ["a100-0", "a100-1"]))
    assert doc[0]["Score"] > doc[1]["Score"]


def test_bind_then_filter_sees_fewer_free_gpus(start_ext):
    ext = start_ext(NODES)
    first = pod("first", 6, uid="u-first")
    assert ext.post("filter", args_names(first, ["a100-0"]))["NodeNames"] == ["a100-0"]
    assert ext.post("bind", {"PodName": "first", "PodNamespace": "default", "PodUID": "u-first",
                             "Node": "a100-0"}) == {"Error": ""}
    doc = ext.post("filter", args_names(pod("second", 4, uid="u-second"), ["a100-0", "a100-1"]))
    assert doc["NodeNames"] == ["a100-1"]
    assert doc["FailedNodes"] == {"a100-0": "needs 4 nvidia.com/gpu, 2 free"}
    # binding the second pod to the full node is refused with a reason
    doc = ext.post("bind", {"PodName": "second", "PodNamespace": "default", "PodUID": "u-second", "Node": "a100-0"})
    assert "no longer fits on a100-0: needs 4 nvidia.com/gpu, 2 free" in doc["Error"]


def test_bind_of_unknown_pod_sets_error(start_ext):
    ext = start_ext(NODES)
    doc = ext.post("bind", {"PodName": "x", "PodNamespace": "default", "PodUID": "nope", "Node": "a100-0"})
    assert "was not seen by /filter" in doc["Error"]


def test_preempt_picks_fewest_lowest_priority_gpu_victims(start_ext):
    bound = [
        pod("low-2", 2, priority=1, node_name="a100-0"),
        pod("low-4", 4, priority=1, node_name="a100-0"),
        pod("mid-2", 2, priority=50, node_name="a100-0"),
        pod("high-8", 8, priority=1000, node_name="a100-1"),
    ]
    ext = start_ext(NODES, pods=bound)
    args = {"Pod": pod("new", 4, priority=100),
            "NodeNameToMetaVictims": {
                "a100-0": {"Pods": [{"UID": "uid-low-2"}, {"UID": "uid-low-4"}, {"UID": "uid-mid-2"}],
                           "NumPDBViolations": 0},
                "a100-1": {"Pods": [{"UID": "uid-high-8"}], "NumPDBViolations": 0}}}
    doc = ext.post("preempt", args)
    # one victim (low-4) frees enough; a100-1's only pod outranks the preemptor, so it is dropped
    assert doc == {"NodeNameToMetaVictims": {"a100-0": {"Pods": [{"UID": "uid-low-4"}], "NumPDBViolations": 0}}}


def test_preempt_with_full_victims(start_ext):
    ext = start_ext(NODES, pods=[pod("a", 4, priority=0, node_name="a100-0"), pod("b", 4, priority=5, node_name="a100-0")])
    args = {"Pod": pod("new", 4, priority=10),
            "NodeNameToVictims": {"a100-0": {"Pods": [pod("a", 4, priority=0, node_name="a100-0")],
                                             "NumPDBViolations": 0}}}
    doc = ext.post("preempt", args)
    assert doc["NodeNameToMetaVictims"]["a100-0"]["Pods"] == [{"UID": "uid-a"}]


def test_malformed_requests_get_400_with_a_message(start_ext):
    ext = start_ext(NODES)
    status, doc = http("POST", f"{ext.url}/filter", raw=b'{"Pod": ')
    assert status == 400 and "not valid JSON" in doc["Error"]
    status, doc = http("POST", f"{ext.url}/filter", {"NodeNames": ["a100-0"]})
    assert status == 400 and "missing field Pod" in doc["Error"]
    status, doc = http("POST", f"{ext.url}/prioritize", {"Pod": pod("p", 1)})
    assert status == 400 and "NodeNames" in doc["Error"]
    status, doc = http("POST", f"{ext.url}/bind", {"PodName": "p", "PodNamespace": "default"})
    assert status == 400 and "PodUID" in doc["Error"]
    status, doc = http("POST", f"{ext.url}/preempt", {"Pod": pod("p", 1)})
    assert status == 400 and "NodeNameToMetaVictims" in doc["Error"]
    bad = pod("p", 1)
    bad["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "two"
    status, doc = http("POST", f"{ext.url}/filter", args_names(bad, ["a100-0"]))
    assert status == 400 and "nvidia.com/gpu" in doc["Error"] and "'two'" in doc["Error"]


def test_metrics_count_calls_by_verb(start_ext):
    ext = start_ext(NODES)
    ext.post("filter", args_names(pod("p", 1), NAMES))
    http("POST", f"{ext.url}/filter", raw=b"nope")
    status, text = http("GET", f"{ext.url}/metrics")
    assert status == 200
    assert 'brix_scheduler_ext_requests_total{outcome="ok",verb="filter"} 1.0' in text
    assert 'brix_scheduler_ext_requests_total{outcome="bad_request",verb="filter"} 1.0' in text
    assert 'brix_scheduler_ext_request_seconds_count{verb="filter"}' in text
    assert "brix_scheduler_ext_nodes 4.0" in text


def test_filter_keep_answers_only_the_best_fitting_nodes(start_ext):
    """--filter-keep N: /filter passes only the N best fitting nodes by the pod's policy (binpack:
    the fullest; spread: the emptiest), still names every node that cannot fit and why, and gives
    the same answer on the fast (NodeNames) and general (full Nodes) paths."""
    nodes = [node("a100-0", 8), node("a100-1", 8), node("a100-2", 8), node("a40-0", 3, product="NVIDIA-A40", capacity=4)]
    names = [n["metadata"]["name"] for n in nodes]
    busy = [pod("half", 4, node_name="a100-1"), pod("most", 7, node_name="a100-2")]
    ext = start_ext(nodes, "--filter-keep", "1", pods=busy)
    doc = ext.post("filter", args_names(pod("p", 2), names))
    assert doc["NodeNames"] == ["a100-1"]                      # binpack: the fullest node that fits 2
    assert doc["FailedNodes"] == {"a100-2": "needs 2 nvidia.com/gpu, 1 free"}
    assert set(doc["FailedAndUnresolvableNodes"]) == set()
    full = ext.post("filter", args_nodes(pod("p", 2), nodes))
    assert [n["metadata"]["name"] for n in full["Nodes"]["items"]] == ["a100-1"]
    spread = pod("s", 1, annotations={"scheduling.brix.dev/policy": "spread"})
    assert ext.post("filter", args_names(spread, names))["NodeNames"] == ["a100-0"]
    big = pod("big", 8)
    doc = ext.post("filter", args_names(big, names))
    assert doc["NodeNames"] == ["a100-0"] and set(doc["FailedNodes"]) == {"a100-1", "a100-2"}
    none = ext.post("filter", args_names(pod("none", 5), ["a100-1", "a100-2", "a40-0"]))
    assert none["NodeNames"] == [] and set(none["FailedNodes"]) == {"a100-1", "a100-2"}
    assert "a40-0" in none["FailedAndUnresolvableNodes"]


def test_filter_keep_2_passes_the_two_best_best_first(start_ext):
    nodes = [node("a100-0", 8), node("a100-1", 8), node("a100-2", 8)]
    ext = start_ext(nodes, "--filter-keep", "2",
                    pods=[pod("half", 4, node_name="a100-1"), pod("most", 7, node_name="a100-2")])
    doc = ext.post("filter", args_names(pod("p", 1), ["a100-0", "a100-1", "a100-2"]))
    assert doc["NodeNames"] == ["a100-2", "a100-1"]
