"""KubeEmulator: kmock's KubernetesEmulator wired to our store, watches, discovery and subresources.

kmock remains the base: its aiohttp server, request parsing, error format for unknown URLs,
resource registry and DSL (a test's own reactions still intercept requests) are used.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import aiohttp.web
import attrs
import kmock

from tests.k8s_api import discovery
from tests.k8s_api.patches import apply_patch
from tests.k8s_api.resources import (
    ApiError,
    Obj,
    Reply,
    ResourceType,
    Route,
    as_version,
    builtin_types,
    parse_route,
    qualified,
)
from tests.k8s_api.store import Store
from tests.k8s_api.subresources import bind, scale_of
from tests.k8s_api.watch import serve_watch


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """kmock's KubernetesEmulator with a versioned store, selectors, subresources and CRDs."""

    request_log: int = 200  # requests kept in kmock's log (GAP: kmock keeps all and slows down)
    history: int = 10_000  # watch events kept per resource for resourceVersion replays

    _store: Store = attrs.field(init=False)
    _builtin_payloads: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._builtin_payloads = len(self._payloads)  # kmock's own fallbacks; later ones are a test's
        self._store = Store(self.history, on_register=self._kmock_register, on_unregister=self._kmock_unregister)
        for rt in builtin_types():
            self._store.register(rt)
        for namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):  # as a new cluster has
            self._store.ensure_namespace(namespace)

    def _kmock_register(self, rt: ResourceType) -> None:
        """kmock's registry too, so that kmock's own views see the resource."""
        for version in rt.versions:
            self.resources[f"{rt.group}/{version}/{rt.plural}" if rt.group else f"{version}/{rt.plural}"] = \
                kmock.ResourceInfo(kind=rt.kind, namespaced=rt.namespaced, verbs=set(rt.verbs),
                                   singular=rt.singular or rt.kind.lower(), shortnames=set(rt.short_names),
                                   categories=set(rt.categories), subresources=rt.subresources)

    def _kmock_unregister(self, rt: ResourceType) -> None:
        for version in rt.versions:
            self.resources.pop(f"{rt.group}/{version}/{rt.plural}", None)

    def apply_crd(self, crd: Obj) -> str:
        """Create or replace a CRD (as `kubectl apply` would), returning its name."""
        return self._store.apply_crd(crd)

    def expire_watches(self, group: str, plural: str) -> int:
        """Compact a resource's watch history (see WatchBus.expire); the resourceVersion it was cut at."""
        if (group, plural) not in self._store.types:
            raise ApiError(404, "NotFound", f"no resource {plural} in group {group or 'core'}")
        self._store.bus.expire((group, plural), self._store.rv)
        return self._store.rv

    async def close_watches(self, timeout: float = 2.0) -> None:
        """End every watch stream (so that the server can stop without waiting on them)."""
        await self._store.bus.close(timeout)

    # ------------------------------------------------------------ plumbing

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
                return await serve_watch(self._store.bus, self._store.objects[rt.key], request, rt, route)
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
        rt = self._store.types.get((route.group, route.plural))
        if rt is None or route.version not in rt.versions:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource "
                           f"({route.plural} in {route.group or 'core'}/{route.version})")
        if route.namespace is not None and not rt.namespaced:
            raise ApiError(404, "NotFound", f"{qualified(rt)} is cluster-scoped: drop the namespace from the URL")
        if route.sub and route.sub not in rt.subresources:
            raise ApiError(404, "NotFound", f"{qualified(rt)} has no subresource {route.sub!r}")
        return rt

    async def _discovery(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        parts = [p for p in request.url.path.split("/") if p]
        body: Any
        if parts in (["healthz"], ["readyz"], ["livez"]):
            return aiohttp.web.Response(text="ok")
        if parts == ["version"]:
            body = await self._serve_server_version(request)
        else:
            body = discovery.document(parts, self._store.types.values(), request.url.host)
            if body is None:  # kmock's scaffold answers the rest (its 404 for unknown endpoints)
                return await super()._handle(request)
        return aiohttp.web.json_response(body)

    # ------------------------------------------------------------ reads and writes

    def _dispatch(self, request: kmock.Request, rt: ResourceType, route: Route) -> Reply:
        method, name, sub, store = request.method, route.name, route.sub, self._store
        if rt.plural == "bindings" and method == "POST" and name is None:
            return bind(store, request.data, route.namespace, (request.data or {}).get("metadata", {}).get("name"))
        if name is None:
            if method == "GET":
                return 200, store.list(request.params, rt, route)
            if method == "POST":
                return 201, store.create(rt, route, request.data)
            if method == "DELETE":
                return 200, store.delete_collection(request.params, rt, route)
        elif sub == "binding":  # GAP: pods/binding
            if method == "POST":
                return bind(store, request.data, route.namespace, name)
        elif method == "GET":
            obj = store.get(rt, route)
            return 200, scale_of(rt, obj) if sub == "scale" else as_version(rt, obj, route.version)
        elif method in ("PUT", "PATCH"):
            current = store.get(rt, route)
            base = scale_of(rt, current) if sub == "scale" else copy.deepcopy(current)
            desired = (apply_patch(base, request.headers, request.data, request.text) if method == "PATCH"
                       else request.data)
            if not isinstance(desired, dict):
                raise ApiError(400, "BadRequest", "the request body must be a JSON object")
            new = store.update(rt, current, desired, sub)
            return 200, scale_of(rt, new) if sub == "scale" else new
        elif method == "DELETE":
            return 200, store.delete(rt, route, request.data)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {request.url.path}")
