"""The extender's node and pod cache: GPU facts per node plus the GPUs that bound pods use.

Mutated only from the event loop thread (the informer hands its events over with
call_soon_threadsafe), so request handlers read it without locks. Per-node free counts are kept
up to date incrementally on every pod add/remove, so a filter request is a dict lookup and a
comparison per node.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from scheduler_ext.gpu import NodeGpus, node_gpus
from scheduler_ext.index import NodeIndex
from scheduler_ext.model import PodRequest, pod_request


@dataclass
class NodeState:
    gpus: NodeGpus
    used: dict[str, int] = field(default_factory=dict)
    pods: set[str] = field(default_factory=set)  # uids of pods bound here that use managed resources
    host_prefix: str = ""  # '{"Host":"<name>","Score":' precomputed for the prioritize reply

    def free(self, resource: str) -> int:
        return self.gpus.allocatable.get(resource, 0) - self.used.get(resource, 0)


@dataclass(frozen=True)
class BoundPod:
    uid: str
    name: str
    namespace: str
    node: str
    priority: int
    requests: dict[str, int]
    model: str | None


class NodeCache:
    def __init__(self, resources: frozenset[str], pending_limit: int = 10_000) -> None:
        self.resources = resources
        self.nodes: dict[str, NodeState] = {}
        self.index = NodeIndex(resources)
        self.pods: dict[str, BoundPod] = {}
        self.pods_by_node: dict[str, set[str]] = {}  # uids bound to a node even before it is known
        # pods seen by /filter, so that /bind (which carries only names) knows their requests
        self.pending: OrderedDict[str, PodRequest] = OrderedDict()
        self.pending_limit = pending_limit
        # (namespace, model) -> gpu type -> running replicas
        self.model_counts: dict[tuple[str, str], dict[str, int]] = {}
        self.synced = False

    # ------------------------------------------------------------------ nodes
    def upsert_node(self, node: dict[str, Any]) -> None:
        gpus = node_gpus(node, self.resources)
        state = self.nodes.get(gpus.name)
        if state is None:
            name_json = json.dumps(gpus.name)
            state = NodeState(gpus, host_prefix='{"Host":' + name_json + ',"Score":')
            self.nodes[gpus.name] = state
            for uid in self.pods_by_node.get(gpus.name, ()):
                self._account(state, self.pods[uid], +1)
        else:
            old_type = state.gpus.gpu_type
            if old_type != gpus.gpu_type:
                for uid in state.pods:
                    self._count_model(self.pods[uid], old_type, -1)
                    self._count_model(self.pods[uid], gpus.gpu_type, +1)
            state.gpus = gpus
        self.index.upsert(gpus, state.used)

    def delete_node(self, name: str) -> None:
        self.nodes.pop(name, None)
        self.index.delete(name)

    def replace_nodes(self, nodes: list[dict[str, Any]]) -> None:
        names = {str((n.get("metadata") or {}).get("name")) for n in nodes}
        for name in [n for n in self.nodes if n not in names]:
            self.delete_node(name)
        for node in nodes:
            self.upsert_node(node)

    def replace_pods(self, pods: list[dict[str, Any]]) -> None:
        """A fresh list from the API: forget pods that are gone, keep assumed (just bound) ones only
        if the list shows them too."""
        uids = {str((p.get("metadata") or {}).get("uid")) for p in pods}
        for uid in [u for u in self.pods if u not in uids]:
            self.remove_pod(uid)
        for pod in pods:
            self.apply_pod_object(pod)

    # ------------------------------------------------------------------ pods
    def remember_pending(self, pod: PodRequest) -> None:
        if not pod.uid:
            return
        self.pending[pod.uid] = pod
        self.pending.move_to_end(pod.uid)
        while len(self.pending) > self.pending_limit:
            self.pending.popitem(last=False)

    def add_bound(self, pod: BoundPod) -> None:
        if pod.uid in self.pods:
            if self.pods[pod.uid] == pod:
                return
            self.remove_pod(pod.uid)
        if not pod.requests:
            return
        self.pods[pod.uid] = pod
        self.pods_by_node.setdefault(pod.node, set()).add(pod.uid)
        state = self.nodes.get(pod.node)
        if state is not None:
            self._account(state, pod, +1)

    def remove_pod(self, uid: str) -> None:
        pod = self.pods.pop(uid, None)
        if pod is None:
            return
        uids = self.pods_by_node.get(pod.node)
        if uids is not None:
            uids.discard(uid)
            if not uids:
                del self.pods_by_node[pod.node]
        state = self.nodes.get(pod.node)
        if state is not None:
            self._account(state, pod, -1)

    def apply_pod_object(self, pod: dict[str, Any], deleted: bool = False) -> None:
        """A pod from the API: counted while bound and not finished, forgotten otherwise."""
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        node = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if deleted or not node or phase in ("Succeeded", "Failed"):
            self.remove_pod(uid)
            return
        req = pod_request(pod, self.resources)
        self.pending.pop(uid, None)
        self.add_bound(BoundPod(uid, req.name, req.namespace, str(node), req.priority, req.requests, req.model))

    def bind_pending(self, uid: str, node: str) -> BoundPod | None:
        req = self.pending.pop(uid, None)
        if req is None:
            return None
        pod = BoundPod(uid, req.name, req.namespace, node, req.priority, req.requests, req.model)
        self.add_bound(pod)
        return pod

    def pods_on(self, node: str) -> list[BoundPod]:
        return [self.pods[u] for u in self.pods_by_node.get(node, ())]

    def running(self, namespace: str, model: str) -> dict[str, int]:
        return dict(self.model_counts.get((namespace, model), {}))

    # ------------------------------------------------------------------ internals
    def _account(self, state: NodeState, pod: BoundPod, sign: int) -> None:
        for res, n in pod.requests.items():
            state.used[res] = state.used.get(res, 0) + sign * n
            self.index.set_used(state.gpus.name, res, state.used[res])
        if sign > 0:
            state.pods.add(pod.uid)
        else:
            state.pods.discard(pod.uid)
        self._count_model(pod, state.gpus.gpu_type, sign)

    def _count_model(self, pod: BoundPod, gpu_type: str, sign: int) -> None:
        if not pod.model:
            return
        counts = self.model_counts.setdefault((pod.namespace, pod.model), {})
        counts[gpu_type] = counts.get(gpu_type, 0) + sign
        if counts[gpu_type] <= 0:
            del counts[gpu_type]
