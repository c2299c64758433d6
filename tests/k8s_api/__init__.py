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
request changes no state). Every CRD under `deploy/crds/` is registered at start, its subfolders
included (deploy/crds/kuberay's RayCluster stand-in; other kinds of documents there, e.g. a
kustomization, are skipped; a broken CRD fails the fixture naming its file).
A test that needs its own server builds one: `with K8sApi(crd_dir=None, history=2) as api: ...`.

What it serves: core/v1 (namespaces, nodes, pods + pods/binding, services, endpoints, configmaps,
secrets, events, serviceaccounts, persistentvolumeclaims, bindings), apps/v1 (deployments,
replicasets, statefulsets, daemonsets, controllerrevisions), coordination.k8s.io/v1 leases,
discovery.k8s.io/v1 endpointslices, events.k8s.io/v1 events, policy/v1 poddisruptionbudgets,
scheduling.k8s.io/v1 priorityclasses, apiextensions.k8s.io/v1 CRDs (creating a CRD through the API
serves its resources at once; deleting it drops them), and every registered custom resource.

Gaps of kmock 0.8 closed here (each marked `GAP:` in the code):
  * [store.py] uid / resourceVersion / creationTimestamp / generation stamped on create; one global
    resourceVersion counter bumped on every write; generation bumped when anything but
    metadata/status changes.
  * [selectors.py, store.py] label selectors (=, ==, !=, in, notin, exists, !exists) and field
    selectors (=, ==, != on any dotted path: metadata.name, metadata.namespace, spec.nodeName,
    status.phase, ...) on list, watch and deletecollection; limit/continue paging.
  * [store.py, server.py] 201 on create, 409 AlreadyExists, 409 Conflict on a stale resourceVersion,
    404 NotFound, 422 Invalid, 415 — all as Kubernetes `Status` JSON.
  * [subresources.py] pods/binding (POST .../pods/NAME/binding, or the legacy .../bindings) sets
    spec.nodeName and the PodScheduled condition; 409 when already bound. Like the real API server
    it answers a `Status` (Success, 201), which the Python client cannot deserialise into V1Binding:
    call `create_namespaced_pod_binding(..., _preload_content=False)` as against a real cluster.
  * [store.py, subresources.py] /status touches only .status; the main resource ignores .status
    changes when the resource has a status subresource. /scale GET/PUT/PATCH answers an
    autoscaling/v1 Scale (spec.replicas, status.replicas, status.selector) and writes only
    spec.replicas (CRDs: their scale paths).
  * [patches.py] merge patch, strategic merge patch (treated as a JSON merge patch: lists are
    replaced, `$patch` directives are not understood), JSON patch, and apply patch (YAML/JSON, also
    merged).
  * [watch.py] watches replay from a resourceVersion (410 Expired when it is older than the kept
    history; `api.expire_watches(group, plural)` compacts that history at once and ends the open
    watches with an ERROR 410 event, as after an etcd compaction), send ADDED/MODIFIED/DELETED per selector transitions as the real cache does, honour
    timeoutSeconds, and end when the client goes away.
  * [server.py] kmock keeps every request in a log and matches each new request against it:
    O(requests) per request. The log is trimmed to the last `request_log` entries, and kmock's DSL
    matching runs only when a test added its own reactions (hack/bench/bench_k8s_api.py measures
    it).
  * [server.py] kmock 0.8's request parser crashes on /api/v1/namespaces (kopf lists namespaces at
    start).

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

Modules: resources.py (resource types, the built-in table, URL routes, Status errors), selectors.py
and patches.py (pure), store.py (versioned object store and stamping), watch.py (event history and
watch streams), crds.py (CRD loading and the types they serve), discovery.py, subresources.py
(pods/binding, Scale), server.py (KubeEmulator: kmock wiring), and here: K8sApi and the fixture.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kmock
import kubernetes.client
import pytest

from tests.k8s_api.crds import CRD_DIR, crd_resource_type, load_crd_documents
from tests.k8s_api.patches import merge_patch
from tests.k8s_api.resources import ApiError, Obj, ResourceType, Route, ScalePaths, parse_route
from tests.k8s_api.selectors import parse_field_selector, parse_label_selector, selector_string
from tests.k8s_api.server import KubeEmulator

__all__ = ["CRD_DIR", "ApiError", "K8sApi", "KubeEmulator", "ResourceType", "Route", "ScalePaths",
           "crd_resource_type", "k8s_api", "load_crd_documents", "merge_patch", "parse_field_selector",
           "parse_label_selector", "parse_route", "selector_string"]


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
            files = sorted([*self._crd_dir.rglob("*.yaml"), *self._crd_dir.rglob("*.yml")])
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

    def expire_watches(self, group: str, plural: str) -> int:
        """As an etcd compaction under kube-apiserver: every open watch of group/plural ends with an
        ERROR 410 Expired event, and a watch from any older resourceVersion gets 410 (clients must
        list again). Returns the resourceVersion the history was cut at."""
        assert self.kmock is not None
        return int(self.call(self.kmock.expire_watches, group, plural))

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
