"""`k8s_api`: a Kubernetes API for tests — kmock's emulator on 127.0.0.1, with Brix's gaps closed.

Usage (sync or async tests alike: the server runs on its own thread and event loop, so the
blocking `kubernetes` client never stalls it)::

    def test_bind(k8s_api):
        core = k8s_api.core_v1()                      # kubernetes.client.CoreV1Api on this server
        core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {...}})
        core.list_namespaced_pod("default", field_selector="spec.nodeName=")
        k8s_api.apps_v1(), k8s_api.custom(), k8s_api.apiextensions_v1()   # other API classes
        k8s_api.add_crds("tests/mything/data/crd.yaml")                   # extra CRDs (path/dict/YAML)

    async def test_operator(k8s_api):                 # kopf: log in with the URL
        @kopf.on.login(registry=registry)
        def login(**_): return kopf.ConnectionInfo(server=k8s_api.url)

`k8s_api.url` ("http://127.0.0.1:PORT"), `.api_client` (a configured kubernetes.client.ApiClient),
`.configuration`, `.kmock` (the kmock handler: its DSL still intercepts requests, e.g.
`k8s_api.kmock['post /api/v1/namespaces/default/pods'] << 503` to inject failures; an intercepted
request changes no state). Every CRD in `deploy/crds/*.yaml` is registered at start (other kinds of
documents there, e.g. a kustomization, are skipped; a broken CRD fails the fixture naming its file).
A test that needs its own server builds one: `with K8sApi(crd_dir=None, history=2) as api: ...`.

What it serves: core/v1 (namespaces, nodes, pods + pods/binding, services, endpoints, configmaps,
secrets, events, serviceaccounts, persistentvolumeclaims, bindings), apps/v1 (deployments,
replicasets, statefulsets, daemonsets, controllerrevisions), coordination.k8s.io/v1 leases,
discovery.k8s.io/v1 endpointslices, events.k8s.io/v1 events, policy/v1 poddisruptionbudgets,
scheduling.k8s.io/v1 priorityclasses, apiextensions.k8s.io/v1 CRDs (creating a CRD through the API
serves its resources at once; deleting it drops them), and every registered custom resource.

Gaps of kmock 0.8 closed here (each marked `GAP:` in the code):
  * uid / resourceVersion / creationTimestamp / generation stamped on create; one global
    resourceVersion counter bumped on every write; generation bumped when anything but
    metadata/status changes.
  * label selectors (=, ==, !=, in, notin, exists, !exists) and field selectors (=, ==, != on any
    dotted path: metadata.name, metadata.namespace, spec.nodeName, status.phase, ...) on list,
    watch and deletecollection; limit/continue paging.
  * 201 on create, 409 AlreadyExists, 409 Conflict on a stale resourceVersion, 404 NotFound,
    422 Invalid, 415 — all as Kubernetes `Status` JSON.
  * pods/binding (POST .../pods/NAME/binding, or the legacy .../bindings) sets spec.nodeName and
    the PodScheduled condition; 409 when already bound. Like the real API server it answers a
    `Status` (Success, 201), which the Python client cannot deserialise into V1Binding: call
    `create_namespaced_pod_binding(..., _preload_content=False)` as against a real cluster.
  * /status touches only .status; the main resource ignores .status changes when the resource has
    a status subresource. /scale GET/PUT/PATCH answers an autoscaling/v1 Scale (spec.replicas,
    status.replicas, status.selector) and writes only spec.replicas (CRDs: their scale paths).
  * merge patch, strategic merge patch (treated as a JSON merge patch: lists are replaced, `$patch`
    directives are not understood), JSON patch, and apply patch (YAML/JSON, also merged).
  * watches replay from a resourceVersion (410 Expired when it is older than the kept history),
    send ADDED/MODIFIED/DELETED per selector transitions as the real cache does, honour
    timeoutSeconds, and end when the client goes away.
  * kmock keeps every request in a log and matches each new request against it: O(requests) per
    request. The log is trimmed to the last `request_log` entries, and kmock's DSL matching runs
    only when a test added its own reactions (tests/foundation/bench_k8s_api.py measures it).
  * kmock 0.8's request parser crashes on /api/v1/namespaces (kopf lists namespaces at start).

Why the object store and watch bus are our own instead of kmock's `objects`/`Bus`: kmock 0.8 keeps
plain merge-patched dicts without versions, and its bus cannot replay history from a
resourceVersion; both are needed by kopf and by informers. kmock remains the base: its aiohttp
server, request parsing, error format for unknown URLs, resource registry and DSL are used.

Limits (by design, say so in your test if it matters): no controllers (a Deployment makes no
pods), no kubelet (pods are deleted at once, unless finalizers hold them), no schema validation or
defaulting beyond pods' status.phase=Pending and namespaces' Active, no garbage collection of owned
objects, namespaces are created on first use (default, kube-system, kube-public, kube-node-lease
exist from the start; deleting one leaves its objects), dryRun is not honoured, no auth/RBAC,
field selectors accept any path (a real server accepts only each resource's indexed fields).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime
import json
import math
import random
import string
import threading
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
import kubernetes.client
import pytest
import yaml

CRD_DIR = Path(__file__).resolve().parent.parent / "deploy" / "crds"
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

Obj = dict[str, Any]
Reply = tuple[int, Any]


@dataclasses.dataclass(frozen=True)
class ScalePaths:
    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    selector: str | None = None  # a string field (CRDs); None: built from .spec.selector


@dataclasses.dataclass(frozen=True)
class ResourceType:
    group: str
    versions: tuple[str, ...]  # served versions, the storage/preferred one first
    plural: str
    kind: str
    namespaced: bool
    status: bool = False
    scale: ScalePaths | None = None
    binding: bool = False
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    singular: str = ""
    verbs: tuple[str, ...] = tuple(ALL_VERBS)

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version


def _builtin_types() -> list[ResourceType]:
    deploy_scale = ScalePaths()
    t = ResourceType
    return [
        t("", ("v1",), "namespaces", "Namespace", False, status=True, short_names=("ns",)),
        t("", ("v1",), "nodes", "Node", False, status=True, short_names=("no",)),
        t("", ("v1",), "pods", "Pod", True, status=True, binding=True, short_names=("po",)),
        t("", ("v1",), "services", "Service", True, status=True, short_names=("svc",)),
        t("", ("v1",), "endpoints", "Endpoints", True, short_names=("ep",)),
        t("", ("v1",), "configmaps", "ConfigMap", True, short_names=("cm",)),
        t("", ("v1",), "secrets", "Secret", True),
        t("", ("v1",), "events", "Event", True, short_names=("ev",)),
        t("", ("v1",), "serviceaccounts", "ServiceAccount", True, short_names=("sa",)),
        t("", ("v1",), "persistentvolumeclaims", "PersistentVolumeClaim", True, status=True),
        t("", ("v1",), "bindings", "Binding", True, verbs=("create",)),
        t("apps", ("v1",), "deployments", "Deployment", True, status=True, scale=deploy_scale),
        t("apps", ("v1",), "replicasets", "ReplicaSet", True, status=True, scale=deploy_scale),
        t("apps", ("v1",), "statefulsets", "StatefulSet", True, status=True, scale=deploy_scale),
        t("apps", ("v1",), "daemonsets", "DaemonSet", True, status=True),
        t("apps", ("v1",), "controllerrevisions", "ControllerRevision", True),
        t("coordination.k8s.io", ("v1",), "leases", "Lease", True),
        t("discovery.k8s.io", ("v1",), "endpointslices", "EndpointSlice", True),
        t("events.k8s.io", ("v1",), "events", "Event", True),
        t("policy", ("v1",), "poddisruptionbudgets", "PodDisruptionBudget", True, status=True),
        t("scheduling.k8s.io", ("v1",), "priorityclasses", "PriorityClass", False),
        t("apiextensions.k8s.io", ("v1",), "customresourcedefinitions", "CustomResourceDefinition",
          False, status=True, short_names=("crd",)),
    ]


class ApiError(Exception):
    """Answered as a Kubernetes Status: what went wrong, with the real server's reason."""

    def __init__(self, code: int, reason: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> Obj:
        body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def _not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(rt)} "{name}" not found',
                    name=name, group=rt.group, kind=rt.plural)


def _qualified(rt: ResourceType) -> str:
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- selectors (GAP: kmock has none)

def _field_value(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.strip(".").split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses: 'a in (x,y),b' -> ['a in (x,y)', 'b']."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


Predicate = Callable[[Obj], bool]


def parse_label_selector(text: str) -> list[Predicate]:
    preds: list[Predicate] = []
    for term in _split_top(text or ""):
        words = term.replace("(", " ( ").replace(")", " ) ").split()
        if len(words) >= 2 and words[1] in ("in", "notin"):
            key, op = words[0], words[1]
            values = {v.strip() for v in term.split("(", 1)[-1].rstrip(")").split(",") if v.strip()}
            if op == "in":
                preds.append(lambda o, k=key, vs=values: _labels(o).get(k) in vs)
            else:
                preds.append(lambda o, k=key, vs=values: _labels(o).get(k) not in vs)
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            preds.append(lambda o, k=key, v=value: _labels(o).get(k) != v)
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            preds.append(lambda o, k=key, v=value: _labels(o).get(k) == v)
        elif term.startswith("!"):
            missing = term[1:].strip()
            preds.append(lambda o, k=missing: k not in _labels(o))
        elif term.replace("-", "").replace(".", "").replace("/", "").replace("_", "").isalnum():
            preds.append(lambda o, k=term: k in _labels(o))
        else:
            raise ApiError(400, "BadRequest", f"unable to parse labelSelector term {term!r}")
    return preds


def parse_field_selector(text: str) -> list[Predicate]:
    preds: list[Predicate] = []
    for term in _split_top(text or ""):
        negate = "!=" in term
        if "=" in term:
            path, value = (s.strip() for s in term.replace("!=", "=").replace("==", "=").split("=", 1))
            preds.append(lambda o, p=path, v=value, neg=negate: (_field_value(o, p) == v) != neg)
        else:
            raise ApiError(400, "BadRequest", f"invalid fieldSelector term {term!r}: use path=value or path!=value")
    return preds


def _labels(obj: Obj) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def selector_string(selector: Obj | None) -> str:
    """A metav1.LabelSelector as the string form that Scale.status.selector carries."""
    if not selector:
        return ""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), ",".join(expr.get("values") or [])
        terms.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}.get(op, key))
    return ",".join(terms)


# ---------------------------------------------------------------- patches (GAP: kmock merges only)

def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: null deletes a key, objects merge, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_patch(target: Obj, request: kmock.Request) -> Obj:
    headers = {k.lower(): v for k, v in request.headers.items()}
    ctype = headers.get("content-type", "application/merge-patch+json").split(";")[0].strip()
    if ctype == "application/json-patch+json":
        if not isinstance(request.data, list):
            raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
        try:
            return jsonpatch.apply_patch(target, request.data)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise ApiError(422, "Invalid", f"the JSON patch could not be applied: {exc}") from exc
    if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json",
                 "application/apply-patch+yaml", "application/json"):
        body = request.data
        if body is None and ctype == "application/apply-patch+yaml":
            body = yaml.safe_load(request.text)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", f"a {ctype} body must be a JSON object")
        return merge_patch(target, body)
    raise ApiError(415, "UnsupportedMediaType", f"the patch content type {ctype!r} is not supported: use "
                   "application/merge-patch+json, strategic-merge-patch+json or json-patch+json")


def _get_path(obj: Obj, path: str) -> Any:
    value: Any = obj
    for part in path.strip(".").split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _set_path(obj: Obj, path: str, value: Any) -> None:
    *parents, last = path.strip(".").split(".")
    for part in parents:
        obj = obj.setdefault(part, {})
    obj[last] = value


@dataclasses.dataclass
class WatchEvent:
    rv: int
    type: str
    obj: Obj
    old: Obj | None = None


@dataclasses.dataclass(frozen=True)
class Route:
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    sub: str | None


def parse_route(path: str) -> Route | None:
    """/api/v1/namespaces/ns/pods/name/binding -> Route; None for non-resource paths."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    rest += [None] * (3 - len(rest))  # type: ignore[list-item]
    return Route(group, version, rest[0], namespace, rest[1], rest[2])


@dataclasses.dataclass
class Watcher:
    queue: asyncio.Queue[WatchEvent | None]  # None: the server is closing
    match: Callable[[Obj], bool]



@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """kmock's KubernetesEmulator with a versioned store, selectors, subresources and CRDs."""

    request_log: int = 200  # requests kept in kmock's log (GAP: kmock keeps all and slows down)
    history: int = 10_000  # watch events kept per resource for resourceVersion replays

    _types: dict[tuple[str, str], ResourceType] = attrs.field(factory=dict, init=False)
    _store: dict[tuple[str, str], dict[tuple[str, str], Obj]] = attrs.field(
        factory=lambda: defaultdict(dict), init=False)
    _events: dict[tuple[str, str], deque[WatchEvent]] = attrs.field(factory=dict, init=False)
    _floor: dict[tuple[str, str], int] = attrs.field(factory=dict, init=False)
    _watchers: dict[tuple[str, str], list[Watcher]] = attrs.field(factory=lambda: defaultdict(list), init=False)
    _rv: int = attrs.field(default=1, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    _builtin_payloads: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._builtin_payloads = len(self._payloads)  # kmock's own fallbacks; later ones are a test's
        for rt in _builtin_types():
            self._register(rt)
        for namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):  # as a new cluster has
            self._ensure_namespace(namespace)

    def _ensure_namespace(self, name: str) -> None:
        """Namespaces spring into existence on first use (a real server answers 404 instead)."""
        if ("", name) not in self._store[("", "namespaces")]:
            self._create(self._types[("", "namespaces")], Route("", "v1", "namespaces", None, None, None),
                         {"metadata": {"name": name}})

    # ------------------------------------------------------------ plumbing

    def _register(self, rt: ResourceType) -> None:
        self._types[rt.key] = rt
        self._events.setdefault(rt.key, deque(maxlen=self.history))
        self._floor.setdefault(rt.key, 0)
        subresources = {"status"} if rt.status else set()
        subresources |= {"scale"} if rt.scale else set()
        subresources |= {"binding"} if rt.binding else set()
        for version in rt.versions:  # kmock's registry, so that kmock's own views see the resource
            self.resources[f"{rt.group}/{version}/{rt.plural}" if rt.group else f"{version}/{rt.plural}"] = \
                kmock.ResourceInfo(kind=rt.kind, namespaced=rt.namespaced, verbs=set(rt.verbs),
                                   singular=rt.singular or rt.kind.lower(), shortnames=set(rt.short_names),
                                   categories=set(rt.categories), subresources=subresources)

    def _unregister(self, key: tuple[str, str]) -> None:
        rt = self._types.pop(key, None)
        if rt is not None:
            for version in rt.versions:
                self.resources.pop(f"{rt.group}/{version}/{rt.plural}", None)
            self._store.pop(key, None)

    def _commit(self, rt: ResourceType, etype: str, obj: Obj, old: Obj | None = None) -> Obj:
        """GAP: one resourceVersion counter bumped on every write; every watcher gets the event."""
        self._rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        meta = obj["metadata"]
        okey = (meta.get("namespace") or "", meta["name"])
        if etype == "DELETED":
            self._store[rt.key].pop(okey, None)
        else:
            self._store[rt.key][okey] = obj
        events = self._events[rt.key]
        if len(events) == events.maxlen:
            self._floor[rt.key] = events[0].rv
        event = WatchEvent(self._rv, etype, obj, old)
        events.append(event)
        for watcher in self._watchers.get(rt.key, []):
            watcher.queue.put_nowait(event)
        return obj

    async def close_watches(self, timeout: float = 2.0) -> None:
        """End every watch stream (so that the server can stop without waiting on them)."""
        self._closing = True
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.queue.put_nowait(None)
        deadline = asyncio.get_running_loop().time() + timeout
        while any(self._watchers.values()) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """kmock's entry point, minus two gaps: a request log that grows forever, and a parser crash."""
        await raw_request.read()
        try:
            request = await kmock.Request._parse(raw_request, id=len(self._requests))
        except ValueError:  # GAP: kmock 0.8's parse_path raises on /api/v1/namespaces (list namespaces)
            text = await raw_request.text()
            try:
                data = json.loads(text) if text else None
            except ValueError:
                data = None
            request = kmock.Request(
                raw_request=raw_request, url=raw_request.url, method=raw_request.method,
                params=dict(raw_request.query), headers=dict(raw_request.headers),
                body=await raw_request.read(), text=text, data=data)
        self._requests.append(request)
        if len(self._requests) > self.request_log:  # GAP: trim the log that kmock matches against
            del self._requests[: len(self._requests) - self.request_log]
        try:
            return await self._handle(request)
        except Exception as exc:  # a bug here: answer it as a Status 500 with the traceback
            return await self._render_error(exc)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if len(self._payloads) > self._builtin_payloads:  # a test added its own kmock reactions
            intercepted = await self._user_reaction(request)
            if intercepted is not None:
                return intercepted
        try:
            route = parse_route(request.url.path)
            if route is None:
                return await self._discovery(request)
            rt = self._resolve(route)
            if request.method == "GET" and request.params.get("watch") in ("true", "1"):
                return await self._watch(request, rt, route)
            code, body = self._dispatch(request, rt, route)
        except ApiError as exc:
            return aiohttp.web.json_response(exc.status(), status=exc.code)
        return aiohttp.web.json_response(body, status=code)

    async def _user_reaction(self, request: kmock.Request) -> aiohttp.web.StreamResponse | None:
        """kmock's own matching, restricted to reactions a test added (same order as kmock's)."""
        user = self._payloads[self._builtin_payloads:]
        for payload in sorted(user, key=lambda p: tuple(-x for x in p.priorities)):
            if request in payload._source and not payload._disabled.is_set():
                try:
                    return await payload(request)
                except kmock.ReactionMismatchError:
                    payload._disabled.set()
                except NotImplementedError:
                    pass
        return None

    def _resolve(self, route: Route) -> ResourceType:
        rt = self._types.get((route.group, route.plural))
        if rt is None or route.version not in rt.versions:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource "
                           f"({route.plural} in {route.group or 'core'}/{route.version})")
        if route.namespace is not None and not rt.namespaced:
            raise ApiError(404, "NotFound", f"{_qualified(rt)} is cluster-scoped: drop the namespace from the URL")
        if route.sub and route.sub not in (({"status"} if rt.status else set()) | ({"scale"} if rt.scale else set())
                                           | ({"binding"} if rt.binding else set())):
            raise ApiError(404, "NotFound", f"{_qualified(rt)} has no subresource {route.sub!r}")
        return rt

    # ------------------------------------------------------------ discovery

    async def _discovery(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        parts = [p for p in request.url.path.split("/") if p]
        body: Any
        if parts in (["healthz"], ["readyz"], ["livez"]):
            return aiohttp.web.Response(text="ok")
        if parts == ["version"]:
            body = await self._serve_server_version(request)
        elif parts == ["api"]:
            body = {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": request.url.host}]}
        elif parts == ["apis"]:
            groups = sorted({rt.group for rt in self._types.values() if rt.group})
            body = {"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._group(g) for g in groups]}
        elif len(parts) == 2 and parts[0] == "apis" and any(rt.group == parts[1] for rt in self._types.values()):
            body = {"kind": "APIGroup", "apiVersion": "v1", **self._group(parts[1])}
        elif (len(parts) == 2 and parts[0] == "api") or (len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            resources = self._api_resources(group, version)
            if not resources:
                return aiohttp.web.json_response(ApiError(404, "NotFound", f"no API {group}/{version}").status(),
                                                 status=404)
            body = {"kind": "APIResourceList", "apiVersion": "v1",
                    "groupVersion": f"{group}/{version}" if group else version, "resources": resources}
        elif parts == []:
            body = {"paths": sorted({"/api", "/api/v1", "/apis", "/version", "/healthz"}
                                    | {f"/apis/{rt.group}/{v}" for rt in self._types.values() if rt.group
                                       for v in rt.versions})}
        else:  # kmock's scaffold answers the rest (its 404 for unknown endpoints)
            return await super()._handle(request)
        return aiohttp.web.json_response(body)

    def _group(self, group: str) -> Obj:
        versions: list[str] = []
        for rt in self._types.values():
            if rt.group == group:
                versions += [v for v in rt.versions if v not in versions]
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}

    def _api_resources(self, group: str, version: str) -> list[Obj]:
        out: list[Obj] = []
        for rt in self._types.values():
            if rt.group != group or version not in rt.versions:
                continue
            out.append({"name": rt.plural, "singularName": rt.singular or rt.kind.lower(), "namespaced": rt.namespaced,
                        "kind": rt.kind, "verbs": list(rt.verbs), "shortNames": list(rt.short_names),
                        "categories": list(rt.categories)})
            if rt.status:
                out.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                            "kind": rt.kind, "verbs": ["get", "patch", "update"]})
            if rt.scale:
                out.append({"name": f"{rt.plural}/scale", "singularName": "", "namespaced": rt.namespaced,
                            "group": "autoscaling", "version": "v1", "kind": "Scale",
                            "verbs": ["get", "patch", "update"]})
            if rt.binding:
                out.append({"name": f"{rt.plural}/binding", "singularName": "", "namespaced": rt.namespaced,
                            "kind": "Binding", "verbs": ["create"]})
        return out

    # ------------------------------------------------------------ reads and writes

    def _dispatch(self, request: kmock.Request, rt: ResourceType, route: Route) -> Reply:
        method, name, sub = request.method, route.name, route.sub
        if rt.plural == "bindings" and method == "POST" and name is None:
            return self._bind(request, route, (request.data or {}).get("metadata", {}).get("name"))
        if name is None:
            if method == "GET":
                return 200, self._list(request, rt, route)
            if method == "POST":
                return 201, self._create(rt, route, request.data)
            if method == "DELETE":
                return 200, self._delete_collection(request, rt, route)
        elif sub == "binding":
            if method == "POST":
                return self._bind(request, route, name)
        elif method == "GET":
            obj = self._get(rt, route)
            return 200, self._scale_of(rt, obj) if sub == "scale" else self._as_version(rt, obj, route.version)
        elif method in ("PUT", "PATCH"):
            current = self._get(rt, route)
            base = self._scale_of(rt, current) if sub == "scale" else copy.deepcopy(current)
            desired = apply_patch(base, request) if method == "PATCH" else request.data
            if not isinstance(desired, dict):
                raise ApiError(400, "BadRequest", "the request body must be a JSON object")
            new = self._update(rt, current, desired, sub)
            return 200, self._scale_of(rt, new) if sub == "scale" else new
        elif method == "DELETE":
            return 200, self._delete(rt, route, request.data)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {request.url.path}")

    def _namespace_of(self, rt: ResourceType, route: Route) -> str:
        if rt.namespaced and route.namespace is None:
            raise ApiError(404, "NotFound", f"{_qualified(rt)} is namespaced: use /namespaces/NS/{rt.plural}")
        return route.namespace or ""

    def _get(self, rt: ResourceType, route: Route) -> Obj:
        obj = self._store[rt.key].get((self._namespace_of(rt, route), route.name or ""))
        if obj is None:
            raise _not_found(rt, route.name or "")
        return obj

    def _matcher(self, request: kmock.Request, route: Route) -> Callable[[Obj], bool]:
        preds = parse_label_selector(request.params.get("labelSelector", ""))
        preds += parse_field_selector(request.params.get("fieldSelector", ""))
        if route.namespace is not None:
            preds.append(lambda o, ns=route.namespace: o["metadata"].get("namespace") == ns)
        if route.name is not None:  # a watch on one object's URL
            preds.append(lambda o, n=route.name: o["metadata"]["name"] == n)
        return lambda obj: all(pred(obj) for pred in preds)

    def _list(self, request: kmock.Request, rt: ResourceType, route: Route) -> Obj:
        match = self._matcher(request, route)
        items = [self._as_version(rt, o, route.version) for _, o in sorted(self._store[rt.key].items()) if match(o)]
        meta: Obj = {"resourceVersion": str(self._rv)}
        start = int(request.params.get("continue") or 0)
        limit = int(request.params.get("limit") or 0)
        if limit > 0:
            if start + limit < len(items):
                meta["continue"] = str(start + limit)
                meta["remainingItemCount"] = len(items) - start - limit
            items = items[start:start + limit]
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version(route.version), "metadata": meta, "items": items}

    def _as_version(self, rt: ResourceType, obj: Obj, version: str) -> Obj:
        if obj.get("apiVersion") == rt.api_version(version):
            return obj
        return {**obj, "apiVersion": rt.api_version(version)}  # no conversion webhooks: same schema

    def _create(self, rt: ResourceType, route: Route, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", f"the body to create {_qualified(rt)} must be a JSON object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        if not meta.get("name"):
            raise ApiError(422, "Invalid", f"{_qualified(rt)}: metadata.name: Required value", kind=rt.kind)
        namespace = self._namespace_of(rt, route)
        if meta.get("namespace") and rt.namespaced and meta["namespace"] != namespace:
            raise ApiError(400, "BadRequest", f"the namespace of the object ({meta['namespace']}) does not match "
                           f"the namespace of the URL ({namespace})")
        if (namespace, meta["name"]) in self._store[rt.key]:
            raise ApiError(409, "AlreadyExists", f'{_qualified(rt)} "{meta["name"]}" already exists',
                           name=meta["name"], group=rt.group, kind=rt.plural)
        # GAP: kmock stamps nothing; the real API server stamps these on create.
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        meta.pop("deletionTimestamp", None)
        meta.pop("resourceVersion", None)
        if rt.namespaced:
            meta["namespace"] = namespace
            self._ensure_namespace(namespace)
        else:
            meta.pop("namespace", None)
        obj["apiVersion"], obj["kind"] = rt.api_version(route.version), rt.kind
        if rt.key == ("", "pods"):
            obj.setdefault("status", {}).setdefault("phase", "Pending")
        elif rt.key == ("", "namespaces"):
            obj.setdefault("status", {}).setdefault("phase", "Active")
        elif rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._serve_crd(obj)
        return self._commit(rt, "ADDED", obj)

    def _update(self, rt: ResourceType, current: Obj, desired: Obj, sub: str | None) -> Obj:
        want_rv = (desired.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {_qualified(rt)} '
                           f'"{current["metadata"]["name"]}": the object has been modified; please apply your '
                           "changes to the latest version and try again",
                           name=current["metadata"]["name"], group=rt.group, kind=rt.plural)
        if sub == "status":  # GAP: /status touches only .status
            new = copy.deepcopy(current)
            new["status"] = copy.deepcopy(desired.get("status"))
            if new["status"] is None:
                new.pop("status")
        elif sub == "scale":  # GAP: /scale touches only spec.replicas
            new = copy.deepcopy(current)
            replicas = (desired.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(422, "Invalid", f"Scale.spec.replicas must be an integer >= 0, got {replicas!r}")
            _set_path(new, rt.scale.spec_replicas if rt.scale else ".spec.replicas", replicas)
        else:
            new = copy.deepcopy(desired)
            new["apiVersion"], new["kind"] = current["apiVersion"], current["kind"]
            meta = new.setdefault("metadata", {})
            for field in ("uid", "creationTimestamp", "name", "namespace", "generation", "deletionTimestamp"):
                if field in current["metadata"]:
                    meta[field] = current["metadata"][field]
                else:
                    meta.pop(field, None)
            if rt.status:  # with a status subresource, the main resource ignores status changes
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
        # GAP: generation follows spec (everything but metadata, and status where it is a subresource).
        ignored = {"metadata", "apiVersion", "kind"} | ({"status"} if rt.status else set())
        if {k: v for k, v in new.items() if k not in ignored} != {k: v for k, v in current.items() if k not in ignored}:
            new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions") and sub is None:
            self._serve_crd(new)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._commit(rt, "MODIFIED", new, current)
            return self._finish_delete(rt, new)
        return self._commit(rt, "MODIFIED", new, current)

    def _delete(self, rt: ResourceType, route: Route, options: Any) -> Obj:
        current = self._get(rt, route)
        pre = (options or {}).get("preconditions") or {} if isinstance(options, dict) else {}
        for field in ("uid", "resourceVersion"):
            if pre.get(field) and pre[field] != current["metadata"].get(field):
                raise ApiError(409, "Conflict", f"Precondition failed: {field} in precondition: {pre[field]}, "
                               f"{field} in object meta: {current['metadata'].get(field)}")
        if current["metadata"].get("finalizers"):  # held by finalizers: only marked
            if current["metadata"].get("deletionTimestamp"):
                return current
            new = copy.deepcopy(current)
            new["metadata"]["deletionTimestamp"] = _now()
            return self._commit(rt, "MODIFIED", new, current)
        return self._finish_delete(rt, current)

    def _finish_delete(self, rt: ResourceType, obj: Obj) -> Obj:
        gone = self._commit(rt, "DELETED", copy.deepcopy(obj))
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            names = obj.get("spec", {}).get("names", {})
            self._unregister((obj.get("spec", {}).get("group", ""), names.get("plural", "")))
        return gone

    def _delete_collection(self, request: kmock.Request, rt: ResourceType, route: Route) -> Obj:
        match = self._matcher(request, route)
        victims = [o for o in list(self._store[rt.key].values()) if match(o)]
        for obj in victims:
            self._delete(rt, Route(rt.group, route.version, rt.plural, obj["metadata"].get("namespace"),
                                   obj["metadata"]["name"], None), None)
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version(route.version),
                "metadata": {"resourceVersion": str(self._rv)}, "items": victims}

    # ------------------------------------------------------------ subresources

    def _bind(self, request: kmock.Request, route: Route, name: str | None) -> Reply:
        """GAP: pods/binding — what kube-scheduler and a scheduler extender's /bind call."""
        pods = self._types[("", "pods")]
        body = request.data if isinstance(request.data, dict) else {}
        target = (body.get("target") or {}).get("name")
        if not name or not target:
            raise ApiError(422, "Invalid", "a Binding needs metadata.name (the pod) and target.name (the node)")
        current = self._get(pods, Route("", "v1", "pods", route.namespace, name, None))
        if current.get("spec", {}).get("nodeName"):
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} '
                           f"is already assigned to node \"{current['spec']['nodeName']}\"",
                           name=name, kind="pods/binding")
        new = copy.deepcopy(current)
        new.setdefault("spec", {})["nodeName"] = target
        annotations = (body.get("metadata") or {}).get("annotations")
        if annotations:
            new["metadata"].setdefault("annotations", {}).update(annotations)
        conditions = [c for c in new.setdefault("status", {}).get("conditions", []) if c.get("type") != "PodScheduled"]
        new["status"]["conditions"] = conditions + [{"type": "PodScheduled", "status": "True",
                                                     "lastTransitionTime": _now()}]
        self._commit(pods, "MODIFIED", new, current)
        return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def _scale_of(self, rt: ResourceType, obj: Obj) -> Obj:
        """GAP: an autoscaling/v1 Scale built from the object's scale paths."""
        paths = rt.scale or ScalePaths()
        meta = obj["metadata"]
        replicas = _get_path(obj, paths.spec_replicas)
        if paths.selector is not None:
            selector = _get_path(obj, paths.selector) or ""
        else:
            selector = selector_string(obj.get("spec", {}).get("selector"))
        status: Obj = {"replicas": _get_path(obj, paths.status_replicas) or 0}
        if selector:
            status["selector"] = selector
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                             if k in meta},
                "spec": {"replicas": replicas if replicas is not None else (1 if rt.group == "apps" else 0)},
                "status": status}

    # ------------------------------------------------------------ CRDs

    def _serve_crd(self, crd: Obj) -> None:
        """GAP: kmock serves any plural it is told; here a CRD object is what makes a resource exist."""
        rt = crd_resource_type(crd)
        old = self._types.get(rt.key)
        if old is not None and old.kind != rt.kind:
            raise ApiError(409, "Conflict", f"{_qualified(rt)} is already served with kind {old.kind}")
        self._register(rt)
        crd["status"] = {
            "acceptedNames": crd["spec"]["names"],
            "storedVersions": [rt.versions[0]],
            "conditions": [{"type": t, "status": "True", "reason": r, "lastTransitionTime": _now(), "message": m}
                           for t, r, m in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                                           ("Established", "InitialNamesAccepted", "the initial names have been "
                                                                                   "accepted"))],
        }

    def apply_crd(self, crd: Obj) -> str:
        """Create or replace a CRD (as `kubectl apply` would), returning its name."""
        crds = self._types[("apiextensions.k8s.io", "customresourcedefinitions")]
        name = (crd.get("metadata") or {}).get("name", "")
        route = Route(crds.group, "v1", crds.plural, None, name, None)
        current = self._store[crds.key].get(("", name))
        if current is None:
            self._create(crds, route, crd)
        else:
            self._update(crds, current, merge_patch(crd, {"metadata": {"resourceVersion": None}}), None)
        return name

    # ------------------------------------------------------------ watch

    async def _watch(self, request: kmock.Request, rt: ResourceType, route: Route) -> aiohttp.web.StreamResponse:
        """GAP: watches with selectors, resourceVersion replays, timeoutSeconds, and disconnect detection."""
        match = self._matcher(request, route)
        rv_param = request.params.get("resourceVersion") or "0"
        try:
            since = int(rv_param)
            timeout = float(request.params.get("timeoutSeconds") or math.inf)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"resourceVersion and timeoutSeconds must be numbers: {exc}") from exc
        backlog: list[WatchEvent] = []
        expired = False
        if since == 0:  # no version: the current state first, as ADDED events
            backlog = [WatchEvent(int(o["metadata"]["resourceVersion"]), "ADDED", o)
                       for _, o in sorted(self._store[rt.key].items())]
        elif since < self._floor[rt.key]:
            expired = True
        else:
            backlog = [e for e in self._events[rt.key] if e.rv > since]
        watcher = Watcher(asyncio.Queue(), match)
        for event in backlog:
            watcher.queue.put_nowait(event)
        self._watchers[rt.key].append(watcher)  # no await since the snapshot: nothing is missed
        raw = request._raw_request
        assert raw is not None
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        try:
            await response.prepare(raw)
            if expired:
                status = ApiError(410, "Expired", f"too old resource version: {since} ({self._floor[rt.key]})")
                await response.write(json.dumps({"type": "ERROR", "object": status.status()}).encode() + b"\n")
                return response
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not self._closing and loop.time() < deadline:
                if raw.transport is None or raw.transport.is_closing():
                    break
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), min(0.5, deadline - loop.time()))
                except TimeoutError:
                    continue
                if event is None:  # the server is closing
                    break
                line = self._watch_line(rt, route, event, match)
                if line is not None:
                    await response.write(line)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away; aiohttp's test server also cancels this handler then
        finally:
            self._watchers[rt.key].remove(watcher)
        return response

    def _watch_line(self, rt: ResourceType, route: Route, event: WatchEvent, match: Predicate) -> bytes | None:
        """Selector transitions as the real watch cache sends them: (un)matching becomes ADDED/DELETED."""
        etype, obj = event.type, event.obj
        now = match(obj)
        if etype == "MODIFIED" and event.old is not None:
            before = match(event.old)
            if before and not now:
                etype = "DELETED"
                obj = merge_patch(event.old, {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}})
            elif now and not before:
                etype = "ADDED"
            elif not now:
                return None
        elif not now:
            return None
        return json.dumps({"type": etype, "object": self._as_version(rt, obj, route.version)}).encode() + b"\n"


def crd_resource_type(crd: Obj) -> ResourceType:
    """A CustomResourceDefinition (apiextensions.k8s.io/v1) as the resource type it serves."""
    where = f"CRD {crd.get('metadata', {}).get('name', '?')!r}"
    try:
        spec = crd["spec"]
        names = spec["names"]
        versions = [v for v in spec["versions"] if v.get("served", True)]
        versions.sort(key=lambda v: not v.get("storage", False))
        group, plural, kind = spec["group"], names["plural"], names["kind"]
    except (KeyError, TypeError) as exc:
        raise ApiError(422, "Invalid", f"{where}: missing {exc} (need spec.group, spec.names.plural/kind, "
                       "spec.versions)") from exc
    if crd.get("metadata", {}).get("name") != f"{plural}.{group}":
        raise ApiError(422, "Invalid", f"{where}: metadata.name must be '{plural}.{group}'")
    if not versions:
        raise ApiError(422, "Invalid", f"{where}: no served version in spec.versions")
    subresources = versions[0].get("subresources") or {}
    scale = subresources.get("scale")
    return ResourceType(
        group=group, versions=tuple(v["name"] for v in versions), plural=plural, kind=kind,
        namespaced=spec.get("scope", "Namespaced") == "Namespaced", status="status" in subresources,
        scale=ScalePaths(scale.get("specReplicasPath", ".spec.replicas"),
                         scale.get("statusReplicasPath", ".status.replicas"),
                         scale.get("labelSelectorPath", "")) if scale is not None else None,
        short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
        singular=names.get("singular") or kind.lower())


def load_crd_documents(*sources: str | Path | Obj, only_crds: bool = False) -> list[tuple[str, Obj]]:
    """(where, CRD dict) from YAML files, YAML text, or dicts.

    Other kinds of documents are an error, or skipped with only_crds (a kustomization.yaml beside
    the CRDs in deploy/crds/ is fine).
    """
    docs: list[tuple[str, Obj]] = []
    for source in sources:
        if isinstance(source, dict):
            docs.append(("a dict", source))
            continue
        text, where = source, "YAML text"
        if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source):
            path = Path(source)
            if not path.is_absolute() and not path.exists():
                path = CRD_DIR.parent.parent / path  # paths relative to the repository root
            text, where = path.read_text(), str(path)
        try:
            loaded = list(yaml.safe_load_all(str(text)))
        except yaml.YAMLError as exc:
            raise ValueError(f"{where}: not valid YAML: {exc}") from exc
        for doc in loaded:
            if doc is None:
                continue
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                if only_crds:
                    continue
                kind = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
                raise ValueError(f"{where}: expected only CustomResourceDefinition documents, found {kind!r}")
            docs.append((where, doc))
    return docs


class K8sApi:
    """The emulator served on 127.0.0.1 from a background thread, plus client helpers.

    Usable outside pytest: `with K8sApi() as api: ...`. Its thread owns the event loop, so a test's
    blocking `kubernetes` client calls and a test's own event loop (kopf) never stall the server.
    """

    def __init__(self, crd_dir: Path | None = CRD_DIR, request_log: int = 200, history: int = 10_000) -> None:
        self._crd_dir, self._options = crd_dir, {"request_log": request_log, "history": history}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.kmock: KubeEmulator | None = None
        self.url = ""
        self.configuration = kubernetes.client.Configuration()
        self.api_client: kubernetes.client.ApiClient | None = None

    def __enter__(self) -> K8sApi:
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), name="k8s_api", daemon=True)
        self._thread.start()
        if not self._started.wait(30) or self._error is not None:
            self.close()
            raise RuntimeError(f"k8s_api did not start: {self._error!r}") from self._error
        self.configuration.host = self.url
        self.api_client = kubernetes.client.ApiClient(self.configuration)
        if self._crd_dir is not None and self._crd_dir.is_dir():
            files = sorted([*self._crd_dir.glob("*.yaml"), *self._crd_dir.glob("*.yml")])
            try:
                self._apply_crds(load_crd_documents(*files, only_crds=True))
            except Exception:
                self.close()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _serve(self) -> None:
        try:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            async with KubeEmulator(**self._options) as handler, kmock.Server(handler) as server:
                self.kmock, self.url = handler, str(server.url).rstrip("/")
                self._started.set()
                await self._stop.wait()
                await handler.close_watches()
        except BaseException as exc:  # reported by __enter__
            self._error = exc
            self._started.set()

    def close(self) -> None:
        if self.api_client is not None:
            self.api_client.close()
            self.api_client = None
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(*args) on the server's loop (the store is not thread-safe) and return its result."""
        assert self._loop is not None

        async def run() -> Any:
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def add_crds(self, *sources: str | Path | Obj) -> list[str]:
        """Register CRDs from YAML files (absolute or repo-relative), YAML text or dicts; their names."""
        return self._apply_crds(load_crd_documents(*sources))

    def _apply_crds(self, docs: list[tuple[str, Obj]]) -> list[str]:
        assert self.kmock is not None
        names = []
        for where, doc in docs:
            try:
                names.append(self.call(self.kmock.apply_crd, doc))
            except ApiError as exc:
                raise ValueError(f"{where}: cannot register the CRD: {exc.message}") from exc
        return names

    # The official API classes bound to this server.
    def core_v1(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api_client)

    def apps_v1(self) -> kubernetes.client.AppsV1Api:
        return kubernetes.client.AppsV1Api(self.api_client)

    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api_client)

    def apiextensions_v1(self) -> kubernetes.client.ApiextensionsV1Api:
        return kubernetes.client.ApiextensionsV1Api(self.api_client)

    def autoscaling_v1(self) -> kubernetes.client.AutoscalingV1Api:
        return kubernetes.client.AutoscalingV1Api(self.api_client)

    def coordination_v1(self) -> kubernetes.client.CoordinationV1Api:
        return kubernetes.client.CoordinationV1Api(self.api_client)


@pytest.fixture
def k8s_api() -> Iterator[K8sApi]:
    """A fresh Kubernetes API on 127.0.0.1 (random port) per test; see this module's docstring."""
    with K8sApi() as api:
        yield api
