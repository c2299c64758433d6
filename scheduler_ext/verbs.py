"""The extender's verbs on bytes: /filter, /prioritize, /bind, /preempt body in, reply body out.

A /filter or /prioritize body is read once, by one of two readers, into a Call: kube-scheduler's
compact NodeNames request by the fast slicer (fastpath.slice_args: the NodeNames list looked up
by its raw bytes, with its NodeIndex slots), anything else by the general parser
(model.parse_extender_args). From there each verb has one path; only its last step differs: a
pod asking for one managed resource on a sliced request is answered by the vectorised
fastpath.py, every other call by the per-node filter.py / prioritize.py (same answers; the tests
compare them). Also the informer's events into the cache. No HTTP here (server.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from brix.logs import kv
from scheduler_ext import fastpath
from scheduler_ext.cache import NodeCache, NodeState
from scheduler_ext.filter import best_of, filter_nodes, short_of
from scheduler_ext.gpu import node_gpus
from scheduler_ext.model import (
    ANNOTATION_GPU_TYPES,
    ANNOTATION_POLICY,
    ANNOTATION_SLO,
    FilterResult,
    PodRequest,
    Slo,
    WireError,
    filter_result_json,
    loads,
    parse_binding_args,
    parse_extender_args,
    parse_gpu_types,
    parse_policy,
    parse_preemption_args,
    parse_slo,
    pod_request,
)
from scheduler_ext.preempt import Candidate, candidates_from_cache, preempt
from scheduler_ext.prioritize import CostView, encode_scores, score_nodes
from scheduler_ext.settings import Settings
from scheduler_ext.targets import TargetStore

if TYPE_CHECKING:
    from scheduler_ext.binder import Binder
    from scheduler_ext.informer import Informer

log = logging.getLogger(__name__)

BIND_OK = b'{"Error":""}'


@dataclass(slots=True)
class Call:
    """A /filter or /prioritize request as read by the fast slicer or the general parser."""

    pod_raw: dict[str, Any]  # the Pod object, validated (model.parse_pod)
    names: list[str]  # the candidate nodes, in kube-scheduler's order
    states: Mapping[str, NodeState]  # their GPU facts (the cache's, or read from the Node objects sent)
    nodes: list[dict[str, Any]] | None = None  # the Node objects of a Nodes request: /filter answers with them
    slots: np.ndarray | None = None  # the names' NodeIndex slots (fast slicer): the vectorised path applies


class Extender:
    """Owns the cache, the targets and (Kubernetes mode) the API client."""

    def __init__(self, settings: Settings, cache: NodeCache, targets: TargetStore, api_client: Any = None) -> None:
        self.settings = settings
        self.cache = cache
        self.targets = targets
        self.api_client = api_client  # kubernetes.client.ApiClient in Kubernetes mode
        self.binder: Binder | None = None  # made on the first /bind in Kubernetes mode
        self.informer: Informer | None = None
        self._synced: set[str] = set()

    # ------------------------------------------------------------------ reading a call
    def _fast_args(self, body: bytes) -> Call | None:
        """The fast slicer's Call; None when the body is not kube-scheduler's compact NodeNames request."""
        sliced = fastpath.slice_args(body, self.cache.index)
        if sliced is None:
            return None
        pod_raw, names, slots = sliced
        return Call(pod_raw, names, self.cache.nodes, None, slots)

    def _args(self, body: bytes) -> Call:
        fast = self._fast_args(body)
        if fast is not None:
            return fast
        args = parse_extender_args(loads(body))
        if args.node_names is not None:
            return Call(args.pod_raw, args.node_names, self.cache.nodes)
        names: list[str] = []
        states: dict[str, NodeState] = {}
        for node in args.nodes or []:
            gpus = node_gpus(node, self.cache.resources)
            cached = self.cache.nodes.get(gpus.name)
            used = dict(cached.used) if cached is not None else {}
            names.append(gpus.name)
            states[gpus.name] = NodeState(gpus, used, host_prefix='{"Host":' + json.dumps(gpus.name) + ',"Score":')
        return Call(args.pod_raw, names, states, args.nodes)

    def _pod_and_rules(self, pod_raw: dict[str, Any]) -> tuple[PodRequest, frozenset[str] | None, Slo | None, str]:
        """The pod's request and its Brix annotations; ValueError (not WireError) for a bad annotation."""
        pod = pod_request(pod_raw, self.cache.resources)
        ann = pod.annotations
        allowed = parse_gpu_types(ann.get(ANNOTATION_GPU_TYPES))
        slo = parse_slo(ann[ANNOTATION_SLO]) if ANNOTATION_SLO in ann else None
        policy = parse_policy(ann.get(ANNOTATION_POLICY), "")
        return pod, allowed, slo, policy

    def _policy(self, pod: PodRequest, slo: Slo | None, policy: str) -> tuple[str, CostView | None]:
        cost = None
        if policy in ("", "cost") and pod.requests:
            model = pod.model
            running = self.cache.running(pod.namespace, model) if model else {}
            cost = self.targets.cost_view(pod.namespace, model, running, slo)
        if not policy:
            policy = "cost" if cost is not None else self.settings.default_policy
        elif policy == "cost" and cost is None:
            policy = self.settings.default_policy
        return policy, cost

    # ------------------------------------------------------------------ verbs
    def filter(self, body: bytes) -> bytes:
        call = self._args(body)
        try:
            pod, allowed, slo, policy = self._pod_and_rules(call.pod_raw)
        except WireError:
            raise
        except ValueError as exc:  # a bad annotation: the pod can go nowhere until it is fixed
            result = FilterResult(unresolvable={n: str(exc) for n in call.names})
            return filter_result_json(result, [] if call.nodes is not None else None)
        if pod.requests:
            self.cache.remember_pending(pod)
        keep = self.settings.filter_keep
        if call.slots is not None and len(pod.requests) == 1:
            ((res, need),) = pod.requests.items()
            values = None
            if keep:
                policy, cost = self._policy(pod, slo, policy)
                values = fastpath.scores(self.cache.index, call.slots, res, need, policy, cost)
            return fastpath.filter_json(self.cache.index, call.names, call.slots, res, need, allowed, keep, values)
        result = filter_nodes(pod, call.names, call.states, allowed)
        if keep and pod.requests:
            policy, cost = self._policy(pod, slo, policy)
            scores = score_nodes(pod, result.node_names, call.states, policy, cost)
            result.node_names[:] = best_of(result.node_names, scores, keep)
        if call.nodes is not None:
            passing = set(result.node_names)
            return filter_result_json(result, [n for n in call.nodes if n["metadata"]["name"] in passing])
        return filter_result_json(result)

    def prioritize(self, body: bytes) -> bytes:
        call = self._args(body)
        try:
            pod, _allowed, slo, policy = self._pod_and_rules(call.pod_raw)
        except WireError:
            raise
        except ValueError:  # a bad annotation: /filter made every node unresolvable
            return encode_scores(call.names, [0] * len(call.names), call.states)
        policy, cost = self._policy(pod, slo, policy)
        if call.slots is not None and len(pod.requests) == 1:
            ((res, need),) = pod.requests.items()
            values = fastpath.scores(self.cache.index, call.slots, res, need, policy, cost)
            return fastpath.scores_json(self.cache.index, call.names, call.slots, values)
        return encode_scores(call.names, score_nodes(pod, call.names, call.states, policy, cost), call.states)

    async def bind(self, body: bytes) -> bytes:
        args = parse_binding_args(loads(body))
        pod_name = f"{args.pod_namespace}/{args.pod_name}"
        pending = self.cache.pending.get(args.pod_uid)
        state = self.cache.nodes.get(args.node)
        if pending is not None and state is not None:
            short = short_of(pending.requests, state)
            if short:
                return _error(f"pod {pod_name} no longer fits on {args.node}: " + "; ".join(short))
        if self.api_client is not None:
            from scheduler_ext.binder import Binder, BindError

            if self.binder is None:
                self.binder = Binder(self.api_client.configuration)
            started = time.perf_counter()
            try:
                await self.binder.bind(args.pod_namespace, args.pod_name, args.pod_uid, args.node)
            except BindError as exc:  # the API's answer goes back to kube-scheduler
                return _error(f"binding {pod_name} to {args.node} failed: {exc}")
            self.cache.bind_pending(args.pod_uid, args.node)  # assumed until the informer confirms
            kv(log, "bound", pod=pod_name, node=args.node, api_ms=round(1000 * (time.perf_counter() - started), 1))
            return BIND_OK
        if state is None:
            return _error(f"node {args.node} is not in the extender's cache")
        if pending is None and args.pod_uid not in self.cache.pods:
            return _error(f"pod {pod_name} (uid {args.pod_uid}) was not seen by /filter, so its GPU request "
                          "is unknown; standalone /bind needs a /filter first")
        self.cache.bind_pending(args.pod_uid, args.node)
        kv(log, "bound", pod=pod_name, node=args.node)
        return BIND_OK

    def preempt(self, body: bytes) -> bytes:
        args = parse_preemption_args(loads(body))
        pod, _allowed, _slo, _policy = self._pod_and_rules(args.pod_raw)
        pods_on: dict[str, list[Candidate]] = {}
        managed: set[str] = set()
        for node in args.node_to_victim_uids:
            cached = self.cache.pods_on(node)
            if cached or args.node_to_victim_pods is None:
                pods_on[node] = candidates_from_cache(cached)
            else:  # not node-cache capable and unknown here: use the victims kube-scheduler sent
                pods_on[node] = [Candidate(str((p.get("metadata") or {}).get("uid", "")),
                                           int((p.get("spec") or {}).get("priority") or 0),
                                           pod_request(p, self.cache.resources).requests)
                                 for p in args.node_to_victim_pods[node]]
            managed.update(c.uid for c in pods_on[node] if c.requests)
        chosen = preempt(pod, args.node_to_victim_uids, self.cache.nodes, pods_on, managed)
        doc = {"NodeNameToMetaVictims": {n: {"Pods": [{"UID": u} for u in uids], "NumPDBViolations": 0}
                                         for n, uids in chosen.items()}}
        return json.dumps(doc, separators=(",", ":")).encode()

    # ------------------------------------------------------------------ informer events (loop thread)
    def reload_nodes(self, nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> None:
        """Standalone mode: the --nodes file changed. Bindings made through /bind are kept."""
        self.cache.replace_nodes(nodes)
        for pod in pods:
            self.cache.apply_pod_object(pod)

    def on_event(self, kind: str, event: str, obj: Any) -> None:
        if kind == "node":
            if event == "SYNC":
                self.cache.replace_nodes(obj)
            elif event == "DELETED":
                self.cache.delete_node(str(obj["metadata"]["name"]))
            else:
                self.cache.upsert_node(obj)
        else:
            if event == "SYNC":
                self.cache.replace_pods(obj)
            else:
                self.cache.apply_pod_object(obj, deleted=event == "DELETED")
        if event == "SYNC":
            self._synced.add(kind)
            self.cache.synced = self._synced >= {"node", "pod"}


def _error(message: str) -> bytes:
    return json.dumps({"Error": message}).encode()
