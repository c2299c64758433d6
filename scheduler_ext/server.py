"""The extender's HTTP edge (aiohttp): wire JSON in, pure filter/prioritize/preempt, wire JSON out.

POST /filter, /prioritize, /bind, /preempt (kube-scheduler extender protocol); GET /healthz,
/readyz, /metrics; the GPU-mix optimizer under /v1/optimizer/.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from brix.logs import kv
from scheduler_ext import fastpath, nodes_file
from scheduler_ext.cache import NodeCache, NodeState
from scheduler_ext.filter import best_of, filter_nodes
from scheduler_ext.gpu import node_gpus
from scheduler_ext.model import (
    ANNOTATION_GPU_TYPES,
    ANNOTATION_POLICY,
    ANNOTATION_SLO,
    ExtenderArgs,
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
from scheduler_ext.solvers import melange
from scheduler_ext.solvers.profiles import InputError, profile_from_doc
from scheduler_ext.targets import ProfileEntry, TargetStore

log = logging.getLogger(__name__)
JSON = "application/json"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter("brix_scheduler_ext_requests", "Extender calls by verb and outcome.",
                             ["verb", "outcome"], registry=self.registry)
        self.latency = Histogram("brix_scheduler_ext_request_seconds", "Extender call latency by verb.", ["verb"],
                                 buckets=(0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5, 1.0, 2.5, 5.0),
                                 registry=self.registry)
        self.nodes = Gauge("brix_scheduler_ext_nodes", "Nodes in the extender's cache.", registry=self.registry)
        self.pods = Gauge("brix_scheduler_ext_gpu_pods", "Bound pods holding managed resources.",
                          registry=self.registry)


class Extender:
    """Owns the cache, the targets, the metrics and (Kubernetes mode) the API client."""

    def __init__(self, settings: Settings, cache: NodeCache, targets: TargetStore, api_client: Any = None) -> None:
        self.settings = settings
        self.cache = cache
        self.targets = targets
        self.api_client = api_client
        self.binder: Any = None  # scheduler_ext.binder.Binder, made on the first /bind in Kubernetes mode
        self.metrics = Metrics()
        self.informer: Any = None
        self._synced: set[str] = set()

    # ------------------------------------------------------------------ common parsing
    def _pod_and_rules(self, pod_raw: dict[str, Any]) -> tuple[PodRequest, frozenset[str] | None, Slo | None, str]:
        pod = pod_request(pod_raw, self.cache.resources)
        ann = pod.annotations
        allowed = parse_gpu_types(ann.get(ANNOTATION_GPU_TYPES))
        slo = parse_slo(ann[ANNOTATION_SLO]) if ANNOTATION_SLO in ann else None
        policy = parse_policy(ann.get(ANNOTATION_POLICY), "")
        return pod, allowed, slo, policy

    def _nodes_for(self, args: ExtenderArgs) -> tuple[list[str], dict[str, NodeState]]:
        if args.node_names is not None:
            return args.node_names, self.cache.nodes
        names: list[str] = []
        states: dict[str, NodeState] = {}
        for node in args.nodes or []:
            gpus = node_gpus(node, self.cache.resources)
            cached = self.cache.nodes.get(gpus.name)
            used = dict(cached.used) if cached is not None else {}
            names.append(gpus.name)
            states[gpus.name] = NodeState(gpus, used, host_prefix='{"Host":' + json.dumps(gpus.name) + ',"Score":')
        return names, states

    def _fast_args(self, body: bytes) -> tuple[dict[str, Any], list[str], Any] | None:
        """(pod, names, slots) for a NodeNames request in Go's compact encoding, with the NodeNames
        list (always the last field) looked up by its raw bytes instead of parsed again. None when
        the body does not have that shape; the caller then parses it the general way."""
        k = body.rfind(b',"NodeNames":[')
        if k <= 0 or not body.endswith(b"]}"):
            return None
        key = body[k + 13:-1]
        try:
            head = json.loads(body[:k] + b"}")
        except ValueError:
            return None
        if not isinstance(head, dict) or not isinstance(head.get("Pod"), dict):
            return None
        index = self.cache.index
        found = index.slots_for(key, None)
        if found is None:
            try:
                names = json.loads(key)
            except ValueError:
                return None
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                return None
            found = index.slots_for(key, names)
            assert found is not None
        parse_extender_args({"Pod": head["Pod"], "NodeNames": []})  # validates the Pod
        return head["Pod"], found[0], found[1]

    # ------------------------------------------------------------------ verbs
    def filter(self, body: bytes) -> bytes:
        fast = self._fast_args(body)
        if fast is not None:
            pod_raw, names, slots = fast
            try:
                pod, allowed, slo, policy = self._pod_and_rules(pod_raw)
            except WireError:
                raise
            except ValueError as exc:
                return filter_result_json(FilterResult(unresolvable={n: str(exc) for n in names}))
            if len(pod.requests) == 1:
                self.cache.remember_pending(pod)
                ((res, need),) = pod.requests.items()
                keep, values = self.settings.filter_keep, None
                if keep:
                    policy, cost = self._policy(pod, slo, policy)
                    values = fastpath.scores(self.cache.index, slots, res, need, policy, cost)
                return fastpath.filter_json(self.cache.index, names, slots, res, need, allowed, keep, values)
        args = parse_extender_args(loads(body))
        names, states = self._nodes_for(args)
        try:
            pod, allowed, slo, policy = self._pod_and_rules(args.pod_raw)
        except WireError:
            raise
        except ValueError as exc:  # a bad annotation: the pod can go nowhere until it is fixed
            result = FilterResult(unresolvable={n: str(exc) for n in names})
            return filter_result_json(result, [] if args.nodes is not None else None)
        if pod.requests:
            self.cache.remember_pending(pod)
        result = filter_nodes(pod, names, states, allowed)
        if self.settings.filter_keep and pod.requests:
            policy, cost = self._policy(pod, slo, policy)
            scores = score_nodes(pod, result.node_names, states, policy, cost)
            result.node_names[:] = best_of(result.node_names, scores, self.settings.filter_keep)
        if args.nodes is not None:
            keep = set(result.node_names)
            return filter_result_json(result, [n for n in args.nodes if n["metadata"]["name"] in keep])
        return filter_result_json(result)

    def prioritize(self, body: bytes) -> bytes:
        fast = self._fast_args(body)
        if fast is not None:
            pod_raw, names, slots = fast
            try:
                pod, _allowed, slo, policy = self._pod_and_rules(pod_raw)
            except WireError:
                raise
            except ValueError:
                return fastpath.scores_json(self.cache.index, names, slots, np.zeros(len(names), dtype=np.int64))
            if len(pod.requests) == 1:
                policy, cost = self._policy(pod, slo, policy)
                ((res, need),) = pod.requests.items()
                values = fastpath.scores(self.cache.index, slots, res, need, policy, cost)
                return fastpath.scores_json(self.cache.index, names, slots, values)
        args = parse_extender_args(loads(body))
        names, states = self._nodes_for(args)
        try:
            pod, _allowed, slo, policy = self._pod_and_rules(args.pod_raw)
        except WireError:
            raise
        except ValueError:
            return encode_scores(names, [0] * len(names), states)
        policy, cost = self._policy(pod, slo, policy)
        return encode_scores(names, score_nodes(pod, names, states, policy, cost), states)

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

    async def bind(self, body: bytes) -> bytes:
        args = parse_binding_args(loads(body))
        pending = self.cache.pending.get(args.pod_uid)
        state = self.cache.nodes.get(args.node)
        if pending is not None and state is not None:
            short = [f"needs {n} {r}, {state.free(r)} free" for r, n in pending.requests.items() if state.free(r) < n]
            if short:
                return _error(f"pod {args.pod_namespace}/{args.pod_name} no longer fits on {args.node}: "
                              + "; ".join(short))
        if self.api_client is not None:
            from scheduler_ext.binder import Binder, BindError

            if self.binder is None:
                self.binder = Binder(self.api_client.configuration)
            started = time.perf_counter()
            try:
                await self.binder.bind(args.pod_namespace, args.pod_name, args.pod_uid, args.node)
            except BindError as exc:  # the API's answer goes back to kube-scheduler
                return _error(f"binding {args.pod_namespace}/{args.pod_name} to {args.node} failed: {exc}")
            self.cache.bind_pending(args.pod_uid, args.node)  # assumed until the informer confirms
            kv(log, "bound", pod=f"{args.pod_namespace}/{args.pod_name}", node=args.node,
               api_ms=round(1000 * (time.perf_counter() - started), 1))
            return b'{"Error":""}'
        else:
            if state is None:
                return _error(f"node {args.node} is not in the extender's cache")
            if pending is None and args.pod_uid not in self.cache.pods:
                return _error(f"pod {args.pod_namespace}/{args.pod_name} (uid {args.pod_uid}) was not seen by "
                              "/filter, so its GPU request is unknown; standalone /bind needs a /filter first")
            self.cache.bind_pending(args.pod_uid, args.node)
        kv(log, "bound", pod=f"{args.pod_namespace}/{args.pod_name}", node=args.node)
        return b'{"Error":""}'

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


# ---------------------------------------------------------------------- aiohttp wiring

EXT_KEY = web.AppKey("extender", Extender)
SLOW_CALL_S = 0.1   # a call this slow is logged at warning level (deploy/ gives kube-scheduler a 5 s httpTimeout)


def _verb(name: str, fn: Callable[[Extender, bytes], Awaitable[bytes] | bytes], error_field: bool):
    async def handler(request: web.Request) -> web.Response:
        ext = request.app[EXT_KEY]
        started = time.perf_counter()
        body = await request.read()
        outcome = "ok"
        try:
            out = fn(ext, body)
            if asyncio.iscoroutine(out):
                out = await out
            if out.startswith(b'{"Error":"') and not out.startswith(b'{"Error":""'):
                outcome = "error"
            resp = web.Response(body=out, content_type=JSON)
        except WireError as exc:
            outcome = "bad_request"
            resp = web.json_response({"Error": str(exc)}, status=400)
        except Exception as exc:  # noqa: BLE001 - an internal failure is reported, not raised
            outcome = "error"
            kv(log, "extender call failed", logging.ERROR, verb=name, error=repr(exc))
            if error_field:
                resp = web.json_response({"Error": f"internal error in {name}: {exc!r}"})
            else:
                resp = web.json_response({"Error": f"internal error in {name}: {exc!r}"}, status=500)
        elapsed = time.perf_counter() - started
        ext.metrics.calls.labels(name, outcome).inc()
        ext.metrics.latency.labels(name).observe(elapsed)
        # every call at debug level (--log-level debug shows what kube-scheduler asked); a failed or
        # slow one always, since kube-scheduler gives up on an extender call after its httpTimeout
        level = logging.DEBUG if outcome == "ok" and elapsed < SLOW_CALL_S else logging.WARNING
        if log.isEnabledFor(level):
            kv(log, "extender call", level, verb=name, outcome=outcome, ms=round(1000 * elapsed, 2),
               request_bytes=len(body), response_bytes=resp.content_length)
        return resp

    return handler


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    ext = request.app[EXT_KEY]
    if not ext.cache.synced:
        return web.Response(text="node and pod cache not synced yet\n", status=503)
    return web.Response(text="ok\n")


async def metrics(request: web.Request) -> web.Response:
    ext = request.app[EXT_KEY]
    ext.metrics.nodes.set(len(ext.cache.nodes))
    ext.metrics.pods.set(len(ext.cache.pods))
    return web.Response(body=generate_latest(ext.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def get_targets(request: web.Request) -> web.Response:
    ext = request.app[EXT_KEY]
    ns, model = request.match_info["namespace"], request.match_info["model"]
    text = ext.targets.prometheus_text(ns, model)
    if text is None:
        return web.Response(text=f"no GPU-mix targets for {ns}/{model}; POST /v1/optimizer/workload/{ns}/{model}\n",
                            status=404)
    return web.Response(text=text, content_type="text/plain")


async def post_workload(request: web.Request) -> web.Response:
    ext = request.app[EXT_KEY]
    ns, model = request.match_info["namespace"], request.match_info["model"]
    try:
        doc = loads(await request.read())
        problem = ext.targets.problem_from_workload(model, doc)
        melange.validate(problem)
    except (WireError, InputError, melange.ProblemError, ValueError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    solution = await asyncio.get_running_loop().run_in_executor(None, melange.solve, problem)
    if not solution.feasible:
        return web.json_response({"error": solution.reason}, status=422)
    target = ext.targets.set_from_solution(ns, model, problem, solution)
    kv(log, "gpu mix targets", model=f"{ns}/{model}", replicas=target.replicas, cost=round(target.cost, 4))
    return web.json_response({"replicas": target.replicas, "cost": target.cost,
                              "solve_ms": round(solution.solve_ms, 2)})


async def put_targets(request: web.Request) -> web.Response:
    ext = request.app[EXT_KEY]
    ns, model = request.match_info["namespace"], request.match_info["model"]
    try:
        doc = loads(await request.read())
    except WireError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    replicas = doc.get("replicas")
    if not isinstance(replicas, dict) or not all(isinstance(v, int) and v >= 0 for v in replicas.values()):
        return web.json_response({"error": "body needs replicas: {gpu_type: non-negative integer}"}, status=400)
    target = ext.targets.set_replicas(ns, model, replicas)
    return web.json_response({"replicas": target.replicas, "cost": target.cost})


def build_app(ext: Extender) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[EXT_KEY] = ext
    app.router.add_post("/filter", _verb("filter", Extender.filter, True))
    app.router.add_post("/prioritize", _verb("prioritize", Extender.prioritize, False))
    app.router.add_post("/bind", _verb("bind", Extender.bind, True))
    app.router.add_post("/preempt", _verb("preempt", Extender.preempt, False))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/optimizer/targets/{namespace}/{model}", get_targets)
    app.router.add_put("/v1/optimizer/targets/{namespace}/{model}", put_targets)
    app.router.add_post("/v1/optimizer/workload/{namespace}/{model}", post_workload)
    return app


def load_profiles(settings: Settings) -> list[ProfileEntry]:
    if settings.profiles_dir is None:
        return []
    if not settings.profiles_dir.is_dir():
        raise InputError(f"--profiles {settings.profiles_dir}: not a directory of AIBrix profile *.json files")
    out = []
    for path in sorted(settings.profiles_dir.glob("*.json")):
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read the profile: {exc}") from None
        profile, indexes, model = profile_from_doc(raw, str(path))
        slos = raw.get("slos") if isinstance(raw.get("slos"), dict) else {}
        out.append(ProfileEntry(profile, indexes, model, slos))
    return out


async def serve(settings: Settings) -> None:
    cache = NodeCache(frozenset(settings.resources))
    targets = TargetStore(load_profiles(settings))
    api_client = None
    if settings.kubernetes:
        from scheduler_ext.informer import load_api_client

        api_client = load_api_client(settings.kubeconfig)
    ext = Extender(settings, cache, targets, api_client)
    if settings.nodes_file is not None:
        nodes, pods = nodes_file.load(settings.nodes_file)
        for node in nodes:
            cache.upsert_node(node)
        for pod in pods:
            cache.apply_pod_object(pod)
        cache.synced = True
        kv(log, "nodes loaded", file=str(settings.nodes_file), nodes=len(nodes), bound_pods=len(cache.pods))
    if settings.workloads_file is not None:
        _solve_workloads(ext, settings)
    gc.collect()
    gc.freeze()  # the loaded cache is long-lived: keep it out of every later GC pass
    loop = asyncio.get_running_loop()
    if api_client is not None:
        from scheduler_ext.informer import Informer

        # The informer's threads parse watch events while the loop answers kube-scheduler; with the
        # default 5 ms GIL switch interval a /filter could wait that long for the GIL behind them.
        sys.setswitchinterval(0.0002)

        ext.informer = Informer(api_client, lambda *a: loop.call_soon_threadsafe(ext.on_event, *a))
        ext.informer.start()
    ssl_ctx = None
    if settings.tls_cert is not None:
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    runner = web.AppRunner(build_app(ext), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, ssl_context=ssl_ctx)
    await site.start()
    kv(log, "scheduler extender listening", host=settings.host, port=settings.port, tls=ssl_ctx is not None,
       mode="kubernetes" if settings.kubernetes else "standalone", profiles=len(targets.profiles))
    watcher = None
    if settings.nodes_file is not None:
        watcher = asyncio.create_task(nodes_file.watch(settings.nodes_file, ext.reload_nodes))
    mix_loop = None
    if settings.gateway_urls:  # GPU-mix targets from the gateways' live workload (scheduler_ext/gpu_mix_loop.py)
        from scheduler_ext.gpu_mix_loop import start_mix_loop

        mix_loop = start_mix_loop(targets, settings)
    try:
        await asyncio.Event().wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        if mix_loop is not None:
            await mix_loop.stop()
        if ext.informer is not None:
            ext.informer.stop()
        await runner.cleanup()
        if ext.binder is not None:
            await ext.binder.close()


def _solve_workloads(ext: Extender, settings: Settings) -> None:
    from brix.files import FileError, read_yaml

    assert settings.workloads_file is not None
    try:
        docs = read_yaml(settings.workloads_file, "--workloads") or []
    except FileError as exc:
        raise InputError(str(exc)) from None
    if not isinstance(docs, list):
        raise InputError(f"{settings.workloads_file}: expected a list of workloads")
    for i, doc in enumerate(docs):
        where = f"{settings.workloads_file}: item {i}"
        if not isinstance(doc, dict) or not isinstance(doc.get("model"), str):
            raise InputError(f"{where}: needs model (and namespace, rps, distribution)")
        ns, model = str(doc.get("namespace", "default")), doc["model"]
        problem = ext.targets.problem_from_workload(model, doc)
        solution = melange.solve(problem)
        if not solution.feasible:
            raise InputError(f"{where}: {solution.reason}")
        target = ext.targets.set_from_solution(ns, model, problem, solution)
        kv(log, "gpu mix targets", model=f"{ns}/{model}", replicas=target.replicas, cost=round(target.cost, 4))

