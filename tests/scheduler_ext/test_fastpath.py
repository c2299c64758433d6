"""The vectorised path (kube-scheduler's compact JSON with NodeNames) answers exactly like the general one."""

from __future__ import annotations

import json
import random

import pytest

from scheduler_ext.cache import NodeCache
from scheduler_ext.model import DEFAULT_RESOURCES
from scheduler_ext.settings import Settings
from scheduler_ext.targets import TargetStore
from scheduler_ext.verbs import Extender
from tests.scheduler_ext.conftest import node, pod

PRODUCTS = ["NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3", "NVIDIA-L4", ""]


def cluster(rnd: random.Random) -> Extender:
    cache = NodeCache(frozenset(DEFAULT_RESOURCES))
    for i in range(60):
        gpus = rnd.choice([0, 1, 2, 4, 8])
        cap = gpus + rnd.choice([0, 0, 1])
        res = rnd.choice(["nvidia.com/gpu", "nvidia.com/gpu", "huawei.com/Ascend910"])
        cache.upsert_node(node(f"n{i}", gpus, product=rnd.choice(PRODUCTS), capacity=cap or None, resource=res))
        if gpus:
            cache.apply_pod_object(pod(f"busy{i}", rnd.randint(1, gpus), node_name=f"n{i}", resource=res))
    return Extender(Settings(), cache, TargetStore([]))


@pytest.mark.parametrize("seed", range(8))
def test_fast_and_general_paths_agree(seed):
    rnd = random.Random(seed)
    ext = cluster(rnd)
    names = [f"n{i}" for i in rnd.sample(range(70), 50)]  # some names the cache does not know
    for _ in range(6):
        annotations = {}
        if rnd.random() < 0.4:
            annotations["scheduling.brix.dev/gpu-types"] = rnd.choice(["A100", "h100,L4", "Ascend910"])
        if rnd.random() < 0.4:
            annotations["scheduling.brix.dev/policy"] = rnd.choice(["binpack", "spread"])
        p = pod("p", rnd.randint(1, 8), annotations=annotations,
                resource=rnd.choice(["nvidia.com/gpu", "huawei.com/Ascend910"]))
        doc = {"Pod": p, "Nodes": None, "NodeNames": names}
        compact = json.dumps(doc, separators=(",", ":")).encode()
        spaced = json.dumps(doc).encode()
        assert ext._fast_args(compact) is not None and ext._fast_args(spaced) is None
        for verb in ("filter", "prioritize"):
            fast = json.loads(getattr(ext, verb)(compact))
            general = json.loads(getattr(ext, verb)(spaced))
            assert fast == general, verb
